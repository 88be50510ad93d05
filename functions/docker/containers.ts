import type { ContainerSummary, MountRequest } from '../../shared/domain/containers.js';
import type { RuntimeConfigChanges } from '../../shared/domain/image-config.js';
import type { ProcessSettings } from '../../shared/domain/records.js';
import { InvalidInputError } from '../../shared/errors.js';
import { json, noContent } from '../http/responses.js';
import type { HttpResult, RequestContext } from '../http/types.js';
import { archiveRoutes } from './archive.js';
import { parseCommitChanges } from './commit-changes.js';
import { orNoSuch } from './errors.js';
import { Filters } from './filters.js';
import { NotImplementedError, type DockerCall, type DockerRoute } from './router.js';
import { containerInspect, containerSummary } from './shapes.js';

const truthy = (value: string | null) => value !== null && /^(1|true|yes|)$/i.test(value);
export const noSuchContainer = (ref: string) => `No such container: ${ref}`;

/** Everything that needs a process answers this, with the command named. */
const PROCESS_ACTIONS = ['start', 'stop', 'restart', 'kill', 'pause', 'unpause', 'wait', 'attach', 'logs', 'exec', 'top', 'stats', 'resize', 'update'];

/** `docker create|ps|inspect|rm|rename|diff|export|commit|container prune`, and `docker cp` (archive.ts). */
export const containerRoutes: DockerRoute[] = [
  { method: 'POST', path: '/containers/create', operation: createContainer },
  { method: 'GET', path: '/containers/json', operation: listContainers },
  { method: 'POST', path: '/containers/prune', operation: pruneContainers },
  { method: 'POST', path: '/commit', operation: commitContainer },
  { method: 'GET', path: '/containers/{id}/json', operation: inspectContainer },
  { method: 'DELETE', path: '/containers/{id}', operation: removeContainer },
  { method: 'POST', path: '/containers/{id}/rename', operation: renameContainer },
  {
    method: 'GET',
    path: '/containers/{id}/changes',
    operation: async ({ request, params }) => {
      const changes = await orNoSuch(noSuchContainer(params.id), request.services.engine.changes(request.tenant, params.id));
      return json(
        200,
        changes.map((c) => ({ Path: c.path, Kind: c.kind })),
      );
    },
  },
  {
    method: 'GET',
    path: '/containers/{id}/export',
    operation: async ({ request, params }) => ({
      statusCode: 200,
      headers: { 'content-type': 'application/x-tar' },
      body: await orNoSuch(noSuchContainer(params.id), request.services.engine.export(request.tenant, params.id)),
      noRedirect: true,
    }),
  },
  ...archiveRoutes,
  ...PROCESS_ACTIONS.flatMap((action): DockerRoute[] =>
    (['GET', 'POST'] as const).map((method) => ({
      method,
      path: `/containers/{id}/${action}`,
      operation: async ({ request, params }) => {
        await orNoSuch(noSuchContainer(params.id), request.services.engine.containers.record(request.tenant, params.id));
        throw new NotImplementedError(`docker ${action} is not supported: Strata stores containers as file trees and does not run them`);
      },
    })),
  ),
];

interface CreateBody {
  Image?: unknown;
  Labels?: unknown;
  Volumes?: unknown;
  Cmd?: unknown;
  Entrypoint?: unknown;
  Env?: unknown;
  WorkingDir?: unknown;
  User?: unknown;
  HostConfig?: { Binds?: unknown; Mounts?: unknown; VolumesFrom?: unknown } | null;
}

async function createContainer({ request, query }: DockerCall): Promise<HttpResult> {
  const body = request.json<CreateBody>();
  if (typeof body.Image !== 'string' || !body.Image) throw new InvalidInputError('config.Image is required: the image to create the container from');
  const { engine } = request.services;
  const image = await orNoSuch(`No such image: ${body.Image}`, engine.images.resolve(request.tenant, body.Image));
  if (Array.isArray(body.HostConfig?.VolumesFrom) && body.HostConfig.VolumesFrom.length) throw new NotImplementedError('--volumes-from is not supported');
  const mounts = [...binds(body.HostConfig?.Binds), ...mountSpecs(body.HostConfig?.Mounts)];
  // Anonymous volumes for `-v /path` and for the image's own VOLUME paths, as dockerd makes them.
  const config = await engine.images.config(image);
  for (const target of [...objectKeys(body.Volumes, 'Volumes'), ...Object.keys(config.config?.Volumes ?? {})]) {
    if (!mounts.some((m) => m.target === target)) mounts.push({ target });
  }
  const labels = body.Labels === undefined || body.Labels === null ? undefined : stringRecord(body.Labels, 'Labels');
  const created = await engine.containers.create(request.tenant, { image: body.Image, name: query.get('name') || undefined, mounts, labels, process: processSettings(body) });
  return json(201, { Id: created.id, Warnings: [] });
}

