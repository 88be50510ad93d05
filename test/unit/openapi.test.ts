import { EVENT_SETTLE_MS } from '../../shared/domain/events.js';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Services } from '../../functions/composition.js';
import { createHandler } from '../../functions/http/create-handler.js';
import { responseJsonSchemas, responseSchemas } from '../../functions/http/response-schemas.js';
import { querySchemas } from '../../functions/http/schemas.js';
import type { HttpEvent, HttpResponse, LambdaHandler, Operation } from '../../functions/http/types.js';
import { documentedRoutes as routes, openApiDocument, openApiPaths } from '../../functions/openapi/document.js';
import { containerOperations } from '../../functions/operations/containers.js';
import { fileOperations } from '../../functions/operations/files.js';
import { imageOperations } from '../../functions/operations/images.js';
import { systemOperations } from '../../functions/operations/system.js';
import { uploadOperations } from '../../functions/operations/uploads.js';
import { volumeOperations } from '../../functions/operations/volumes.js';
import { routeKeyOf, type HandlerName, type Route } from '../../functions/routes.js';
import type { Config } from '../../shared/config.js';
import { dockerArchive } from '../support/images.js';
import { localEngine } from '../support/engine.js';

/**
 * The OpenAPI document (generated from the route table and the zod schemas) must describe exactly the route table: same paths and
 * methods, operationId = route.operation, errors as the Error schema, public routes unsecured,
 * and no dangling $ref. Its response schemas must be the zod response schemas, and real
 * responses of the handlers must parse with them.
 */

type Json = Record<string, any>;

const doc = openApiDocument() as Json;

const METHODS = ['get', 'head', 'put', 'patch', 'post', 'delete', 'options', 'trace'] as const;
const ERROR_REF = '#/components/schemas/Error';

/** API Gateway's greedy `{path+}` is `{path}` in OpenAPI. */
const openapiPath = (route: Route) => route.path.replace(/\{(\w+)\+\}/g, '{$1}');
const key = (method: string, path: string) => `${method.toUpperCase()} ${path}`;

/** Every operation in the document, by `METHOD /path`. */
const operations = new Map<string, Json>();
for (const [path, item] of Object.entries(doc.paths as Json)) {
  for (const method of METHODS) if (item[method]) operations.set(key(method, path), item[method]);
}

/** Follows a local `$ref` (`#/a/b/c`); undefined when it points nowhere. */
function resolvePointer(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: any = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function deref(value: Json): Json {
  let node = value;
  for (let hops = 0; node && typeof node.$ref === 'string' && hops < 10; hops++) node = resolvePointer(node.$ref) as Json;
  return node;
}

/** Every `$ref` string anywhere in the document, with where it was found. */
function allRefs(node: unknown, at = '#'): { ref: string; at: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => allRefs(v, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [{ ref: v, at }] : allRefs(v, `${at}/${k}`)));
}

function referencesError(response: Json): boolean {
  const resolved = deref(response);
  return Object.values((resolved?.content ?? {}) as Json).some((media) => media?.schema?.$ref === ERROR_REF);
}

