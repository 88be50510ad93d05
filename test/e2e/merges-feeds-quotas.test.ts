import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { multiImageArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';
import { clientOf } from '../support/http-client.js';

/**
 * Merges, change feeds, quotas and expiry over HTTP on the local server with DynamoDB Local,
 * concurrency included: what a sandbox platform does when agents work on forks of one workspace.
 */
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `sync-${Date.now()}`, STRATA_EXPIRY_INTERVAL_MS: '200' });
  const { archive } = await multiImageArchive([
    {
      layers: [
        [
          { path: 'app/', dir: true },
          { path: 'app/main.py', content: 'print("hello")\n' },
          { path: 'app/lib/', dir: true },
          { path: 'app/lib/util.py', content: 'def util(): pass\n' },
          { path: 'README', content: 'readme\n' },
        ],
      ],
      tags: ['ws:1'],
    },
  ]);
  expect((await fetch(`${server.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
});
afterAll(async () => server?.stop());

const { api, put: write, get } = clientOf(() => server.url);
const put = async (container: string, path: string, content: string) => (await write(container, path, content)).status;

describe('the worked example: fork a workspace, two agents change it, diff, merge one back, read the feed', () => {
  it('runs as the README tells it', async () => {
    expect((await api('POST', '/v1/containers', { image: 'ws:1', name: 'workspace' })).status).toBe(201);
    expect((await api('POST', '/v1/containers/workspace/fork', { name: 'agent-a' })).status).toBe(201);
    expect((await api('POST', '/v1/containers/workspace/fork', { name: 'agent-b' })).status).toBe(201);
    await put('agent-a', '/app/main.py', 'print("from a")\n');
    await put('agent-a', '/app/feature.py', 'FEATURE = True\n');
    await put('agent-b', '/app/main.py', 'print("from b")\n');
    await put('workspace', '/README', 'readme, edited meanwhile\n');

    const diff = await api('GET', '/v1/containers/agent-a/changes?against=agent-b');
    expect(diff.body.map((c: any) => `${c.kindName} ${c.path}`)).toEqual(['C /app', 'A /app/feature.py', 'C /app/main.py']);

    const merged = await api('POST', '/v1/containers/workspace/merge', { from: 'agent-a' });
    expect(merged).toMatchObject({ status: 200, body: { applied: true, merged: 2, conflicts: [] } });
    expect(await get('workspace', '/app/main.py')).toBe('print("from a")\n');
    expect(await get('workspace', '/README')).toBe('readme, edited meanwhile\n');

    // agent-b changed the file agent-a's merge changed: a conflict, and nothing is merged.
    const refused = await api('POST', '/v1/containers/workspace/merge', { from: 'agent-b' });
    expect(refused).toMatchObject({ status: 409, body: { code: 'conflict', conflicts: [{ path: '/app/main.py', ours: 'modified', theirs: 'modified' }] } });
    expect(await get('workspace', '/app/main.py')).toBe('print("from a")\n');
    const settled = await api('POST', '/v1/containers/workspace/merge', { from: 'agent-b', strategy: 'theirs' });
    expect(settled.body).toMatchObject({ applied: true, conflicts: [{ path: '/app/main.py', resolution: 'theirs' }] });
    expect(await get('workspace', '/app/main.py')).toBe('print("from b")\n');
    expect(await get('workspace', '/app/feature.py')).toBe('FEATURE = True\n');

    const feed = await api('GET', '/v1/containers/workspace/feed?after=0');
    expect(feed.body.entries.map((e: any) => `${e.seq} ${e.kind} ${e.path}`)).toEqual(['1 modified /README', '2 merged /', '3 merged /']);
    expect(feed.body.next).toBe(3);
    const agentFeed = await api('GET', '/v1/containers/agent-a/feed');
    expect(agentFeed.body.entries.map((e: any) => `${e.kind} ${e.path} ${e.size}`)).toEqual(['modified /app/main.py 16', 'added /app/feature.py 15']);
  });
});

describe('concurrency', () => {
  it('8 writers over HTTP: every acknowledged write has exactly one feed entry, numbered without a gap', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'busy' });
    const acknowledged: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 12; i++) {
          const path = `/w${w}/f${i}`;
          if (i === 0) expect((await api('PUT', `/v1/containers/busy/fs/w${w}?type=dir`)).status).toBe(201);
          const status = await put('busy', path, path);
          if (status === 200) acknowledged.push(path);
          else expect(status).toBe(409);
        }
      }),
    );
    const entries: any[] = [];
    let after = 0;
    for (;;) {
      const page = await api('GET', `/v1/containers/busy/feed?after=${after}&limit=50`);
      entries.push(...page.body.entries);
      if (page.body.entries.length === 0) break;
      after = page.body.next;
    }
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    const files = entries.filter((e) => e.type === 'file').map((e) => e.path);
    expect(files.sort()).toEqual([...acknowledged].sort());
    expect(acknowledged.length).toBeGreaterThan(80);
  });

  it('a long poll answers when the change lands', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'watched' });
    const waiting = api('GET', '/v1/containers/watched/feed?after=latest&wait=15');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await put('watched', '/hello', 'hi');
    const page = await waiting;
    expect(page.body.entries.map((e: any) => `${e.kind} ${e.path}`)).toEqual(['added /hello']);
  });

  it('32 writers racing a byte quota: the limit is met exactly, never passed', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'capped', quota: { bytes: 8 * 1000 } });
    const statuses = await Promise.all(Array.from({ length: 32 }, (_, i) => put('capped', `/f${i}`, 'x'.repeat(1000))));
    expect(statuses.filter((s) => s === 200)).toHaveLength(8);
    expect(statuses.filter((s) => s !== 200).every((s) => s === 507)).toBe(true);
    const inspected = await api('GET', '/v1/containers/capped');
    expect(inspected.body).toMatchObject({ size: 8000, quota: { bytes: 8000, usedBytes: 8000, usedEntries: 8 } });
    const refused = await fetch(`${server.url}/v1/containers/capped/fs/more`, { method: 'PUT', body: 'x' });
    expect(refused.status).toBe(507);
    expect(await refused.json()).toMatchObject({ code: 'quota_exceeded', message: expect.stringContaining('byte quota (8000 bytes)') });
    expect((await api('PATCH', '/v1/containers/capped', { quota: { bytes: 9000 } })).body.quota.bytes).toBe(9000);
    expect(await put('capped', '/more', 'x')).toBe(200);
  });

  it('a merge racing writes on both sides loses no acknowledged write and is all or nothing', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'target' });
    await api('POST', '/v1/containers/target/fork', { name: 'source' });
    for (let i = 0; i < 10; i++) await put('source', `/s${i}`, `s${i}`);
    const writes = (name: string) => Promise.all(Array.from({ length: 10 }, (_, i) => put(name, `/${name}-late${i}`, 'late')));
    const [merge, targetWrites, sourceWrites] = await Promise.all([api('POST', '/v1/containers/target/merge', { from: 'source' }), writes('target'), writes('source')]);
    for (const [i, status] of targetWrites.entries()) if (status === 200) expect(await get('target', `/target-late${i}`)).toBe('late');
    for (const [i, status] of sourceWrites.entries()) if (status === 200) expect(await get('source', `/source-late${i}`)).toBe('late');
    expect([200, 409]).toContain(merge.status);
    const seen = await Promise.all(Array.from({ length: 10 }, (_, i) => get('target', `/s${i}`)));
    if (merge.status === 200) expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
    else expect(seen.every((s) => s === 404)).toBe(true);
  });
});

describe('expiry', () => {
  it('an idle workspace expires: gone from listings at once, then removed by the server, which says so in its events', async () => {
    const created = await api('POST', '/v1/containers', { image: 'ws:1', name: 'idle', ttlSeconds: 1, mounts: [{ target: '/tmp' }] });
    expect(created.body).toMatchObject({ ttlSeconds: 1, expiresAt: expect.any(Number) });
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'busy-ws', ttlSeconds: 2, extendOnWrite: true });
    for (let i = 0; i < 6; i++) {
      expect(await put('busy-ws', `/tick${i}`, 'x')).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    const names = (await api('GET', '/v1/containers')).body.map((c: any) => c.name);
    expect(names).toContain('busy-ws');
    expect(names).not.toContain('idle');
    expect((await api('GET', '/v1/containers/idle')).status).toBe(404);
    expect(await get('idle', '/app/main.py')).toBe(404);
    // The server's expiry timer removed it, anonymous volume and all (events show 2 s late).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const events = (await api('GET', '/v1/events')).body.events;
    expect(events.find((e: any) => e.type === 'container.removed' && e.detail.name === 'idle')?.detail.expired).toBe(true);
    expect(events.some((e: any) => e.type === 'volume.removed' && e.detail.volume === created.body.mounts[0].volume)).toBe(true);
  });
});