/** What `create` says the container would run with; empty values mean "the image's", as in dockerd. */
function processSettings(body: CreateBody): ProcessSettings {
  const list = (value: unknown, name: string): string[] | undefined => {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return [value];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new InvalidInputError(`${name} must be a list of strings`);
    return value.length ? value : undefined;
  };
  const text = (value: unknown, name: string): string | undefined => {
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string') throw new InvalidInputError(`${name} must be a string`);
    return value;
  };
  const settings = {
    Cmd: list(body.Cmd, 'Cmd'),
    Entrypoint: list(body.Entrypoint, 'Entrypoint'),
    Env: list(body.Env, 'Env'),
    WorkingDir: text(body.WorkingDir, 'WorkingDir'),
    User: text(body.User, 'User'),
  };
  return Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
}

/** `-v name:/path[:ro]`; a host path has no meaning where there is no host. */
function binds(value: unknown): MountRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((b) => typeof b === 'string')) throw new InvalidInputError('HostConfig.Binds must be a list of strings');
  return value.map((bind: string) => {
    const [source, target, options = ''] = bind.split(':');
    if (!source || !target) throw new InvalidInputError(`invalid volume specification: '${bind}'`);
    if (source.startsWith('/') || source.startsWith('.'))
      throw new InvalidInputError(`bind mounts of host paths are not supported ('${bind}'): Strata has no host filesystem; use a named volume, -v name:${target}`);
    return { target, volume: source, readOnly: options.split(',').includes('ro') };
  });
}

/** `--mount type=volume,source=v,target=/data[,readonly]`. */
function mountSpecs(value: unknown): MountRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidInputError('HostConfig.Mounts must be a list');
  return value.map((m: { Type?: unknown; Source?: unknown; Target?: unknown; ReadOnly?: unknown }) => {
    if (m?.Type !== 'volume') throw new InvalidInputError(`mount type ${JSON.stringify(m?.Type)} is not supported: Strata mounts volumes only`);
    if (typeof m.Target !== 'string' || !m.Target) throw new InvalidInputError('a mount needs a Target');
    return { target: m.Target, volume: typeof m.Source === 'string' && m.Source ? m.Source : undefined, readOnly: m.ReadOnly === true };
  });
}

function objectKeys(value: unknown, name: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidInputError(`${name} must be an object`);
  return Object.keys(value);
}

function stringRecord(value: unknown, name: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string'))
    throw new InvalidInputError(`${name} must be an object of strings`);
  return value as Record<string, string>;
}

async function listContainers({ request, query }: DockerCall): Promise<HttpResult> {
  const filters = Filters.parse(query.get('filters'), ['name', 'id', 'ancestor', 'volume', 'label', 'status', 'before', 'since']);
  // Without --all, `docker ps` lists running containers, and Strata runs none.
  if (!truthy(query.get('all')) && !filters.has('status')) return json(200, []);
  const { engine } = request.services;
  const containers = await engine.containers.list(request.tenant, { size: truthy(query.get('size')) });
  const ancestors = filters.has('ancestor') ? await ancestorIds(request, filters.get('ancestor')) : undefined;
  const shown = containers.filter(
    (c) =>
      filters.any('status', (s) => s === 'created') &&
      filters.any('name', (pattern) => safeRegExp(pattern).test(`/${c.name}`)) &&
      filters.any('id', (prefix) => c.id.startsWith(prefix)) &&
      filters.any('volume', (v) => c.mounts.some((m) => m.volume === v || m.target === v)) &&
      filters.labels(c.labels) &&
      (!ancestors || ancestors.has(c.image)),
  );
  const limit = Number(query.get('limit') ?? -1);
  return json(200, (limit > 0 ? shown.slice(0, limit) : shown).map(containerSummary));
}

/** Docker matches a name filter as a regular expression; an invalid one matches literally. */
function safeRegExp(pattern: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch {
    return new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  }
}

