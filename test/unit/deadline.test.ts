import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { getEventListeners } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Services, servicesOver } from '../../functions/composition.js';
import { startLocalServer } from '../../functions/local/server.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { serverConfig } from '../support/server-config.js';
import { dockerArchive } from '../support/images.js';

/**
 * The deadline harness: a storage call that stops answering is injected at each stage of load,
 * save, export, commit, read and write. Each request must be answered 503 deadline_exceeded by its
 * deadline, and then the work behind it must stop: the stalled streams destroyed, and memory,
 * file descriptors and partial files back where they were before the request.
 */
const TIMEOUT_MS = 2500;
let dir: string;
let url: string;
let close: () => Promise<void>;
let meta: MetadataStore;
let services: Services;

/** What stalls, and what the stall holds (to check it is let go). */
let stall: { method: 'put' | 'get' | 'copy' | 'meta.getMany' | 'meta.transact'; match?: (key: string) => boolean } | undefined;
const held: Readable[] = [];

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-deadline-'));
  const rawMeta = new MemoryMetadataStore();
  const blobs = new FsBlobStore(dir, async (key) => `http://blobs.invalid/${key}`);
  const stalls = (method: string, key?: string) => stall?.method === method && (!stall.match || (key !== undefined && stall.match(key)));
  // A blob store that stops answering: a put that never reads its source (it fails once the
  // source is destroyed, as an SDK upload does), a get whose stream never delivers a byte.
  const faultyBlobs: BlobStore = Object.assign(Object.create(blobs), {
    put: (key: string, body: Readable | Buffer) => {
      if (!stalls('put', key)) return blobs.put(key, body);
      if (Buffer.isBuffer(body)) return new Promise(() => undefined);
      held.push(body);
      return new Promise((_, reject) => body.once('close', () => reject(new Error('upload aborted'))));
    },
    get: async (key: string, range?: { start: number; end: number }) => {
      if (!stalls('get', key)) return blobs.get(key, range);
      const silent = new Readable({ read() {} });
      held.push(silent);
      return silent;
    },
    copy: (source: string, target: string, range?: { start: number; end: number }) => (stalls('copy', source) ? new Promise(() => undefined) : blobs.copy(source, target, range)),
  });
  // A metadata store whose chosen call never answers.
  meta = new Proxy(rawMeta, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => (stalls(`meta.${String(property)}`) ? new Promise(() => undefined) : value.apply(target, args));
    },
  });
  const config = serverConfig(dir, { logLevel: 'CRITICAL' });
  services = servicesOver(config, meta, faultyBlobs);
  const server = await startLocalServer({ services, port: 0, host: '127.0.0.1', signingKey: randomBytes(32), maxBodyBytes: 64 << 20, requestTimeoutMs: TIMEOUT_MS });
  ({ url, close } = server);

  // The starting point: an image of 14 MiB in three files, a container with its own 6 MiB file.
  const { archive } = await dockerArchive(
    [
      [
        { path: 'a', content: randomBytes(6 << 20) },
        { path: 'b', content: randomBytes(4 << 20) },
        { path: 'c', content: randomBytes(4 << 20) },
      ],
    ],
    { tags: ['base:1'] },
  );
  expect((await fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
  expect((await post('/v1/containers', { image: 'base:1', name: 'box' })).status).toBe(201);
  expect((await fetch(`${url}/v1/containers/box/fs/own`, { method: 'PUT', body: new Uint8Array(randomBytes(6 << 20)) })).ok).toBe(true);
});
afterAll(async () => {
  await close?.();
  await rm(dir, { recursive: true, force: true });
});

const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function memory(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

const descriptors = async () => (await readdir('/proc/self/fd')).length;

async function partialFiles(path = dir): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...(await partialFiles(join(path, entry.name))));
    else if (entry.name.startsWith('.strata-partial-')) found.push(entry.name);
  }
  return found;
}

/** Polls (no timing is asserted) until the check holds or a few seconds pass. */
async function eventually(check: () => Promise<boolean> | boolean): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  return check();
}

const bigArchive = async () => (await dockerArchive([[{ path: 'big', content: randomBytes(24 << 20) }]], { tags: ['slow:1'] })).archive;

