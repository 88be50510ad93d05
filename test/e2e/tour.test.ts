import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The README's tour, driven over HTTP against the local server started as a user starts it,
 * plus every error status the API promises.
 */
let server: RunningServer;
const TOKEN = 'token-of-acme';
const OTHER = 'token-of-globex';

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-tokens-'));
  const tokens = join(dir, 'tokens.json');
  await writeFile(tokens, JSON.stringify({ tokens: { [TOKEN]: 'acme', [OTHER]: 'globex' } }));
  server = await startServer({ STRATA_TOKENS_FILE: tokens, STRATA_INLINE_LIMIT: String(64 * 1024), STRATA_MAX_BODY_BYTES: String(1024 * 1024) });
});
afterAll(async () => server?.stop());

async function call(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; token?: string | null } = {}) {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token !== null) headers.authorization = `Bearer ${options.token ?? TOKEN}`;
  let body: BodyInit | undefined;
  if (Buffer.isBuffer(options.body) || typeof options.body === 'string') body = options.body as BodyInit;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(server.url + path, { method, headers, body, redirect: 'manual' });
  const bytes = Buffer.from(await response.arrayBuffer());
  const text = bytes.toString('utf8');
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, bytes, json };
}

const base = [
  [
    { path: 'etc/', dir: true },
    { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
    { path: 'etc/os-release', content: 'ID=strata\n' },
    { path: 'big.bin', content: Buffer.alloc(200 * 1024, 7) },
    { path: 'home/', dir: true },
  ],
  [{ path: 'etc/motd', content: 'welcome\n' }],
];

describe('the tour', () => {
  let containerId: string;

  it('loads an image from a docker-archive tar through an upload that loads itself, as the README does', async () => {
    const { archive, imageId } = await dockerArchive(base, { tags: ['demo:1'] });
    const up = await call('POST', '/v1/uploads', { body: { load: true } });
    expect(up.status).toBe(201);
    expect((await fetch(up.json.url, { method: 'PUT', body: new Uint8Array(archive) })).status).toBe(200);
    let job: any;
    for (const until = Date.now() + 30_000; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
      job = (await call('GET', `/v1/jobs/${up.json.job}`)).json;
      if (job.status === 'succeeded' || job.status === 'failed') break;
    }
    expect(job).toMatchObject({ status: 'succeeded', result: { images: [{ id: imageId, tags: ['demo:1'] }] } });
    // The same archive inline, as small archives may be sent, names the image it already is.
    const loaded = await call('POST', '/v1/images/load', { body: archive, headers: { 'content-type': 'application/x-tar' } });
    expect(loaded.status).toBe(201);
    expect(loaded.json.images).toEqual([{ id: imageId, tags: ['demo:1'] }]);
    const list = await call('GET', '/v1/images');
    expect(list.json.map((i: { tags: string[] }) => i.tags)).toEqual([['demo:1']]);
  });

  it('creates a container with a volume mounted', async () => {
    const created = await call('POST', '/v1/containers', { body: { image: 'demo:1', name: 'web', mounts: [{ target: '/data', volume: 'keep' }] } });
    expect(created.status).toBe(201);
    containerId = created.json.id;
    expect(containerId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads a file from a lower layer, whole and by range, with ETag and 304', async () => {
    const whole = await call('GET', '/v1/containers/web/fs/etc/hosts');
    expect(whole.status).toBe(200);
    expect(whole.text).toBe('127.0.0.1 localhost\n');
    expect(whole.headers.get('content-length')).toBe('20');
    const etag = whole.headers.get('etag')!;
    const ranged = await call('GET', '/v1/containers/web/fs/etc/hosts', { headers: { range: 'bytes=0-8' } });
    expect(ranged.status).toBe(206);
    expect(ranged.text).toBe('127.0.0.1');
    expect(ranged.headers.get('content-range')).toBe('bytes 0-8/20');
    expect((await call('GET', '/v1/containers/web/fs/etc/hosts', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const head = await call('HEAD', '/v1/containers/web/fs/etc/hosts');
    expect(head.headers.get('x-strata-type')).toBe('file');
    expect(head.headers.get('content-length')).toBe('20');
  });

  it('answers a read larger than the inline limit with 303 to a presigned URL', async () => {
    const res = await call('GET', '/v1/containers/web/fs/big.bin');
    expect(res.status).toBe(303);
    const download = await fetch(res.headers.get('location')!);
    const bytes = Buffer.from(await download.arrayBuffer());
    expect(bytes.length).toBe(200 * 1024);
    expect(bytes.every((b) => b === 7)).toBe(true);
  });

  it('writes a file, lists the merged directory, and shows changes and sizes', async () => {
    const put = await call('PUT', '/v1/containers/web/fs/etc/hosts', { body: '10.0.0.1 db\n' });
    expect(put.status).toBe(200);
    expect((await call('GET', '/v1/containers/web/fs/etc/hosts')).text).toBe('10.0.0.1 db\n');
    expect((await call('PUT', '/v1/containers/web/fs/home/app?type=dir')).status).toBe(201);
    expect((await call('PUT', '/v1/containers/web/fs/home/app/two', { body: 'hi' })).status).toBe(200);
    const listing = await call('GET', '/v1/containers/web/fs/etc');
    expect(listing.json.entries.map((e: { name: string }) => e.name)).toEqual(['hosts', 'motd', 'os-release']);
    const changes = await call('GET', '/v1/containers/web/changes');
    expect(changes.json).toEqual([
      { path: '/etc', kind: 0, kindName: 'C' },
      { path: '/etc/hosts', kind: 0, kindName: 'C' },
      { path: '/home', kind: 0, kindName: 'C' },
      { path: '/home/app', kind: 1, kindName: 'A' },
      { path: '/home/app/two', kind: 1, kindName: 'A' },
    ]);
    const inspected = await call('GET', '/v1/containers/web');
    expect(inspected.json.size).toBe(14);
    const image = await call('GET', '/v1/images/demo:1');
    expect(inspected.json.virtualSize).toBe(image.json.size + 14);
    const sized = await call('GET', '/v1/containers?size=true');
    expect(sized.json[0].size).toBe(14);
  });

  it('renames, links, changes attributes and writes byte ranges', async () => {
    expect((await call('POST', '/v1/containers/web/fs/etc/os-release', { body: { action: 'rename', to: '/etc/release' } })).status).toBe(200);
    expect((await call('POST', '/v1/containers/web/fs/etc/hosts2', { body: { action: 'link', target: '/etc/hosts' } })).status).toBe(201);
    expect((await call('POST', '/v1/containers/web/fs/hosts-link', { body: { action: 'symlink', target: '/etc/hosts' } })).status).toBe(201);
    expect((await call('GET', '/v1/containers/web/fs/hosts-link')).text).toBe('10.0.0.1 db\n');
    const chmod = await call('PATCH', '/v1/containers/web/fs/etc/release', { body: { mode: '0600', uid: 1000 } });
    expect(chmod.json).toMatchObject({ mode: 0o600, uid: 1000 });
    const patched = await call('PATCH', '/v1/containers/web/fs/etc/release?offset=3', { body: 'XY', headers: { 'content-type': 'application/octet-stream' } });
    expect(patched.status).toBe(200);
    expect((await call('GET', '/v1/containers/web/fs/etc/release')).text).toBe('ID=XYrata\n');
    await call('PATCH', '/v1/containers/web/fs/etc/release?append=true', { body: 'END', headers: { 'content-type': 'application/octet-stream' } });
    expect((await call('GET', '/v1/containers/web/fs/etc/release')).text).toBe('ID=XYrata\nEND');
    expect((await call('DELETE', '/v1/containers/web/fs/etc/motd')).status).toBe(204);
  });

  it('takes a large write through the upload flow', async () => {
    const upload = await call('POST', '/v1/uploads');
    expect(upload.status).toBe(201);
    const bytes = Buffer.alloc(1536 * 1024, 3);
    const sent = await fetch(upload.json.url, { method: 'PUT', body: bytes });
    expect(sent.status).toBe(200);
    const adopted = await call('PUT', `/v1/containers/web/fs/uploaded.bin?upload=${upload.json.id}`);
    expect(adopted.status).toBe(200);
    expect(adopted.json.size).toBe(bytes.length);
  });

  it('commits the container into a new image whose containers see the change', async () => {
    const committed = await call('POST', '/v1/containers/web/commit', { body: { reference: 'demo:2', comment: 'tour' } });
    expect(committed.status).toBe(201);
    expect((await call('POST', '/v1/containers', { body: { image: 'demo:2', name: 'web2' } })).status).toBe(201);
    expect((await call('GET', '/v1/containers/web2/fs/etc/hosts')).text).toBe('10.0.0.1 db\n');
    expect((await call('GET', '/v1/containers/web2/fs/etc/motd')).status).toBe(404);
    expect((await call('GET', '/v1/images/demo:2/fs/home/app/two')).text).toBe('hi');
  });

  it('writes into the mounted volume, deletes the container, and finds the volume intact', async () => {
    expect((await call('PUT', '/v1/containers/web/fs/data/state.json', { body: '{"n":1}' })).status).toBe(200);
    expect((await call('DELETE', '/v1/containers/web?volumes=true')).status).toBe(204);
    expect((await call('GET', '/v1/containers/web')).status).toBe(404);
    expect((await call('GET', '/v1/volumes/keep/fs/state.json')).text).toBe('{"n":1}');
    const volume = await call('GET', '/v1/volumes/keep');
    expect(volume.json).toMatchObject({ name: 'keep', refCount: 0, size: 7 });
  });

  it('exports a container and saves an image as tars, and reports disk usage', async () => {
    const exported = await call('GET', '/v1/containers/web2/export');
    expect(exported.status === 200 || exported.status === 303).toBe(true);
    const saved = await call('GET', '/v1/images/demo:1/save');
    expect([200, 303]).toContain(saved.status);
    const df = await call('GET', '/v1/system/df');
    expect(df.json.images.count).toBe(2);
    expect(df.json.volumes.count).toBe(1);
  });
});

describe('errors', () => {
  it('400: bad paths and bad JSON say what was wrong', async () => {
    const bad = await call('PUT', '/v1/volumes/keep/fs/..%2F..%2Fetc%2Fpasswd', { body: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/climbs above the root/);
    const json = await call('POST', '/v1/containers', { body: '{not json', headers: { 'content-type': 'application/json' } });
    expect(json.status).toBe(400);
    expect(json.json).toEqual({ message: 'the body is not valid JSON', code: 'invalid_input' });
    const notObject = await call('POST', '/v1/containers', { body: 'null', headers: { 'content-type': 'application/json' } });
    expect(notObject.status).toBe(400);
    expect(notObject.json.message).toBe('the body must be a JSON object');
    const tar = await call('POST', '/v1/images/load', { body: Buffer.from('not a tar at all'.repeat(64)) });
    expect(tar.status).toBe(400);
  });

  it('401 without credentials, and one tenant never sees another', async () => {
    const anonymous = await call('GET', '/v1/images', { token: null });
    expect(anonymous.status).toBe(401);
    expect((await call('GET', '/v1/images', { token: 'wrong' })).status).toBe(401);
    expect((await call('GET', '/v1/images', { token: OTHER })).json).toEqual([]);
    expect((await call('GET', '/v1/volumes/keep', { token: OTHER })).status).toBe(404);
    expect((await call('GET', '/healthz', { token: null })).status).toBe(200);
  });

  it('403 for a write through a read-only mount', async () => {
    await call('POST', '/v1/containers', { body: { image: 'demo:1', name: 'reader', mounts: [{ target: '/data', volume: 'keep', readOnly: true }] } });
    const res = await call('PUT', '/v1/containers/reader/fs/data/x', { body: 'x' });
    expect(res.status).toBe(403);
  });

  it('404 for what does not exist, with a clear message', async () => {
    const res = await call('GET', '/v1/containers/reader/fs/dne');
    expect(res.status).toBe(404);
    expect(res.json.message).toMatch(/\/dne/);
    expect((await call('GET', '/v1/images/nope:1')).status).toBe(404);
  });

  it('409 for a volume in use and a non-empty rmdir', async () => {
    expect((await call('DELETE', '/v1/volumes/keep')).status).toBe(409);
    const rmdir = await call('DELETE', '/v1/containers/web2/fs/etc');
    expect(rmdir.status).toBe(409);
    expect(rmdir.json.code).toBe('ENOTEMPTY');
  });

  it('412 when If-Match is stale or If-None-Match: * finds the file', async () => {
    expect((await call('PUT', '/v1/containers/web2/fs/etc/hosts', { body: 'x', headers: { 'if-match': '"stale"' } })).status).toBe(412);
    expect((await call('PUT', '/v1/containers/web2/fs/etc/hosts', { body: 'x', headers: { 'if-none-match': '*' } })).status).toBe(412);
    expect((await call('GET', '/v1/containers/web2/fs/etc/hosts')).text).toBe('10.0.0.1 db\n');
  });

  it('413 for a body over the inline limit', async () => {
    const res = await call('PUT', '/v1/containers/web2/fs/huge', { body: Buffer.alloc(2 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(res.json.message).toMatch(/uploads/);
  });

  it('416 for a range outside the file', async () => {
    const res = await call('GET', '/v1/containers/web2/fs/etc/hosts', { headers: { range: 'bytes=500-600' } });
    expect(res.status).toBe(416);
  });

  it('405 for a method a path does not take, and the OpenAPI document is served', async () => {
    expect((await call('PUT', '/v1/images/demo:1/fs/etc/hosts', { body: 'x' })).status).toBe(405);
    const doc = await call('GET', '/openapi.json', { token: null });
    expect(doc.json.openapi).toMatch(/^3\.1/);
  });
});