/** `ancestor=img`: the image and every image committed on top of it. */
async function ancestorIds(request: RequestContext, refs: readonly string[]): Promise<Set<string>> {
  const { engine } = request.services;
  const ids = new Set<string>();
  for (const ref of refs) {
    const found = await engine.images.resolve(request.tenant, ref).catch(() => undefined);
    if (found) ids.add(found.id);
  }
  const records = await engine.images.records(request.tenant);
  for (let grew = true; grew; ) {
    grew = false;
    for (const image of records) {
      if (!image.parent || !ids.has(image.parent) || ids.has(image.id)) continue;
      ids.add(image.id);
      grew = true;
    }
  }
  return ids;
}

async function inspectContainer({ request, params, query }: DockerCall): Promise<HttpResult> {
  const { engine } = request.services;
  const container: ContainerSummary = await orNoSuch(noSuchContainer(params.id), engine.containers.inspect(request.tenant, params.id));
  const image = await engine.images.resolve(request.tenant, container.image).catch(() => undefined);
  const config = image ? await engine.images.config(image) : {};
  return json(200, containerInspect(container, config, truthy(query.get('size'))));
}

async function removeContainer({ request, params, query }: DockerCall): Promise<HttpResult> {
  if (truthy(query.get('link'))) throw new NotImplementedError('container links are not supported');
  await orNoSuch(noSuchContainer(params.id), request.services.engine.containers.remove(request.tenant, params.id, { volumes: truthy(query.get('v')) }));
  return noContent();
}

async function renameContainer({ request, params, query }: DockerCall): Promise<HttpResult> {
  const name = query.get('name')?.replace(/^\//, '');
  if (!name) throw new InvalidInputError("name is required: the container's new name");
  await orNoSuch(noSuchContainer(params.id), request.services.engine.containers.rename(request.tenant, params.id, name));
  return noContent();
}

/** Containers never run here, so every one is "stopped" and prune takes them all (label filters apply). */
async function pruneContainers({ request, query }: DockerCall): Promise<HttpResult> {
  const filters = Filters.parse(query.get('filters'), ['label', 'label!', 'until']);
  if (filters.has('until')) throw new NotImplementedError('the until filter of container prune is not supported');
  const { engine } = request.services;
  const deleted: string[] = [];
  let reclaimed = 0;
  for (const container of await engine.containers.list(request.tenant, { size: true })) {
    if (!filters.labels(container.labels) || (filters.has('label!') && filters.labels(container.labels, 'label!'))) continue;
    await engine.containers.remove(request.tenant, container.id);
    deleted.push(container.id);
    reclaimed += container.size ?? 0;
  }
  return json(200, { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
}

async function commitContainer({ request, query }: DockerCall): Promise<HttpResult> {
  const container = query.get('container');
  if (!container) throw new InvalidInputError('container is required');
  const repo = query.get('repo');
  const reference = repo ? `${repo}:${query.get('tag') || 'latest'}` : undefined;
  const changes: RuntimeConfigChanges = { ...configChanges(request.body()), ...parseCommitChanges(query.getAll('changes').flatMap((c) => c.split('\n'))) };
  const image = await orNoSuch(
    noSuchContainer(container),
    request.services.engine.commit(request.tenant, container, { reference, author: query.get('author') || undefined, comment: query.get('comment') || undefined, changes }),
  );
  return json(201, { Id: image.id });
}

/** The config body of a commit (`null` from the CLI when it has none): only what `--change` could set. */
function configChanges(raw: Buffer): RuntimeConfigChanges {
  const text = raw.toString('utf8').trim();
  if (!text || text === 'null') return {};
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new InvalidInputError('the commit body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidInputError('the commit body must be a container config object');
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const record = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  const checks: Record<string, (v: unknown) => boolean> = {
    Env: strings,
    Cmd: strings,
    Entrypoint: strings,
    WorkingDir: (v) => typeof v === 'string',
    User: (v) => typeof v === 'string',
    Labels: (v) => record(v) && Object.values(v as object).every((x) => typeof x === 'string'),
    ExposedPorts: record,
    Volumes: record,
  };
  const changes: Record<string, unknown> = {};
  for (const [key, valid] of Object.entries(checks)) {
    const value = body[key];
    if (value === undefined || value === null || value === '') continue;
    if (!valid(value)) throw new InvalidInputError(`config.${key} has the wrong type`);
    changes[key] = value;
  }
  return changes as RuntimeConfigChanges;
}