describe('openapi.json', () => {
  it('lists for each operation exactly the query parameters its validator takes', () => {
    const pathItems = doc.paths as Json;
    for (const route of routes) {
      const item = pathItems[openapiPath(route)];
      const parameters = [...(item.parameters ?? []), ...(item[route.method.toLowerCase()].parameters ?? [])].map(deref);
      const documented = parameters
        .filter((p) => p.in === 'query')
        .map((p) => p.name)
        .sort();
      const validated = Object.keys(querySchemas[route.operation]?.shape ?? {}).sort();
      expect(documented, `${route.method} ${route.path}`).toEqual(validated);
    }
  });

  it('takes its request schemas from the validators, which refuse unknown fields', () => {
    const schemas = doc.components.schemas as Json;
    expect(schemas.CreateContainerRequest).toMatchObject({ type: 'object', required: ['image'], additionalProperties: false });
    expect(schemas.CreateContainerRequest.properties.mounts.items).toMatchObject({ required: ['target'], additionalProperties: false });
    expect(schemas.FileAttributes.properties.uid).toMatchObject({ type: 'integer', minimum: 0, maximum: 4294967294 });
    expect(schemas.FileAction.oneOf ?? schemas.FileAction.anyOf).toHaveLength(4);
  });

  it('is OpenAPI 3.1', () => {
    expect(doc.openapi).toMatch(/^3\.1/);
  });

  it('has every route of the route table, with operationId = route.operation', () => {
    for (const route of routes) {
      const operation = operations.get(key(route.method, openapiPath(route)));
      expect(operation, `${route.method} ${route.path} is missing`).toBeDefined();
      expect(operation!.operationId, `${route.method} ${route.path}`).toBe(route.operation);
    }
  });

  it('has no operation that is not in the route table', () => {
    const fromTable = new Set(routes.map((route) => key(route.method, openapiPath(route))));
    expect([...operations.keys()].filter((k) => !fromTable.has(k))).toEqual([]);
    expect(operations.size).toBe(routes.length);
  });

  it('has unique operationIds', () => {
    const ids = [...operations.values()].map((op) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('declares every path parameter of every templated path', () => {
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const method of METHODS) {
        if (!item[method]) continue;
        const params = [...(item.parameters ?? []), ...(item[method].parameters ?? [])].map(deref).filter((p) => p.in === 'path');
        expect(params.map((p) => p.name).sort(), `${method.toUpperCase()} ${path}`).toEqual(templated);
        for (const p of params) expect(p.required, `${p.name} in ${path}`).toBe(true);
      }
    }
  });

  it('gives every non-public operation a 4xx response with the Error schema', () => {
    const publicKeys = new Set(routes.filter((r) => r.public).map((r) => key(r.method, openapiPath(r))));
    for (const [k, operation] of operations) {
      if (publicKeys.has(k)) continue;
      const errors = Object.entries(operation.responses as Json).filter(([status, response]) => /^4\d\d$/.test(status) && referencesError(response));
      expect(errors.length, `${k} declares no 4xx with ${ERROR_REF}`).toBeGreaterThan(0);
    }
  });

  it('secures everything by default and leaves exactly the public routes open', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toContainEqual({ bearerAuth: [] });
    for (const route of routes) {
      const operation = operations.get(key(route.method, openapiPath(route)))!;
      if (route.public) expect(operation.security, `${route.method} ${route.path}`).toEqual([]);
      else expect(operation.security, `${route.method} ${route.path} overrides security`).toBeUndefined();
    }
  });

  it('resolves every $ref to an existing component', () => {
    const refs = allRefs(doc);
    expect(refs.length).toBeGreaterThan(0);
    const dangling = refs.filter(({ ref }) => !ref.startsWith('#/components/') || resolvePointer(ref) === undefined);
    expect(dangling).toEqual([]);
  });

  it('takes every response body schema from the zod response schemas, and uses each of them', () => {
    const generated = responseJsonSchemas();
    const bodies = [...operations.values()].flatMap((op) => Object.values(op.responses as Json)).concat(Object.values(doc.components.responses));
    const used = new Set<string>();
    for (const response of bodies.map(deref)) {
      for (const media of Object.values((response.content ?? {}) as Json)) {
        for (const { ref } of allRefs(media.schema)) used.add(ref.replace('#/components/schemas/', ''));
      }
    }
    for (const name of used) {
      expect(Object.keys(responseSchemas), `${name} is not a response schema`).toContain(name);
      expect(doc.components.schemas[name], name).toEqual(generated[name]);
    }
    // Refs inside the schemas (DirPage's entries, DiskUsage's items) are among them too.
    expect([...used].sort()).toEqual(Object.keys(responseSchemas).sort());
  });

  it('throws for a route that has no operation doc, so no route goes undocumented', () => {
    const undocumented: Route = { method: 'GET', path: '/v1/new', handler: 'system', operation: 'somethingNew' };
    expect(() => openApiPaths([...routes, undocumented])).toThrow(/somethingNew/);
  });
});

// ---- real responses against the document ---------------------------------------------------

const T = 'acme';
const context = { awsRequestId: 'openapi-test' } as Context;
const operationsByHandler: Record<Exclude<HandlerName, 'docker'>, Record<string, Operation>> = {
  system: systemOperations,
  images: imageOperations,
  containers: containerOperations,
  files: fileOperations,
  volumes: volumeOperations,
  uploads: uploadOperations,
};

/** The zod schema of a documented body; notes each response schema met, to check every one was tried. */
const exercised = new Set<string>();
function zodOf(schema: Json): z.ZodType {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/components/schemas/', '') as keyof typeof responseSchemas;
    exercised.add(name);
    return responseSchemas[name];
  }
  if (schema.type === 'array') return z.array(zodOf(schema.items));
  if (schema.oneOf) return z.union(schema.oneOf.map(zodOf));
  if (schema.type === 'object') return z.looseObject({});
  throw new Error(`no zod schema for ${JSON.stringify(schema)}`);
}

