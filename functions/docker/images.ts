import type { HistoryEntry } from '../../shared/domain/image-config.js';
import type { ImageSummary } from '../../shared/domain/images.js';
import { ConflictError, InvalidInputError, NotFoundError } from '../../shared/errors.js';
import { json } from '../http/responses.js';
import type { HttpResult, RequestContext } from '../http/types.js';
import { orNoSuch } from './errors.js';
import { Filters } from './filters.js';
import { NotImplementedError, type DockerCall, type DockerRoute } from './router.js';
import { imageInspect, imageSummary } from './shapes.js';

const truthy = (value: string | null) => value !== null && /^(1|true|yes|)$/i.test(value);

/** `docker image ls|inspect|history|tag|rmi|prune`, `docker load` and `docker save`. */
export const imageRoutes: DockerRoute[] = [
  { method: 'GET', path: '/images/json', operation: listImages },
  { method: 'POST', path: '/images/load', operation: loadImages },
  {
    method: 'GET',
    path: '/images/get',
    operation: ({ request, query }) =>
      saveImages(
        request,
        query.getAll('names').flatMap((n) => n.split(',')),
      ),
  },
  { method: 'POST', path: '/images/prune', operation: pruneImages },
  {
    method: 'POST',
    path: '/images/create',
    operation: async ({ query }) => {
      throw new NotImplementedError(`pulling ${query.get('fromImage') ?? 'images'} is not supported: Strata has no registry client yet; load the image with docker load`);
    },
  },
  { method: 'GET', path: '/images/{name*}/json', operation: inspectImage },
  { method: 'GET', path: '/images/{name*}/history', operation: imageHistory },
  { method: 'GET', path: '/images/{name*}/get', operation: ({ request, params }) => saveImages(request, [params.name]) },
  { method: 'POST', path: '/images/{name*}/tag', operation: tagImage },
  { method: 'DELETE', path: '/images/{name*}', operation: removeImage },
];

const noSuchImage = (name: string) => `No such image: ${name}`;

async function listImages({ request, query }: DockerCall): Promise<HttpResult> {
  const filters = Filters.parse(query.get('filters'), ['dangling', 'reference', 'label', 'before', 'since']);
  const { engine } = request.services;
  const images = await engine.images.list(request.tenant);
  const needsLabels = filters.has('label');
  const labels = new Map<string, Record<string, string>>();
  if (needsLabels) {
    const records = await engine.images.records(request.tenant);
    for (const record of records) labels.set(record.id, (await engine.images.config(record)).config?.Labels ?? {});
  }
  const dangling = filters.flag('dangling');
  const shown = images
    .filter((image) => dangling === undefined || (image.tags.length === 0) === dangling)
    .filter((image) => filters.any('reference', (pattern) => image.tags.some((tag) => referenceMatches(pattern, tag))))
    .filter((image) => !needsLabels || filters.labels(labels.get(image.id) ?? {}))
    .sort((a, b) => b.created - a.created);
  // As dockerd does, a reference filter also narrows RepoTags to the tags it matched.
  const tagsShown = (image: ImageSummary) => (filters.has('reference') ? image.tags.filter((tag) => filters.get('reference').some((p) => referenceMatches(p, tag))) : image.tags);
  return json(
    200,
    shown.map((image) => imageSummary({ ...image, tags: tagsShown(image) }, { sizes: truthy(query.get('shared-size')), labels: labels.get(image.id) })),
  );
}

/** `docker image ls --filter reference=alp*`: a glob over `repo` or `repo:tag`, `*` within a path segment. */
function referenceMatches(pattern: string, tag: string): boolean {
  const glob = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  const repo = tag.slice(0, tag.lastIndexOf(':'));
  return glob.test(tag) || glob.test(repo);
}

async function loadImages({ request }: DockerCall): Promise<HttpResult> {
  const body = request.body();
  if (body.length === 0) throw new InvalidInputError('send a docker-archive or OCI layout tar as the body');
  const images = await request.services.engine.images.load(request.tenant, [body]);
  const lines = images.flatMap((image) => (image.tags.length ? image.tags.map((tag) => `Loaded image: ${tag}\n`) : [`Loaded image ID: ${image.id}\n`]));
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: lines.map((stream) => JSON.stringify({ stream })).join('\r\n') + '\r\n' };
}

