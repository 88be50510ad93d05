import { flag } from '../http/parse.js';
import { CreateVolumeRequest, parseWith, UpdateVolumeRequest } from '../http/schemas.js';
import { feedOptions } from './feed.js';
import { expiryOf } from './expiry.js';
import { json, noContent } from '../http/responses.js';
import type { Operation } from '../http/types.js';

/** Volumes: create (idempotent for a name), list, inspect, update, feed, remove (409 in use), prune. */
export const volumeOperations: Record<string, Operation> = {
  createVolume: async (request) => {
    const body = parseWith(CreateVolumeRequest, request.json());
    return json(201, await request.services.engine.volumes.create(request.tenant, body.name, { labels: body.labels, quota: body.quota, expiry: expiryOf(body) }));
  },
  listVolumes: async ({ tenant, services }) => json(200, await services.engine.volumes.list(tenant)),
  inspectVolume: async ({ tenant, services, params }) => json(200, await services.engine.volumes.inspect(tenant, params.name)),
  updateVolume: async (request) => {
    const body = parseWith(UpdateVolumeRequest, request.json());
    const { tenant, services, params } = request;
    return json(200, await services.engine.volumes.update(tenant, params.name, { quota: body.quota, expiry: expiryOf(body) }));
  },
  volumeFeed: async ({ tenant, services, params, query }) => json(200, await services.engine.feedOf(tenant, { kind: 'volume', name: params.name }, feedOptions(query))),
  removeVolume: async ({ tenant, services, params, query }) => {
    await services.engine.volumes.remove(tenant, params.name, { force: flag(query, 'force') });
    return noContent();
  },
  pruneVolumes: async ({ tenant, services, query }) => json(200, await services.engine.volumes.prune(tenant, { all: flag(query, 'all') })),
};
