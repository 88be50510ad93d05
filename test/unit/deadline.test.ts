import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Services } from '../../functions/composition.js';
import { startLocalServer } from '../../functions/local/server.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import type { Config } from '../../shared/config.js';
import { Engine } from '../../shared/engine.js';
import { dockerArchive } from '../support/images.js';

/** A request whose storage stalls is answered at its deadline, with JSON, not left hanging. */
let dir: string;
let url: string;
let close: () => Promise<void>;
let stall = false;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-deadline-'));
  const meta = new MemoryMetadataStore();
  const blobs = new FsBlobStore(dir, async (key) => key);
  const put = blobs.put.bind(blobs);
  // The injected fault: a blob store that stops answering.
  blobs.put = (key, body) => (stall ? new Promise(() => undefined) : put(key, body));
  const config = {
    tableName: 't',
    blobs: { kind: 'fs', root: dir },
    region: 'local',
    inlineBodyLimit: 4 << 20,
    presignSeconds: 60,
    maxFileBytes: 1024 ** 4,
    tenantClaim: 'tenant',
    logLevel: 'ERROR',
  } as Config;
  const services: Services = { config, engine: new Engine(meta, blobs), meta, blobs, streamsBodies: false };
  const server = await startLocalServer({ services, port: 0, host: '127.0.0.1', signingKey: randomBytes(32), maxBodyBytes: 64 << 20, requestTimeoutMs: 2500 });
  ({ url, close } = server);
});
afterAll(async () => {
  await close?.();
  await rm(dir, { recursive: true, force: true });
});

describe('request deadlines', () => {
  it('answers a load whose blob writes stall with 503 deadline_exceeded at the deadline', async () => {
    const { archive } = await dockerArchive([[{ path: 'a', content: 'A' }]], { tags: ['slow:1'] });
    stall = true;
    const response = await fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) });
    stall = false;
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ code: 'deadline_exceeded', message: expect.stringMatching(/did not finish within its deadline/) });
    expect(await (await fetch(`${url}/v1/images`)).json()).toEqual([]);
  });

  it('leaves requests that finish in time alone', async () => {
    const { archive } = await dockerArchive([[{ path: 'a', content: 'A' }]], { tags: ['fast:1'] });
    const response = await fetch(`${url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) });
    expect(response.status).toBe(201);
  });
});
