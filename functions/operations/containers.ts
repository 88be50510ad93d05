import { InvalidInputError } from '../../shared/errors.js';
import type { MountRequest } from '../../shared/domain/containers.js';
import { flag, optionalString, requiredString, stringMap } from '../http/parse.js';
import { json, noContent } from '../http/responses.js';
import type { Operation } from '../http/types.js';

const KIND_NAMES = ['C', 'A', 'D'];

function mounts(value: unknown): MountRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidInputError('mounts must be an array of {target, volume?, readOnly?}');
  return value.map((m, i) => {
    if (typeof m !== 'object' || m === null) throw new InvalidInputError(`mounts[${i}] must be an object`);
    const mount = m as Record<string, unknown>;
    if (mount.readOnly !== undefined && typeof mount.readOnly !== 'boolean') throw new InvalidInputError(`mounts[${i}].readOnly must be a boolean`);
    return { target: requiredString(mount, 'target'), volume: optionalString(mount, 'volume'), readOnly: mount.readOnly as boolean | undefined };
  });
}

/** Containers: create, list (with sizes on request), inspect, remove, changes, commit, export. */
export const containerOperations: Record<string, Operation> = {
  createContainer: async (request) => {
    const body = request.json();
    const summary = await request.services.engine.containers.create(request.tenant, {
      image: requiredString(body, 'image'),
      name: optionalString(body, 'name'),
      mounts: mounts(body.mounts),
      labels: stringMap(body.labels, 'labels'),
    });
    return json(201, summary, { location: `/v1/containers/${summary.id}` });
  },

  listContainers: async ({ tenant, services, query }) => json(200, await services.engine.containers.list(tenant, { size: flag(query, 'size') })),

  inspectContainer: async ({ tenant, services, params }) => json(200, await services.engine.containers.inspect(tenant, params.id)),

  removeContainer: async ({ tenant, services, params, query }) => {
    await services.engine.containers.remove(tenant, params.id, { volumes: flag(query, 'volumes') || flag(query, 'v') });
    return noContent();
  },

  containerChanges: async ({ tenant, services, params }) => {
    const changes = await services.engine.changes(tenant, params.id);
    return json(200, changes.map((c) => ({ path: c.path, kind: c.kind, kindName: KIND_NAMES[c.kind] })));
  },

  commitContainer: async (request) => {
    const body = request.json();
    const image = await request.services.engine.commit(request.tenant, request.params.id, {
      reference: optionalString(body, 'reference'),
      author: optionalString(body, 'author'),
      comment: optionalString(body, 'comment'),
    });
    return json(201, image);
  },

  exportContainer: async ({ tenant, services, params }) => ({
    statusCode: 200,
    headers: { 'content-type': 'application/x-tar' },
    body: await services.engine.export(tenant, params.id),
  }),
};
