import { flag } from '../http/parse.js';
import { CommitRequest, CreateContainerRequest, ForkRequest, MergeRequest, parseWith, UpdateContainerRequest } from '../http/schemas.js';
import { feedOptions } from './feed.js';
import { expiryOf } from './expiry.js';
import { json, noContent } from '../http/responses.js';
import type { Operation } from '../http/types.js';
import { idempotently } from './idempotent.js';
import { queuedJob } from './jobs.js';

const KIND_NAMES = ['C', 'A', 'D'];

/** Containers: create, fork, merge, list (with sizes on request), inspect, update, remove, changes, feed, commit, export. */
export const containerOperations: Record<string, Operation> = {
  createContainer: async (request) => {
    const { expiresAt, ttlSeconds, extendOnWrite, ...body } = parseWith(CreateContainerRequest, request.json());
    const summary = await request.services.engine.containers.create(request.tenant, { ...body, expiry: expiryOf({ expiresAt, ttlSeconds, extendOnWrite }) });
    return json(201, summary, { location: `/v1/containers/${summary.id}` });
  },

  listContainers: async ({ tenant, services, query }) => json(200, await services.engine.containers.list(tenant, { size: flag(query, 'size') })),

  inspectContainer: async ({ tenant, services, params }) => json(200, await services.engine.containers.inspect(tenant, params.id)),

  updateContainer: async (request) => {
    const body = parseWith(UpdateContainerRequest, request.json());
    const { tenant, services, params } = request;
    return json(200, await services.engine.containers.update(tenant, params.id, { quota: body.quota, expiry: expiryOf(body) }));
  },

  containerFeed: async ({ tenant, services, params, query }) => json(200, await services.engine.feedOf(tenant, { kind: 'container', ref: params.id }, feedOptions(query))),

  removeContainer: async ({ tenant, services, params, query }) => {
    await services.engine.containers.remove(tenant, params.id, { volumes: flag(query, 'volumes') || flag(query, 'v') });
    return noContent();
  },

  containerChanges: async ({ tenant, services, params, query }) => {
    const changes = await services.engine.changes(tenant, params.id, { against: query.against });
    const shown = flag(query, 'patch') ? await services.engine.patches(changes) : changes;
    return json(
      200,
      shown.map((c) => ({
        path: c.path,
        kind: c.kind,
        kindName: KIND_NAMES[c.kind],
        ...('patch' in c && c.patch !== undefined ? { patch: c.patch } : {}),
        ...('patchOmitted' in c && c.patchOmitted ? { patchOmitted: c.patchOmitted } : {}),
      })),
    );
  },

  forkContainer: async (request) => {
    const body = parseWith(ForkRequest, request.json());
    const summary = await request.services.engine.fork(request.tenant, request.params.id, body);
    return json(201, summary, { location: `/v1/containers/${summary.id}` });
  },

  mergeContainer: async (request) => {
    const body = parseWith(MergeRequest, request.json());
    return json(200, await request.services.engine.merge(request.tenant, request.params.id, body));
  },

  commitContainer: async (request) => {
    const options = parseWith(CommitRequest, request.json());
    if (flag(request.query, 'async')) {
      await request.services.engine.containers.view(request.tenant, request.params.id);
      return queuedJob(request, { jobKind: 'commit', container: request.params.id, options });
    }
    const { result, headers } = await idempotently(request, (recordAlso) => request.services.engine.commit(request.tenant, request.params.id, options, recordAlso));
    return json(201, result, headers);
  },

  exportContainer: async (request) => {
    const { tenant, services, params, query } = request;
    if (flag(query, 'async')) {
      await services.engine.containers.view(tenant, params.id);
      return queuedJob(request, { jobKind: 'export', container: params.id });
    }
    return { statusCode: 200, headers: { 'content-type': 'application/x-tar' }, body: await services.engine.export(tenant, params.id) };
  },
};
