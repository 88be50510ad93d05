import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dockerArchive, multiImageArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * Retried loads and commits under an Idempotency-Key, over HTTP against the local server on
 * DynamoDB Local, as a client that timed out and tried again would send them.
 */
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `idempotency-${Date.now()}` });
});
afterAll(async () => server?.stop());

const post = (path: string, body: Buffer | string, key?: string) =>
  fetch(`${server.url}${path}`, {
    method: 'POST',
    body: typeof body === 'string' ? body : new Uint8Array(body),
    headers: { ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}), ...(key ? { 'idempotency-key': key } : {}) },
  });
const images = async () => (await (await fetch(`${server.url}/v1/images`)).json()) as { id: string; tags: string[] }[];

describe('Idempotency-Key', () => {
  it("makes a retried commit answer the first one's image, and a different request under the key a 422", async () => {
    const { archive } = await dockerArchive([[{ path: 'etc/motd', content: 'hi' }]], { tags: ['base:1'] });
    expect((await post('/v1/images/load', archive)).status).toBe(201);
    expect((await post('/v1/containers', JSON.stringify({ image: 'base:1', name: 'c1' }))).status).toBe(201);

    const first = await post('/v1/containers/c1/commit', JSON.stringify({ reference: 'snap:1' }), 'commit-1');
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const made = await first.json();
    const again = await post('/v1/containers/c1/commit', JSON.stringify({ reference: 'snap:1' }), 'commit-1');
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(made);
    expect((await images()).length).toBe(2);

    // Without a key, every commit is a new one (its config has a new time).
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await (await post('/v1/containers/c1/commit', JSON.stringify({}))).json()).id).not.toBe(made.id);

    const reused = await post('/v1/containers/c1/commit', JSON.stringify({ reference: 'other:1' }), 'commit-1');
    expect(reused.status).toBe(422);
    expect(await reused.json()).toMatchObject({ code: 'idempotency_key_reused', message: expect.stringContaining('commit-1') });
    const bad = await post('/v1/containers/c1/commit', JSON.stringify({}), 'has a space');
    expect(bad.status).toBe(400);
  });

  it('makes two copies of a commit sent at once one image', async () => {
    const copies = await Promise.all([1, 2, 3].map(() => post('/v1/containers/c1/commit', JSON.stringify({ reference: 'raced:1' }), 'commit-raced')));
    expect(copies.map((r) => r.status)).toEqual([201, 201, 201]);
    const ids = new Set(await Promise.all(copies.map(async (r) => (await r.json()).id)));
    expect(ids.size).toBe(1);
    expect(copies.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(2);
    expect((await images()).filter((i) => i.tags.includes('raced:1'))).toHaveLength(1);
  });

  it('keeps a large archive loaded once when its copies race, one answering or asking to retry', async () => {
    const many = (name: string) => Array.from({ length: 40 }, (_, i) => `${name}:${i}`);
    const { archive } = await multiImageArchive([
      { layers: [[{ path: 'a', content: 'A' }]], tags: many('p') },
      { layers: [[{ path: 'b', content: 'B' }]], tags: many('q') },
      { layers: [[{ path: 'c', content: 'C' }]], tags: many('r') },
    ]);
    const copies = await Promise.all([1, 2].map(() => post('/v1/images/load', archive, 'load-big')));
    const statuses = copies.map((r) => r.status).sort();
    // The second copy sees the first still recording (409, retry) or its result (201, replayed).
    expect(
      [
        ['201', '201'],
        ['201', '409'],
      ].map(String),
    ).toContain(statuses.map(String).join(','));
    const retried = await post('/v1/images/load', archive, 'load-big');
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect((await images()).flatMap((i) => i.tags).filter((t) => /^[pqr]:/.test(t))).toHaveLength(120);
  });
});