const cases: [string, NonNullable<typeof stall>, () => Promise<Response>][] = [
  [
    'a load whose layer upload stalls',
    { method: 'put', match: (k) => k.includes('/layers/') },
    async () => fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(await bigArchive()) }),
  ],
  ['a load whose metadata transaction stalls', { method: 'meta.transact' }, async () => fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(await bigArchive()) })],
  ['a save whose layer read stalls', { method: 'get', match: (k) => k.includes('/layers/') }, () => fetch(`${url}/v1/images/base:1/save`, { redirect: 'manual' })],
  ['a save whose spooled upload stalls', { method: 'put', match: (k) => k.includes('/exports/') }, () => fetch(`${url}/v1/images/base:1/save`, { redirect: 'manual' })],
  ['an export whose reads stall', { method: 'get' }, () => fetch(`${url}/v1/containers/box/export`, { redirect: 'manual' })],
  ['a commit whose reads stall', { method: 'get' }, () => post('/v1/containers/box/commit', { reference: 'snap:1' })],
  ['a commit whose layer upload stalls', { method: 'put' }, () => post('/v1/containers/box/commit', { reference: 'snap:1' })],
  ['a large read whose copy stalls', { method: 'copy' }, () => fetch(`${url}/v1/containers/box/fs/a`, { redirect: 'manual' })],
  ['a read whose metadata lookup stalls', { method: 'meta.getMany' }, () => fetch(`${url}/v1/containers/box/fs/own`, { redirect: 'manual' })],
  ['a write whose upload stalls', { method: 'put' }, () => fetch(`${url}/v1/containers/box/fs/new`, { method: 'PUT', body: new Uint8Array(randomBytes(8 << 20)) })],
];

describe('the deadline harness', () => {
  it.each(cases)('%s is answered at its deadline and lets go of what it held', async (_name, fault, request) => {
    const images = await (await fetch(`${url}/v1/images`)).json();
    const memoryBefore = await memory();
    const descriptorsBefore = await descriptors();
    held.length = 0;

    stall = fault;
    const started = Date.now();
    const response = await request();
    const elapsed = Date.now() - started;
    stall = undefined;

    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ code: 'deadline_exceeded', message: expect.stringMatching(/did not finish within its deadline/) });
    // Answered by the deadline, not held until the test gives up (the stall never answers, so only
    // the deadline can end it; how long past it depends on this shared machine's load).
    expect(elapsed).toBeLessThan(TIMEOUT_MS * 8);
    expect(await eventually(() => held.every((stream) => stream.destroyed))).toBe(true);
    held.length = 0;
    expect(await eventually(async () => (await partialFiles()).length === 0)).toBe(true);
    expect(await eventually(async () => (await descriptors()) <= descriptorsBefore)).toBe(true);
    // The request's body (24 MiB for a load) and what it read are let go, not kept by stalled work.
    expect(await eventually(async () => (await memory()) - memoryBefore < 6 << 20)).toBe(true);
    expect(await (await fetch(`${url}/v1/images`)).json()).toEqual(images);
    // What it wrote before it was stopped is what a crash leaves: the sweep takes it, fsck finds nothing.
    await services.engine.sweeper.sweep('local', { graceMs: 0 });
    expect((await services.engine.fsck.check('local', { graceMs: 0 })).problems).toEqual([]);
  });

  it('a client that goes away mid-request stops the work behind it', async () => {
    const descriptorsBefore = await descriptors();
    held.length = 0;
    stall = { method: 'get', match: (k) => k.includes('/layers/') };
    const gone = new AbortController();
    const request = fetch(`${url}/v1/images/base:1/save`, { redirect: 'manual', signal: gone.signal });
    await eventually(() => held.length > 0);
    gone.abort();
    await expect(request).rejects.toThrow();
    stall = undefined;
    expect(held.length).toBeGreaterThan(0);
    expect(await eventually(() => held.every((stream) => stream.destroyed))).toBe(true);
    expect(await eventually(async () => (await partialFiles()).length === 0)).toBe(true);
    expect(await eventually(async () => (await descriptors()) <= descriptorsBefore)).toBe(true);
  });

  it('leaves requests that finish in time alone', async () => {
    const { archive } = await dockerArchive([[{ path: 'a', content: 'A' }]], { tags: ['fast:1'] });
    const response = await fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) });
    expect(response.status).toBe(201);
    expect((await fetch(`${url}/v1/containers/box/fs/own`, { redirect: 'manual' })).status).toBe(303);
  });
});

describe('the cancellable scope', () => {
  it('leaves no listener on the signal once its work is done (a warm function reuses one signal)', async () => {
    const { runCancellable } = await import('../../functions/http/cancellation.js');
    const controller = new AbortController();
    for (let i = 0; i < 50; i++) await runCancellable(controller.signal, async () => i);
    await runCancellable(controller.signal, async () => Promise.reject(new Error('failed work'))).catch(() => undefined);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
