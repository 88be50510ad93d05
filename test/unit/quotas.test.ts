import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { blobKeys } from '../../shared/keys.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { loadImage, localEngine } from '../support/engine.js';

/**
 * Quotas: bytes and entries of a container's or volume's own layers, checked in the transaction
 * of each change, so no interleaving of writers takes a tree past a limit.
 */
const T = 'acme';
let engine: Engine;
let blobs: BlobStore;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, blobs, cleanup } = await localEngine());
  await loadImage(
    engine,
    T,
    [
      [
        { path: 'etc/', dir: true },
        { path: 'etc/hosts', content: 'x'.repeat(100) },
        { path: 'lib/', dir: true },
        { path: 'lib/a', content: 'a' },
      ],
    ],
    ['base:1'],
  );
});
afterEach(async () => cleanup());

const box = (ref: string) => ({ kind: 'container' as const, ref });
const write = (ref: string, path: string, bytes: number) => engine.files.writeFile(T, box(ref), path, Buffer.alloc(bytes, 1));
const quotaOf = async (ref: string) => (await engine.containers.inspect(T, ref)).quota;

async function objectsUnder(prefix: string): Promise<string[]> {
  const found: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await blobs.list(prefix, after);
    found.push(...page.keys);
    if (!page.cursor) return found;
    after = page.cursor;
  }
}

describe('byte quotas', () => {
  it('refuses the write that would pass the limit with 507 naming it, and writes nothing of it', async () => {
    const created = await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { bytes: 1000 } });
    await write('q', '/a', 600);
    const objects = await objectsUnder(blobKeys.namespacePrefix(T, `c:${created.id}`));
    await expect(write('q', '/b', 401)).rejects.toMatchObject({ status: 507, code: 'quota_exceeded', message: expect.stringMatching(/byte quota \(1000 bytes\).*600 used.*adds 401/) });
    await expect(engine.files.stat(T, box('q'), '/b')).rejects.toMatchObject({ status: 404 });
    expect(await objectsUnder(blobKeys.namespacePrefix(T, `c:${created.id}`))).toEqual(objects);
    await write('q', '/b', 400);
    expect(await quotaOf('q')).toEqual({ bytes: 1000, entries: null, usedBytes: 1000, usedEntries: 2 });
    // Growing a file counts only what it adds; shrinking one gives bytes back.
    await expect(engine.files.writeRange(T, box('q'), '/a', 'end', Buffer.alloc(1))).rejects.toMatchObject({ status: 507 });
    await engine.files.truncate(T, box('q'), '/a', 100);
    await engine.files.writeRange(T, box('q'), '/a', 'end', Buffer.alloc(500));
    expect((await engine.containers.inspect(T, 'q')).size).toBe(1000);
  });

  it('counts bytes the way size does, so the two agree after copy-ups, renames and removals', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { bytes: 10_000 } });
    await engine.files.writeRange(T, box('q'), '/etc/hosts', 'end', Buffer.from('more'));
    await engine.files.rename(T, box('q'), '/etc/hosts', '/hosts');
    await engine.files.setAttributes(T, box('q'), '/lib/a', { mode: 0o600 });
    await write('q', '/x', 50);
    await engine.files.remove(T, box('q'), '/x');
    const summary = await engine.containers.inspect(T, 'q');
    expect(summary.quota?.usedBytes).toBe(summary.size);
    expect(summary.size).toBe(105);
  });

  it('lets 32 concurrent writers racing the limit take it exactly, and no further', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'race', quota: { bytes: 10 * 1024 } });
    const outcomes = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        write('race', `/f${i}`, 1024).then(
          () => 'ok',
          (error) => String(error.status),
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(10);
    expect(outcomes.filter((o) => o !== 'ok').every((o) => o === '507')).toBe(true);
    const summary = await engine.containers.inspect(T, 'race');
    expect(summary.size).toBe(10 * 1024);
    expect(summary.quota?.usedBytes).toBe(10 * 1024);
  });
});