async function saveImages(request: RequestContext, names: readonly string[]): Promise<HttpResult> {
  if (names.length === 0) throw new InvalidInputError('name at least one image to save (names=...)');
  for (const name of names) await orNoSuch(noSuchImage(name), request.services.engine.images.resolve(request.tenant, name));
  return { statusCode: 200, headers: { 'content-type': 'application/x-tar' }, body: await request.services.engine.images.save(request.tenant, names), noRedirect: true };
}

async function inspectImage({ request, params, version }: DockerCall): Promise<HttpResult> {
  const { engine } = request.services;
  const record = await orNoSuch(noSuchImage(params.name), engine.images.resolve(request.tenant, params.name));
  const [summary, config] = await Promise.all([engine.images.inspect(request.tenant, record.id), engine.images.config(record)]);
  return json(200, imageInspect(summary, config, version));
}

/** Newest first. As dockerd does, line n is labelled with the n-th image up the parent chain, the rest `<missing>`. */
async function imageHistory({ request, params }: DockerCall): Promise<HttpResult> {
  const { engine } = request.services;
  const record = await orNoSuch(noSuchImage(params.name), engine.images.resolve(request.tenant, params.name));
  const [summary, config] = await Promise.all([engine.images.inspect(request.tenant, record.id), engine.images.config(record)]);
  const history: HistoryEntry[] = config.history?.length ? config.history : summary.layers.map(() => ({ created: config.created }));
  let layer = 0;
  const entries = history.map((entry) => ({
    Id: '<missing>',
    Created: Math.floor(Date.parse(entry.created ?? '') / 1000) || 0,
    CreatedBy: entry.created_by ?? '',
    Tags: null as string[] | null,
    Size: entry.empty_layer ? 0 : (summary.layers[layer++]?.size ?? 0),
    Comment: entry.comment ?? '',
  }));
  entries.reverse();
  const tags = await engine.images.tagsByImage(request.tenant);
  let image: { id: string; parent?: string } | undefined = record;
  for (const entry of entries) {
    if (!image) break;
    Object.assign(entry, { Id: image.id, Tags: tags.get(image.id) ?? [] });
    image = image.parent ? await engine.images.resolve(request.tenant, image.parent).catch(() => undefined) : undefined;
  }
  return json(200, entries);
}

async function tagImage({ request, params, query }: DockerCall): Promise<HttpResult> {
  const repo = query.get('repo');
  if (!repo) throw new InvalidInputError('repo is required');
  const tag = query.get('tag') || 'latest';
  await orNoSuch(noSuchImage(params.name), request.services.engine.images.resolve(request.tenant, params.name));
  await request.services.engine.images.tag(request.tenant, params.name, `${repo}:${tag}`);
  return { statusCode: 201, headers: {} };
}

async function removeImage({ request, params, query }: DockerCall): Promise<HttpResult> {
  await orNoSuch(noSuchImage(params.name), request.services.engine.images.resolve(request.tenant, params.name));
  const removed = await request.services.engine.images.remove(request.tenant, params.name, { force: truthy(query.get('force')) });
  return json(200, [...removed.untagged.map((Untagged) => ({ Untagged })), ...removed.deleted.map((Deleted) => ({ Deleted }))]);
}

/** Dangling (untagged) images no container uses; with `dangling=false` (`-a`), every unused image. */
async function pruneImages({ request, query }: DockerCall): Promise<HttpResult> {
  const filters = Filters.parse(query.get('filters'), ['dangling', 'label', 'until']);
  if (filters.has('until')) throw new NotImplementedError('the until filter of image prune is not supported');
  const { engine } = request.services;
  const onlyDangling = filters.flag('dangling') ?? true;
  const deleted: object[] = [];
  let reclaimed = 0;
  const candidates = (await engine.images.list(request.tenant)).filter((image: ImageSummary) => image.containers === 0 && (!onlyDangling || image.tags.length === 0));
  for (const image of candidates) {
    if (filters.has('label')) {
      const config = await engine.images.config(await engine.images.resolve(request.tenant, image.id));
      if (!filters.labels(config.config?.Labels ?? {})) continue;
    }
    // One that gained a container or went meanwhile is simply not pruned.
    const removed = await engine.images.remove(request.tenant, image.id).catch((error) => {
      if (error instanceof ConflictError || error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (!removed) continue;
    deleted.push(...removed.untagged.map((Untagged) => ({ Untagged })), ...removed.deleted.map((Deleted) => ({ Deleted })));
    reclaimed += image.size - image.sharedSize;
  }
  return json(200, { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
}
