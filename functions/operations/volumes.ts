import { flag } from '../http/parse.js';
import { CreateVolumeRequest, parseWith } from '../http/schemas.js';
import { json, noContent } from '../http/responses.js';
import type { Operation } from '../http/types.js';

/** Volumes: create (idempotent for a name), list, inspect, remove (409 in use), prune. */
export const volumeOperations: Record<string, Operation> = {
  createVolume: async (request) => {
    const body = parseWith(CreateVolumeRequest, request.json());
    return json(201, await request.services.engine.volumes.create(request.tenant, body.name, body.labels));
  },
  listVolumes: async ({ tenant, services }) => json(200, await services.engine.volumes.list(tenant)),
  inspectVolume: async ({ tenant, services, params }) => json(200, await services.engine.volumes.inspect(tenant, params.name)),
  removeVolume: async ({ tenant, services, params, query }) => {
    await services.engine.volumes.remove(tenant, params.name, { force: flag(query, 'force') });
    return noContent();
  },
  pruneVolumes: async ({ tenant, services, query }) => json(200, await services.engine.volumes.prune(tenant, { all: flag(query, 'all') })),
};