describe('real responses of the handlers', () => {
  let cleanup: () => Promise<void>;
  let handlers: Record<string, LambdaHandler>;
  let local: Awaited<ReturnType<typeof localEngine>>;

  beforeAll(async () => {
    local = await localEngine();
    cleanup = local.cleanup;
    const config = { tenantClaim: 'tenant', logLevel: 'CRITICAL', inlineBodyLimit: 4 << 20, presignSeconds: 60, maxFileBytes: 1024 ** 4 } as Config;
    const services: Services = { config, engine: local.engine, meta: local.meta, blobs: local.blobs, streamsBodies: false };
    handlers = Object.fromEntries(Object.entries(operationsByHandler).map(([name, ops]) => [name, createHandler(name as HandlerName, ops, () => services)]));
  });
  afterAll(async () => cleanup());

  interface Call {
    params?: Record<string, string>;
    query?: Record<string, string>;
    headers?: Record<string, string>;
    body?: unknown;
  }

  /** Sends a request through the operation's real handler; checks the status is documented and a JSON body parses as documented. */
  async function call(operation: string, { params = {}, query = {}, headers = {}, body }: Call = {}): Promise<{ status: number; body: any }> {
    const route = routes.find((r) => r.operation === operation)!;
    // Objects travel as JSON; bytes and text as they are.
    const isJson = body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string';
    const raw = body === undefined ? undefined : Buffer.from(isJson ? JSON.stringify(body) : (body as Buffer | string));
    const event = {
      version: '2.0',
      routeKey: routeKeyOf(route),
      rawPath: route.path,
      rawQueryString: '',
      headers: { ...(isJson ? { 'content-type': 'application/json' } : {}), ...headers },
      pathParameters: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, encodeURIComponent(v)])),
      queryStringParameters: query,
      body: raw?.toString('base64'),
      isBase64Encoded: true,
      requestContext: { requestId: operation, http: { method: route.method, path: route.path }, authorizer: { jwt: { claims: { tenant: T } } } },
    } as unknown as HttpEvent;
    const response: HttpResponse = await handlers[route.handler]!(event, context);
    const documented = deref(operations.get(key(route.method, openapiPath(route)))!.responses[String(response.statusCode)]);
    expect(documented, `${operation} answered ${response.statusCode}, which it does not document: ${response.body}`).toBeDefined();
    if (!(response.headers['content-type'] ?? '').startsWith('application/json')) return { status: response.statusCode, body: undefined };
    const schema = documented.content?.['application/json']?.schema;
    expect(schema, `${operation} ${response.statusCode} documents no JSON body`).toBeDefined();
    const json = JSON.parse(response.body as string);
    const parsed = zodOf(schema).safeParse(json);
    expect(parsed.error, `${operation} ${response.statusCode}: ${response.body}`).toBeUndefined();
    // z.object drops fields it does not know, so equality means the body has no undocumented field.
    expect(parsed.data, `${operation} ${response.statusCode} sends fields its schema lacks`).toEqual(json);
    return { status: response.statusCode, body: json };
  }

  it('parse with the documented zod schemas, field for field', async () => {
    const base = [
      [
        { path: 'etc/', dir: true },
        { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
        { path: 'etc/motd', symlink: 'hosts' },
        { path: 'bin/', dir: true },
        { path: 'bin/busybox', content: 'BUSYBOX', mode: 0o755 },
        { path: 'bin/sh', hardlink: 'bin/busybox' },
      ],
    ];
    const { archive } = await dockerArchive(base, { tags: ['base:1'] });
    expect((await call('health')).body).toEqual({ status: 'ok' });
    expect((await call('loadImage', { body: archive })).status).toBe(201);
    await call('listImages');
    await call('inspectImage', { params: { ref: 'base:1' } });
    await call('tagImage', { params: { ref: 'base:1' }, body: { tag: 'base:2' } });

    await call('createVolume', { body: { name: 'keep', labels: { team: 'storage' } } });
    await call('createVolume', {});
    const box = await call('createContainer', {
      body: { image: 'base:1', name: 'box', mounts: [{ target: '/data', volume: 'keep' }, { target: '/scratch' }], labels: { app: 'test' } },
    });
    expect(box.status).toBe(201);
    const id = { id: 'box' };
    const bytes = { 'content-type': 'application/octet-stream' };
    await call('containerFsPut', { params: { ...id, path: 'data/state.json' }, body: '{"n":1}', headers: bytes });
    await call('containerFsPut', { params: { ...id, path: 'etc/new.txt' }, body: 'new', headers: bytes });
    await call('containerFsPut', { params: { ...id, path: 'made' }, query: { type: 'dir' } });
    await call('containerFsPatch', { params: { ...id, path: 'etc/new.txt' }, body: { mode: '0600', mtime: 1_700_000_000_000 } });
    await call('containerFsPost', { params: { ...id, path: 'etc/new.txt' }, body: { action: 'rename', to: '/etc/moved.txt' } });
    await call('containerFsPost', { params: { ...id, path: 'etc/hosts2' }, body: { action: 'link', target: '/etc/hosts' } });
    await call('containerFsPost', { params: { ...id, path: 'sym' }, body: { action: 'symlink', target: '/etc/hosts' } });
    await call('containerFsPost', { params: { ...id, path: 'deep/er' }, body: { action: 'mkdir', parents: true } });
    await call('containerFsDelete', { params: { ...id, path: 'bin/sh' } });
    const linked = await call('containerFsGet', { params: { ...id, path: 'etc/hosts' }, query: { stat: 'true' } });
    expect(linked.body).toMatchObject({ nlink: 2, inode: expect.any(String) });
    const link = await call('containerFsGet', { params: { ...id, path: 'sym' }, query: { stat: 'true', follow: 'false' } });
    expect(link.body).toMatchObject({ type: 'symlink', target: '/etc/hosts' });
    await call('containerFsGet', { params: { ...id, path: 'etc' } });
    await call('containerFsGet', { params: { ...id, path: 'etc/hosts' } });
    await call('containerFsHead', { params: { ...id, path: 'etc/hosts' } });
    const page = await call('containerFsRoot', { params: id, query: { limit: '1' } });
    expect(page.body.cursor).toEqual(expect.any(String));
    await call('containerChanges', { params: id });
    await call('listContainers', { query: { size: 'true' } });
    await call('listContainers');
    await call('inspectContainer', { params: id });
    const changes = await call('containerFeed', { params: id, query: { after: '0', limit: '3' } });
    expect(changes.body).toMatchObject({
      next: 3,
      entries: [
        { seq: 1, kind: 'added', path: '/etc/new.txt', type: 'file', size: 3 },
        { seq: 2, kind: 'added', path: '/made', type: 'dir' },
        { seq: 3, kind: 'modified' },
      ],
    });
    expect((await call('volumeFeed', { params: { name: 'keep' }, query: { after: 'latest', wait: '0' } })).body).toEqual({ entries: [], next: 1 });
    expect((await call('containerFeed', { params: id, query: { after: 'soon' } })).status).toBe(400);
    await call('createContainer', { body: { image: 'base:1', name: 'capped', quota: { bytes: 10 }, ttlSeconds: 3600, extendOnWrite: true } });
    expect((await call('updateContainer', { params: { id: 'capped' }, body: { expiresAt: null } })).body.expiresAt).toBeUndefined();
    expect((await call('updateContainer', { params: { id: 'capped' }, body: { ttlSeconds: 60 } })).body).toMatchObject({ ttlSeconds: 60, expiresAt: expect.any(Number) });
    expect((await call('createContainer', { body: { image: 'base:1', expiresAt: 1 } })).body.message).toContain('expiresAt');
    expect((await call('containerFsPut', { params: { id: 'capped', path: 'big' }, body: 'x'.repeat(11), headers: bytes })).body).toMatchObject({ code: 'quota_exceeded' });
    expect((await call('updateContainer', { params: { id: 'capped' }, body: { quota: { bytes: null, entries: 5 } } })).body.quota).toEqual({ bytes: null, entries: 5, usedBytes: 0, usedEntries: 0 });
    expect((await call('updateContainer', { params: id, body: { quota: { bytes: 1 } } })).status).toBe(409);
    await call('createVolume', { body: { name: 'capped', quota: { entries: 1 }, ttlSeconds: 600 } });
    expect((await call('updateVolume', { params: { name: 'capped' }, body: { expiresAt: Date.now() + 60_000 } })).body.ttlSeconds).toBeUndefined();
    expect((await call('updateVolume', { params: { name: 'capped' }, body: { quota: { bytes: 100 } } })).body.quota).toEqual({ bytes: 100, entries: 1, usedBytes: 0, usedEntries: 0 });
    expect((await call('createVolume', { body: { name: 'bad', quota: { bytes: -1 } } })).body.message).toContain('quota.bytes');
    await call('forkContainer', { params: { id: 'capped' }, body: { name: 'capped-fork' } });
    await call('containerFsPut', { params: { id: 'capped-fork', path: 'f' }, body: 'fork', headers: bytes });
    await call('containerFsPut', { params: { id: 'capped', path: 'f' }, body: 'base', headers: bytes });
    expect((await call('mergeContainer', { params: { id: 'capped' }, body: { from: 'capped-fork' } })).body.conflicts).toEqual([{ path: '/f', ours: 'added', theirs: 'added' }]);
    expect((await call('mergeContainer', { params: { id: 'capped' }, body: { from: 'capped-fork', strategy: 'theirs' } })).body).toMatchObject({ applied: true, merged: 1 });
    expect((await call('mergeContainer', { params: { id: 'capped' }, body: { from: 'capped-fork', strategy: 'sideways' } })).status).toBe(400);
    await call('commitContainer', { params: id, body: { reference: 'base:committed', author: 'test' } });

    const committed = await call('inspectImage', { params: { ref: 'base:committed' } });
    expect(committed.body.parent).toEqual(expect.stringMatching(/^sha256:/));
    await call('imageFsRoot', { params: { ref: 'base:committed' } });
    await call('imageFsGet', { params: { ref: 'base:committed', path: 'etc/moved.txt' }, query: { stat: 'true' } });
    await call('volumeFsRoot', { params: { name: 'keep' } });
    await call('volumeFsGet', { params: { name: 'keep', path: 'state.json' }, query: { stat: 'true' } });
    await call('listVolumes');
    await call('inspectVolume', { params: { name: 'keep' } });
    await call('systemDf');

    expect((await call('removeImage', { params: { ref: 'base:2' } })).body).toEqual({ untagged: ['base:2'], deleted: [] });
    expect((await call('untagImage', { params: { ref: 'base:committed', tag: 'base:1' } })).status).toBe(404);
    expect((await call('removeContainer', { params: id, query: { volumes: 'true' } })).status).toBe(204);
    expect((await call('pruneVolumes', { query: { all: 'true' } })).body.removed).toContain('keep');
    await call('sweep');
    // An asynchronous load: queued (202, a Job), run as the stream would run it, then read back.
    const upload = (await call('createUpload')).body;
    const uploadKey = (await local.meta.get({ pk: `${T}#uploads`, sk: upload.id }))!.attrs.key as string;
    await local.blobs.put(uploadKey, (await dockerArchive([[{ path: 'async', content: 'job' }]], { tags: ['async:1'] })).archive);
    const queued = await call('loadImage', { query: { upload: upload.id, async: 'true' } });
    expect(queued).toMatchObject({ status: 202, body: { status: 'queued', kind: 'load' } });
    await local.engine.jobs.run(T, queued.body.id);
    expect((await call('getJob', { params: { job: queued.body.id } })).body).toMatchObject({ status: 'succeeded', result: { images: [{ tags: ['async:1'] }] } });
    expect((await call('getJob', { params: { job: 'nope' } })).status).toBe(404);
    // The feed shows events once they are EVENT_SETTLE_MS old.
    await new Promise((resolve) => setTimeout(resolve, EVENT_SETTLE_MS + 50));
    const feed = await call('listEvents', { query: { limit: '5' } });
    expect(feed.body.events.map((e: { type: string }) => e.type)).toEqual(['image.loaded', 'image.tagged', 'volume.created', 'volume.created', 'volume.created']);
    expect((await call('listEvents', { query: { since: feed.body.cursor } })).body.events.length).toBeGreaterThan(5);
    expect((await call('listEvents', { query: { since: 'nope' } })).status).toBe(400);
    expect((await call('inspectImage', { params: { ref: 'nope:1' } })).body).toMatchObject({ code: 'not_found' });
    expect((await call('listImages', { query: { bogus: '1' } })).body).toMatchObject({ code: 'invalid_input' });

    expect([...exercised].sort()).toEqual(Object.keys(responseSchemas).sort());
  });
});
