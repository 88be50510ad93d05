import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servicesOver } from '../../functions/composition.js';
import { startLocalServer } from '../../functions/local/server.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { serverConfig } from '../support/server-config.js';
import { dockerArchive } from '../support/images.js';

/**
 * A large sparse file on the local server (which can stream): read in full, it streams its
 * holes as zeros instead of copying them into a blob for a 303, whatever their size.
 */
let dir: string;
let url: string;
let close: () => Promise<void>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-sparse-'));
  const blobs = new FsBlobStore(dir, async (key) => `http://blobs.invalid/${key}`);
  const config = serverConfig(dir);
  const services = servicesOver(config, new MemoryMetadataStore(), blobs, { canStream: true });
  ({ url, close } = await startLocalServer({ services, port: 0, host: '127.0.0.1', signingKey: randomBytes(32), maxBodyBytes: 64 << 20 }));
  const { archive } = await dockerArchive([[{ path: 'etc/hosts', content: 'h' }]], { tags: ['base:1'] });
  expect((await fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
  await fetch(`${url}/v1/containers`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 'base:1', name: 'box' }) });
});
afterAll(async () => {
  await close?.();
  await rm(dir, { recursive: true, force: true });
});

async function fileCount(path = dir): Promise<number> {
  let n = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) n += entry.isDirectory() ? await fileCount(join(path, entry.name)) : 1;
  return n;
}

describe('sparse reads on a server that streams', () => {
  it('a 200 MiB file of holes around 1 MiB of data streams in full and writes no blob', async () => {
    const data = randomBytes(1 << 20);
    const at = 150 << 20;
    expect((await fetch(`${url}/v1/containers/box/fs/sparse`, { method: 'PUT', body: new Uint8Array(0) })).ok).toBe(true);
    const patch = await fetch(`${url}/v1/containers/box/fs/sparse`, { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ size: 200 << 20 }) });
    expect(patch.ok).toBe(true);
    expect((await fetch(`${url}/v1/containers/box/fs/sparse?offset=${at}`, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) })).ok).toBe(true);
    const blobsBefore = await fileCount();

    const response = await fetch(`${url}/v1/containers/box/fs/sparse`, { redirect: 'manual' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(200 << 20));
    const expected = createHash('sha256');
    expected.update(Buffer.alloc(at));
    expected.update(data);
    expected.update(Buffer.alloc((200 << 20) - at - data.length));
    const got = createHash('sha256');
    for await (const chunk of response.body!) got.update(chunk);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
    expect(await fileCount()).toBe(blobsBefore);
  });

  it('a large file without holes still answers 303 to a copy', async () => {
    expect((await fetch(`${url}/v1/containers/box/fs/dense`, { method: 'PUT', body: new Uint8Array(randomBytes(6 << 20)) })).ok).toBe(true);
    expect((await fetch(`${url}/v1/containers/box/fs/dense`, { redirect: 'manual' })).status).toBe(303);
  });
});
