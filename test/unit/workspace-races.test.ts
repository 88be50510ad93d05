import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import { queryAll, type WriteOp } from '../../shared/ports/metadata-store.js';
import { loadImage, text } from '../support/engine.js';

const T = 'acme';
let now = Date.UTC(2030, 0, 1);
let dir: string;
let meta: MemoryMetadataStore;
let engine: Engine;
const box = (ref: string) => ({ kind: 'container' as const, ref });
const read = (ref: string, path: string) =>
  engine.files.read(T, box(ref), path).then(
    (f) => text(f.body),
    (e: { status?: number; message?: string }) => `ERR ${e.status} ${e.message}`,
  );

beforeEach(async () => {
  now = Date.UTC(2030, 0, 1);
  dir = await mkdtemp(join(tmpdir(), 'zz-review-'));
  meta = new MemoryMetadataStore();
  engine = new Engine(meta, new FsBlobStore(dir, async (k) => k), { clock: () => now });
  await loadImage(
    engine,
    T,
    [
      [
        { path: 'etc/hosts', content: 'h' },
        { path: 'd/a', content: 'A' },
        { path: 'd/b', content: 'B' },
      ],
    ],
    ['base:1'],
  );
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

/** Runs `before` once, just before the first transaction matching `when` commits. */
function hook(when: (ops: readonly WriteOp[]) => boolean, before: () => Promise<unknown>) {
  const original = meta.transact.bind(meta);
  let armed = true;
  meta.transact = async (ops) => {
    if (armed && when(ops)) {
      armed = false;
      await before();
    }
    return original(ops);
  };
}
const deletes = (ops: readonly WriteOp[], pk: string, sk: string) => ops.some((o) => o.op === 'delete' && o.key.pk === pk && o.key.sk === sk);

/**
 * Races and corners a review of merges, compaction, quotas, feeds and expiry found, each as it
 * was found: a second operation is run just before the first one's transaction commits.
 */
describe('workspace races', () => {
  it('removing a merge source that a merge sealed meanwhile keeps the merged files readable', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'main' });
    await engine.fork(T, 'main', { name: 'agent' });
    await engine.files.writeFile(T, box('agent'), '/etc/new', Buffer.from('agent data'));
    const agent = await engine.containers.inspect(T, 'agent');
    const k = keys.container(T, agent.id);
    hook(
      (ops) => deletes(ops, k.pk, k.sk),
      () => engine.merge(T, 'main', { from: 'agent' }),
    );
    await engine.containers.remove(T, 'agent');
    expect(await read('main', '/etc/new')).toBe('agent data');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await read('main', '/etc/new')).toBe('agent data');
  });

  it('rm -r of an image directory works in a container at its entry quota', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { entries: 0 } });
    await engine.files.remove(T, box('q'), '/d', { recursive: true });
    expect(await read('q', '/d/a')).toMatch(/ERR 404/);
  });

  it('two compactions of one chain at once leave no layer behind', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'main' });
    for (let i = 0; i < 3; i++) {
      await engine.files.writeFile(T, box('main'), `/f${i}`, Buffer.from(`v${i}`));
      await engine.fork(T, 'main', { name: `f${i}` });
    }
    for (let i = 0; i < 3; i++) await engine.containers.remove(T, `f${i}`);
    const main = await engine.containers.inspect(T, 'main');
    const k = keys.container(T, main.id);
    hook(
      (ops) => ops.some((o) => o.op === 'update' && o.key.pk === k.pk && o.key.sk === k.sk && o.set && 'stack' in o.set && !('top' in o.set)),
      () => engine.compactor.compact(T, 'main'),
    );
    await engine.compactor.compact(T, 'main');
    await engine.containers.remove(T, 'main');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await queryAll(meta, keys.sealedLayers(T))).map((i) => i.sk)).toEqual([]);
  });

  it('a fork racing a compaction leaves no layer behind', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'main' });
    for (let i = 0; i < 3; i++) {
      await engine.files.writeFile(T, box('main'), `/f${i}`, Buffer.from(`v${i}`));
      await engine.fork(T, 'main', { name: `f${i}` });
    }
    for (let i = 0; i < 3; i++) await engine.containers.remove(T, `f${i}`);
    const main = await engine.containers.inspect(T, 'main');
    const k = keys.container(T, main.id);
    hook(
      (ops) => ops.some((o) => o.op === 'update' && o.key.pk === k.pk && o.key.sk === k.sk && o.set && 'top' in o.set),
      () => engine.compactor.compact(T, 'main'),
    );
    // The fork read the chain before the compaction: it is refused, and a retry forks the new one.
    await expect(engine.fork(T, 'main', { name: 'late' })).rejects.toMatchObject({ status: 409 });
    await engine.fork(T, 'main', { name: 'late' });
    await engine.containers.remove(T, 'late');
    await engine.containers.remove(T, 'main');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await queryAll(meta, keys.sealedLayers(T))).map((i) => i.sk)).toEqual([]);
  });

  it('an expired container frees its name', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'brief', expiry: { ttlSeconds: 60 } });
    now += 61_000;
    await expect(engine.containers.inspect(T, 'brief')).rejects.toMatchObject({ status: 404 });
    await engine.containers.create(T, { image: 'base:1', name: 'brief' });
  });

  it('compaction keeps quota usage equal to size', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'q', quota: { bytes: 1000 } });
    await engine.files.writeFile(T, box('q'), '/x', Buffer.alloc(100));
    await engine.fork(T, 'q', { name: 'a' });
    await engine.files.writeFile(T, box('q'), '/x', Buffer.alloc(50));
    await engine.fork(T, 'q', { name: 'b' });
    await engine.containers.remove(T, 'a');
    await engine.containers.remove(T, 'b');
    await engine.compactor.compact(T, 'q');
    const after = await engine.containers.inspect(T, 'q');
    expect(after.quota!.usedBytes).toBe(after.size);
  });

  it('a process that knew a feed head before a trim does not reuse a trimmed number', async () => {
    const other = new Engine(meta, new FsBlobStore(dir, async (k) => k), { clock: () => now });
    await engine.containers.create(T, { image: 'base:1', name: 'c' });
    await engine.files.writeFile(T, box('c'), '/a', Buffer.from('1'));
    for (let i = 0; i < 4; i++) await other.files.writeFile(T, box('c'), `/b${i}`, Buffer.from('2'));
    now += 8 * 86_400_000;
    await engine.sweeper.sweep(T, { graceMs: 0 });
    const seen = await other.feedOf(T, { kind: 'container', ref: 'c' }, { after: 'latest' });
    await engine.files.writeFile(T, box('c'), '/late', Buffer.from('3'));
    const page = await other.feedOf(T, { kind: 'container', ref: 'c' }, { after: seen.next });
    expect(page.entries.map((e) => e.path)).toEqual(['/late']);
  });

  it('a write racing a merge into a container with an unused top lands', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'main' });
    await engine.fork(T, 'main', { name: 'agent' });
    await engine.files.writeFile(T, box('agent'), '/x', Buffer.from('x'));
    hook(
      (ops) => ops.some((o) => o.op === 'put' && o.item.pk.includes('#n#') && o.item.sk === 'late'),
      () => new Engine(meta, new FsBlobStore(dir, async (k) => k), { clock: () => now }).merge(T, 'main', { from: 'agent' }),
    );
    const r = await engine.files.mkdir(T, box('main'), '/late').then(
      () => 'ok',
      (e: Error & { status?: number }) => `${e.status} ${e.message}`,
    );
    expect(r).toBe('ok');
  });
});
