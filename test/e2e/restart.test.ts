import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerArchive } from '../support/images.js';
import { startServer } from '../support/local-server.js';

/** `npm start` as a user runs it: no token file (one tenant, loopback), data kept across restarts, clean stop on Ctrl-C. */
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('the local server', () => {
  it('keeps images, containers, volumes and change feeds across a restart and stops cleanly on SIGINT', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'strata-restart-'));
    dirs.push(dataDir);
    const first = await startServer({}, dataDir);
    const { archive } = await dockerArchive([[{ path: 'etc/hostname', content: 'box\n' }]], { tags: ['keep:1'] });
    expect((await fetch(`${first.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
    const created = await fetch(`${first.url}/v1/containers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ image: 'keep:1', name: 'box', mounts: [{ target: '/data', volume: 'state' }] }),
    });
    expect(created.status).toBe(201);
    expect((await fetch(`${first.url}/v1/containers/box/fs/data/counter`, { method: 'PUT', body: '41' })).status).toBe(200);
    expect((await fetch(`${first.url}/v1/containers/box/fs/etc/hostname`, { method: 'PUT', body: 'renamed\n' })).status).toBe(200);
    await first.stop();
    expect(first.output()).not.toMatch(/Error|could not/i);

    const second = await startServer({}, dataDir);
    try {
      expect(await (await fetch(`${second.url}/v1/containers/box/fs/etc/hostname`)).text()).toBe('renamed\n');
      expect(await (await fetch(`${second.url}/v1/volumes/state/fs/counter`)).text()).toBe('41');
      expect(await (await fetch(`${second.url}/v1/images/keep:1/fs/etc/hostname`)).text()).toBe('box\n');
      // The change feeds are kept too, and their numbering goes on from where it was.
      expect((await fetch(`${second.url}/v1/containers/box/fs/etc/motd`, { method: 'PUT', body: 'hi' })).status).toBe(200);
      const feed = (await (await fetch(`${second.url}/v1/containers/box/feed`)).json()) as { entries: { seq: number; path: string }[] };
      expect(feed.entries.map((e) => `${e.seq} ${e.path}`)).toEqual(['1 /etc/hostname', '2 /etc/motd']);
      const volumeFeed = (await (await fetch(`${second.url}/v1/volumes/state/feed`)).json()) as { entries: { seq: number; path: string }[] };
      expect(volumeFeed.entries.map((e) => `${e.seq} ${e.path}`)).toEqual(['1 /counter']);
      // Without a token file no credentials are needed, and only loopback is served.
      expect(second.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    } finally {
      await second.stop();
    }
  });

  it('refuses to listen beyond loopback without a token file', async () => {
    await expect(startServer({ STRATA_HOST: '0.0.0.0' })).rejects.toThrow(/loopback/);
  });
});