describe('entry quotas', () => {
  it('count every entry of the own layer: copied-up parents, directories, symlinks and deletion markers', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { entries: 4 } });
    await write('q', '/etc/new', 1); // /etc copied up, /etc/new: 2
    await engine.files.mkdir(T, box('q'), '/d'); // 3
    await engine.files.symlink(T, box('q'), '/s', '/etc/new'); // 4
    await expect(engine.files.mkdir(T, box('q'), '/e')).rejects.toMatchObject({ status: 507, message: expect.stringContaining('entry quota (4 entries)') });
    // A removal is never refused, even when its whiteout is one entry more: it is how a tree gets back under.
    await engine.files.remove(T, box('q'), '/lib/a');
    expect((await quotaOf('q'))?.usedEntries).toBe(6);
    await engine.files.remove(T, box('q'), '/s');
    await engine.files.remove(T, box('q'), '/d');
    expect((await quotaOf('q'))?.usedEntries).toBe(4);
  });

  it('a directory rename near the limit is not refused for the entries it copies on the way, and ends where it began', async () => {
    // The rename copies the two entries below /d before it drops the old ones: 3 + 2 > 4 on the way.
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { entries: 4 } });
    await engine.files.mkdir(T, box('q'), '/d');
    await write('q', '/d/1', 1);
    await write('q', '/d/2', 1);
    await engine.files.rename(T, box('q'), '/d', '/e');
    expect((await engine.files.list(T, box('q'), '/e')).entries.map((e) => e.name)).toEqual(['1', '2']);
    await expect(engine.files.stat(T, box('q'), '/d')).rejects.toMatchObject({ status: 404 });
    expect((await quotaOf('q'))?.usedEntries).toBe(3);
    await expect(engine.files.mkdir(T, box('q'), '/f')).resolves.toBeDefined();
    await expect(engine.files.mkdir(T, box('q'), '/g')).rejects.toMatchObject({ status: 507 });
  });
});

describe('changing limits, forks and volumes', () => {
  it('a limit lowered below what is used refuses growth until enough is freed; null lifts it', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { bytes: 1000 } });
    await write('q', '/a', 500);
    expect((await engine.containers.setQuota(T, 'q', { bytes: 100 })).quota).toEqual({ bytes: 100, entries: null, usedBytes: 500, usedEntries: 1 });
    await expect(write('q', '/b', 1)).rejects.toMatchObject({ status: 507 });
    await engine.files.truncate(T, box('q'), '/a', 50);
    await write('q', '/b', 50);
    await engine.containers.setQuota(T, 'q', { bytes: null, entries: 3 });
    await write('q', '/c', 5000);
    expect(await quotaOf('q')).toEqual({ bytes: null, entries: 3, usedBytes: 5100, usedEntries: 3 });
    await engine.containers.create(T, { image: 'base:1', name: 'free' });
    await expect(engine.containers.setQuota(T, 'free', { bytes: 1 })).rejects.toMatchObject({ status: 409 });
    await expect(engine.containers.create(T, { image: 'base:1', quota: { bytes: 2 ** 51 } })).rejects.toMatchObject({ status: 400 });
  });

  it('a fork starts with its source limits and usage, and each side counts its own writes', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'src', quota: { bytes: 1000 } });
    await write('src', '/a', 600);
    const fork = await engine.fork(T, 'src', { name: 'fork' });
    expect(fork.quota).toEqual({ bytes: 1000, entries: null, usedBytes: 600, usedEntries: 1 });
    await write('fork', '/b', 400);
    await expect(write('fork', '/c', 1)).rejects.toMatchObject({ status: 507 });
    await write('src', '/c', 300);
    expect((await quotaOf('src'))?.usedBytes).toBe(900);
    await engine.containers.remove(T, 'src');
    expect((await engine.containers.inspect(T, 'fork')).quota?.usedBytes).toBe(1000);
  });

  it('a volume quota holds for writes through every container that mounts it', async () => {
    await engine.volumes.create(T, 'shared', { quota: { bytes: 100 } });
    await engine.containers.create(T, { image: 'base:1', name: 'a', mounts: [{ target: '/data', volume: 'shared' }] });
    await engine.containers.create(T, { image: 'base:1', name: 'b', mounts: [{ target: '/data', volume: 'shared' }] });
    await write('a', '/data/one', 60);
    await expect(write('b', '/data/two', 60)).rejects.toMatchObject({ status: 507, message: expect.stringContaining('byte quota (100 bytes)') });
    await engine.files.writeFile(T, { kind: 'volume', name: 'shared' }, '/two', Buffer.alloc(40));
    expect((await engine.volumes.inspect(T, 'shared')).quota).toEqual({ bytes: 100, entries: null, usedBytes: 100, usedEntries: 2 });
    // The container's own layer is not the volume's: it has no quota.
    await write('a', '/elsewhere', 1000);
  });
});
