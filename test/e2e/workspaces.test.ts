import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { multiImageArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';
import { clientOf } from '../support/http-client.js';

/**
 * Workspaces that fork and diff, over HTTP on the local server with DynamoDB Local: what a
 * sandbox platform does with Strata (fork a workspace, let two agents change it, compare them).
 */
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `workspaces-${Date.now()}` });
  const { archive } = await multiImageArchive([
    {
      layers: [
        [
          { path: 'app/', dir: true },
          { path: 'app/main.py', content: 'print("hello")\n' },
          { path: 'app/README', content: 'line 1\nline 2\nline 3\n' },
          { path: 'bin/tool', content: Buffer.from([0, 1, 2, 3]) },
        ],
      ],
      tags: ['ws:1'],
    },
  ]);
  const loaded = await fetch(`${server.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) });
  expect(loaded.status).toBe(201);
});
afterAll(async () => server?.stop());

const { api, put, get } = clientOf(() => server.url);

describe('forks over HTTP', () => {
  it('fork, change both sides, diff them with patches, and diff against the fork point', async () => {
    expect((await api('POST', '/v1/containers', { image: 'ws:1', name: 'agent-base' })).status).toBe(201);
    expect((await put('agent-base', '/app/main.py', 'print("base")\n')).status).toBe(200);
    const fork = await api('POST', '/v1/containers/agent-base/fork', { name: 'agent-a' });
    expect(fork.status).toBe(201);
    expect(fork.body).toMatchObject({ name: 'agent-a', forkedFrom: { forkPoint: expect.stringMatching(/^fork:[0-9a-f]+$/) } });
    expect((await api('POST', '/v1/containers/agent-base/fork', { name: 'agent-b' })).status).toBe(201);

    await put('agent-a', '/app/README', 'line 1\nline two\nline 3\n');
    await put('agent-a', '/app/new.txt', 'from a\n');
    await put('agent-b', '/app/main.py', 'print("b")\n');
    expect((await fetch(`${server.url}/v1/containers/agent-b/fs/bin/tool`, { method: 'DELETE' })).status).toBe(204);

    expect(await get('agent-a', '/app/main.py')).toBe('print("base")\n');
    expect(await get('agent-b', '/app/main.py')).toBe('print("b")\n');
    expect(await get('agent-base', '/app/new.txt')).toBe(404);

    const diff = await api('GET', '/v1/containers/agent-a/changes?against=agent-b&patch=true');
    expect(diff.status).toBe(200);
    expect(diff.body.map((c: any) => `${c.kindName} ${c.path}`)).toEqual(['C /app', 'C /app/README', 'C /app/main.py', 'A /app/new.txt', 'C /bin', 'A /bin/tool']);
    const readme = diff.body.find((c: any) => c.path === '/app/README');
    expect(readme.patch).toContain('-line 2\n+line two\n');
    expect(diff.body.find((c: any) => c.path === '/bin/tool').patchOmitted).toBe('binary');

    const sinceFork = await api('GET', `/v1/containers/agent-a/changes?against=${fork.body.forkedFrom.forkPoint}`);
    expect(sinceFork.body.map((c: any) => `${c.kindName} ${c.path}`)).toEqual(['C /app', 'C /app/README', 'A /app/new.txt']);
    const againstImage = await api('GET', '/v1/containers/agent-a/changes?against=image:ws:1');
    expect(againstImage.body.map((c: any) => `${c.kindName} ${c.path}`)).toEqual(['C /app', 'C /app/README', 'C /app/main.py', 'A /app/new.txt']);
  });

  it('answers clear 4xx errors for bad forks and comparisons', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'errs' });
    expect(await api('POST', '/v1/containers/nope/fork', {})).toMatchObject({ status: 404 });
    expect(await api('POST', '/v1/containers/errs/fork', { name: 'errs' })).toMatchObject({ status: 409, body: { message: expect.stringContaining('in use') } });
    expect(await api('POST', '/v1/containers/errs/fork', { name: 'bad name!' })).toMatchObject({ status: 400 });
    expect(await api('POST', '/v1/containers/errs/fork', { colour: 'red' })).toMatchObject({ status: 400, body: { message: expect.stringContaining('colour') } });
    expect(await api('GET', '/v1/containers/errs/changes?against=fork:abc')).toMatchObject({ status: 404 });
    expect(await api('GET', '/v1/containers/errs/changes?against=image:missing:9')).toMatchObject({ status: 404 });
  });

  it('writes racing a fork land on one side or both, never only in the fork, and none is lost', async () => {
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'racer' });
    const writes = Array.from({ length: 40 }, (_, i) => put('racer', `/race-f${i}`, `v${i}`).then(async (r) => (r.status === 200 ? 200 : `${r.status} ${await r.text()}`)));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const fork = api('POST', '/v1/containers/racer/fork', { name: 'racer-fork' });
    const statuses = await Promise.all(writes);
    expect((await fork).status).toBe(201);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    let inFork = 0;
    for (let i = 0; i < 40; i++) {
      expect(await get('racer', `/race-f${i}`)).toBe(`v${i}`);
      const seen = await get('racer-fork', `/race-f${i}`);
      if (seen !== 404) {
        expect(seen).toBe(`v${i}`);
        inFork++;
      }
    }
    // After the fork answered, a write to the source never reaches the fork.
    await put('racer', '/race-after', 'late');
    expect(await get('racer-fork', '/race-after')).toBe(404);
    expect(inFork).toBeLessThanOrEqual(40);
  });

  it('removing the source keeps the fork whole, and system df counts shared bytes once', async () => {
    const totalBefore = (await api('GET', '/v1/system/df')).body.containers.size;
    await api('POST', '/v1/containers', { image: 'ws:1', name: 'parent' });
    await put('parent', '/data', 'x'.repeat(1000));
    await api('POST', '/v1/containers/parent/fork', { name: 'child' });
    await put('child', '/more', 'y'.repeat(10));
    const df = (await api('GET', '/v1/system/df')).body;
    const sizes = Object.fromEntries(df.containers.items.map((c: any) => [c.name, c.size]));
    expect(sizes.parent).toBe(1000);
    expect(sizes.child).toBe(1010);
    expect(df.containers.size - totalBefore).toBe(1010);
    expect((await api('DELETE', '/v1/containers/parent')).status).toBe(204);
    expect(await get('child', '/data')).toBe('x'.repeat(1000));
    expect((await api('GET', '/v1/containers/child')).body.size).toBe(1010);
  });
});
