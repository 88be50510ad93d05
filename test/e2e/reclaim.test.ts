import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dockerArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The local server runs the deployed reclaim function on DynamoDB Local's stream: removing a
 * container or an image frees its storage within seconds, with no sweep called.
 */
let server: RunningServer;

beforeAll(async () => {
  // A grace of 0: the test's layer is seconds old, which would otherwise leave it to the sweep.
  // No scheduled sweep here: what goes, the stream took.
  server = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `reclaim-${Date.now()}`, STRATA_SWEEP_GRACE_MS: '0', STRATA_SWEEP_INTERVAL_MS: '0' });
});
afterAll(async () => server?.stop());

/** Files under the blob folder whose path contains `part` (`/layers/`, `/ns/c-`). */
async function blobFiles(part: string): Promise<string[]> {
  const root = join(server.dataDir, 'blobs');
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((p) => p.includes(part));
}

async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  let value = await probe();
  while (!done(value) && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    value = await probe();
  }
  return value;
}

const call = (method: string, path: string, body?: Buffer | string) =>
  fetch(`${server.url}${path}`, {
    method,
    body: typeof body === 'string' || body === undefined ? body : new Uint8Array(body),
    headers: typeof body === 'string' ? { 'content-type': 'application/json' } : {},
  });

describe('reclaiming from the stream', () => {
  it("frees a removed container's objects, then a removed image's layers, without a sweep", async () => {
    const { archive } = await dockerArchive([[{ path: 'etc/motd', content: 'hi' }], [{ path: 'big', content: Buffer.alloc(300_000, 1) }]], { tags: ['base:1'] });
    expect((await call('POST', '/v1/images/load', archive)).status).toBe(201);
    expect((await call('POST', '/v1/containers', JSON.stringify({ image: 'base:1', name: 'c1' }))).status).toBe(201);
    expect((await call('PUT', '/v1/containers/c1/fs/own', Buffer.alloc(200_000, 2))).status).toBe(200);
    expect(await blobFiles('/ns/c-')).not.toHaveLength(0);
    expect(await blobFiles('/layers/')).toHaveLength(2);

    expect((await call('DELETE', '/v1/containers/c1')).status).toBe(204);
    expect(
      await eventually(
        () => blobFiles('/ns/c-'),
        (files) => files.length === 0,
      ),
    ).toEqual([]);

    expect((await call('DELETE', '/v1/images/base:1')).status).toBe(200);
    expect(
      await eventually(
        () => blobFiles('/layers/'),
        (files) => files.length === 0,
      ),
    ).toEqual([]);

    // Nothing was left for the sweep (its grace spares only the config of nothing now).
    const report = await (await call('POST', '/v1/system/sweep')).json();
    expect(report).toMatchObject({ namespaces: 0, layers: 0, chains: 0 });
  });

  it('sweeps on its own schedule, as the cloud does: an export left behind a 303 goes', async () => {
    await server.stop();
    // A sweep every half second, and answers over 1,000 bytes by a 303, to see the sweep take what they leave.
    server = await startServer({
      STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'),
      STRATA_TABLE: `reclaim-swept-${Date.now()}`,
      STRATA_SWEEP_GRACE_MS: '0',
      STRATA_SWEEP_INTERVAL_MS: '500',
      STRATA_INLINE_LIMIT: '1000',
    });
    const { archive } = await dockerArchive([[{ path: 'data', content: Buffer.alloc(50_000, 4) }]], { tags: ['saved:1'] });
    expect((await call('POST', '/v1/images/load', archive)).status).toBe(201);
    const saved = await fetch(`${server.url}/v1/images/saved:1/save`, { redirect: 'manual' });
    expect(saved.status).toBe(303);
    expect(
      await eventually(
        () => blobFiles('/exports/'),
        (files) => files.length === 0,
      ),
    ).toEqual([]);
  });
});
