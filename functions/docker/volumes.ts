import { InvalidInputError } from '../../shared/errors.js';
import { json, noContent } from '../http/responses.js';
import { orNoSuch } from './errors.js';
import { Filters } from './filters.js';
import { NotImplementedError, compareVersions, type DockerRoute } from './router.js';
import { volumeSummary } from './shapes.js';

const truthy = (value: string | null) => value !== null && /^(1|true|yes|)$/i.test(value);
const noSuchVolume = (name: string) => `get ${name}: no such volume`;

/** `docker volume create|ls|inspect|rm|prune`. Only the `local` driver exists. */
export const volumeRoutes: DockerRoute[] = [
  {
    method: 'GET',
    path: '/volumes',
    operation: async ({ request, query }) => {
      const filters = Filters.parse(query.get('filters'), ['dangling', 'name', 'label', 'driver']);
      const dangling = filters.flag('dangling');
      const volumes = (await request.services.engine.volumes.list(request.tenant)).filter(
        (v) => (dangling === undefined || (v.refCount === 0) === dangling) && filters.any('name', (n) => v.name.includes(n)) && filters.any('driver', (d) => d === 'local') && filters.labels(v.labels),
      );
      return json(200, { Volumes: volumes.map((v) => volumeSummary(v)), Warnings: [] });
    },
  },
  {
    method: 'POST',
    path: '/volumes/create',
    operation: async ({ request }) => {
      const body = request.json<{ Name?: unknown; Driver?: unknown; DriverOpts?: unknown; Labels?: unknown }>();
      if (body.Driver !== undefined && body.Driver !== '' && body.Driver !== 'local') throw new NotImplementedError(`volume driver ${JSON.stringify(body.Driver)} is not supported: only local`);
      if (body.DriverOpts && typeof body.DriverOpts === 'object' && Object.keys(body.DriverOpts).length) throw new NotImplementedError('volume driver options are not supported');
      if (body.Name !== undefined && typeof body.Name !== 'string') throw new InvalidInputError('Name must be a string');
      const labels = body.Labels ?? {};
      if (typeof labels !== 'object' || labels === null || Array.isArray(labels) || !Object.values(labels).every((v) => typeof v === 'string'))
        throw new InvalidInputError('Labels must be an object of strings');
      const volume = await request.services.engine.volumes.create(request.tenant, body.Name || undefined, { labels: labels as Record<string, string> });
      return json(201, volumeSummary(volume));
    },
  },
  {
    method: 'POST',
    path: '/volumes/prune',
    operation: async ({ request, query, version }) => {
      const filters = Filters.parse(query.get('filters'), ['all', 'label', 'label!']);
      // Before API 1.42, prune removed named volumes too.
      const all = filters.flag('all') ?? compareVersions(version, '1.42') < 0;
      const engine = request.services.engine;
      const candidates = (await engine.volumes.list(request.tenant)).filter(
        (v) => v.refCount === 0 && (all || v.anonymous) && filters.labels(v.labels) && (!filters.has('label!') || !filters.labels(v.labels, 'label!')),
      );
      const deleted: string[] = [];
      let reclaimed = 0;
      for (const volume of candidates) {
        const removed = await engine.volumes.remove(request.tenant, volume.name).then(
          () => true,
          () => false,
        );
        if (!removed) continue;
        deleted.push(volume.name);
        reclaimed += volume.size;
      }
      return json(200, { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
    },
  },
  {
    method: 'GET',
    path: '/volumes/{name}',
    operation: async ({ request, params }) => json(200, volumeSummary(await orNoSuch(noSuchVolume(params.name), request.services.engine.volumes.inspect(request.tenant, params.name)))),
  },
  {
    method: 'DELETE',
    path: '/volumes/{name}',
    operation: async ({ request, params, query }) => {
      await orNoSuch(noSuchVolume(params.name), request.services.engine.volumes.remove(request.tenant, params.name, { force: truthy(query.get('force')) }));
      return noContent();
    },
  },
];
