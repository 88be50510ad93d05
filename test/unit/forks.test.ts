import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { ConflictError } from '../../shared/errors.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { queryAll } from '../../shared/ports/metadata-store.js';
import { keys } from '../../shared/keys.js';
import { loadImage, localEngine, text } from '../support/engine.js';

const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let cleanup: () => Promise<void>;

const base = [
  [
    { path: 'etc/', dir: true, mode: 0o755 },
    { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
    { path: 'd/', dir: true },
    { path: 'd/a', content: 'A' },
    { path: 'd/sub/c', content: 'C' },
  ],
];

beforeEach(async () => {
  ({ engine, meta, cleanup } = await localEngine());
  await loadImage(engine, T, base, ['base:1']);
  await engine.containers.create(T, { image: 'base:1', name: 'src' });
});
afterEach(async () => cleanup());

const tree = (ref: string) => ({ kind: 'container' as const, ref });
const read = async (ref: string, path: string) => text((await engine.files.read(T, tree(ref), path)).body);
const write = (ref: string, path: string, content: string) => engine.files.writeFile(T, tree(ref), path, Buffer.from(content));
const exists = (ref: string, path: string) =>
  engine.files.stat(T, tree(ref), path).then(
    () => true,
    () => false,
  );

describe('forks', () => {
  it('a directory deleted below a fork and made again above it hides what the image had there, in reads and in changes', async () => {
    await engine.files.rename(T, tree('src'), '/d/sub', '/moved');
    await engine.fork(T, 'src');
    await engine.files.mkdir(T, tree('src'), '/d/sub');
    expect((await engine.files.list(T, tree('src'), '/d/sub')).entries).toEqual([]);
    expect((await engine.changes(T, 'src')).map((c) => `${'CAD'[c.kind]} ${c.path}`)).toEqual(['C /d', 'C /d/sub', 'D /d/sub/c', 'A /moved', 'A /moved/c']);
  });

  it('a fork shows the source at that instant and the two go on independently', async () => {
    await write('src', '/etc/hosts', 'changed before\n');
    await engine.files.remove(T, tree('src'), '/d/a');
    await engine.files.rename(T, tree('src'), '/d/sub', '/moved');
    const fork = await engine.fork(T, 'src', { name: 'f1' });
    expect(fork.name).toBe('f1');
    for (const ref of ['src', 'f1']) {
      expect(await read(ref, '/etc/hosts')).toBe('changed before\n');
      expect(await exists(ref, '/d/a')).toBe(false);
      expect(await read(ref, '/moved/c')).toBe('C');
    }
    await write('src', '/etc/hosts', 'source after\n');
    await write('f1', '/etc/hosts', 'fork after\n');
    await write('f1', '/moved/new', 'n');
    await engine.files.rename(T, tree('f1'), '/moved', '/again');
    expect(await read('src', '/etc/hosts')).toBe('source after\n');
    expect(await read('f1', '/etc/hosts')).toBe('fork after\n');
    expect(await exists('src', '/moved/new')).toBe(false);
    expect(await read('src', '/moved/c')).toBe('C');
    expect(await read('f1', '/again/c')).toBe('C');
    expect(await read('f1', '/again/new')).toBe('n');
    expect((await engine.files.list(T, tree('f1'), '/again')).entries.map((e) => e.name)).toEqual(['c', 'new']);
  });

  it('a cached record of the source writes to its new top after a fork (a stale view is looked up again)', async () => {
    await write('src', '/x', '1');
    await engine.fork(T, 'src', { name: 'f1' });
    // The engine cached 'src' before the fork; this write must not land in the sealed layer.
    await write('src', '/x', '2');
    expect(await read('f1', '/x')).toBe('1');
    expect(await read('src', '/x')).toBe('2');
  });

  it('a write resolved before a fork never shows in the fork (the seal refuses it)', async () => {
    await write('src', '/x', '1');
    const { view } = await engine.containers.view(T, 'src');
    await engine.fork(T, 'src', { name: 'f1' });
    // A writer that took the view before the fork: its transaction meets the seal.
    await expect(engine.files['writer'].writeFile(view, '/x', Buffer.from('late'))).rejects.toThrow();
    expect(await read('f1', '/x')).toBe('1');
  });

  it('changes, sizes and commits of a fork count every layer it holds', async () => {
    await write('src', '/one', '11');
    await engine.fork(T, 'src', { name: 'f1' });
    await write('f1', '/two', '222');
    await engine.files.remove(T, tree('f1'), '/d/a');
    const changes = await engine.changes(T, 'f1');
    expect(changes.map((c) => [c.path, c.kind])).toEqual([
      ['/d', 0],
      ['/d/a', 2],
      ['/one', 1],
      ['/two', 1],
    ]);
    expect((await engine.containers.inspect(T, 'f1')).size).toBe(5);
    expect((await engine.containers.inspect(T, 'src')).size).toBe(2);
    const { id } = await engine.commit(T, 'f1', { reference: 'f1:img' });
    const made = await engine.containers.create(T, { image: id, name: 'fromCommit' });
    expect(await read(made.name, '/one')).toBe('11');
    expect(await read(made.name, '/two')).toBe('222');
    expect(await exists(made.name, '/d/a')).toBe(false);
  });

  it('diffs two forks from the layers they do not share, and a fork against its fork point', async () => {
    await write('src', '/shared', 's');
    const f = await engine.fork(T, 'src', { name: 'f1' });
    await write('src', '/only-src', 'a');
    await write('f1', '/only-fork', 'b');
    await write('f1', '/shared', 'changed');
    const diff = await engine.changes(T, 'f1', { against: 'src' });
    expect(diff.map((c) => [c.path, c.kind])).toEqual([
      ['/only-fork', 1],
      ['/only-src', 2],
      ['/shared', 0],
    ]);
    const layer = (await engine.containers.record(T, 'f1')).forkedFrom!.layer;
    expect(f.id).toHaveLength(64);
    const sinceFork = await engine.changes(T, 'f1', { against: `fork:${layer.slice(2)}` });
    expect(sinceFork.map((c) => [c.path, c.kind])).toEqual([
      ['/only-fork', 1],
      ['/shared', 0],
    ]);
    const againstImage = await engine.changes(T, 'f1', { against: 'image:base:1' });
    expect(againstImage.map((c) => c.path)).toEqual(['/only-fork', '/shared']);
  });

  it('removing forks reclaims a sealed layer only with its last holder', async () => {
    await write('src', '/x', 'kept');
    await engine.fork(T, 'src', { name: 'f1' });
    await engine.fork(T, 'f1', { name: 'f2' });
    await engine.containers.remove(T, 'src');
    await engine.containers.remove(T, 'f1');
    expect(await read('f2', '/x')).toBe('kept');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await read('f2', '/x')).toBe('kept');
    expect((await engine.fsck.check(T)).problems).toEqual([]);
    await engine.containers.remove(T, 'f2');
    expect(await queryAll(meta, `${T}#sealed`)).toEqual([]);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    // Every layer is gone: no node partition of any container layer is left.
    expect((await queryAll(meta, keys.garbageList(T))).length).toBe(0);
  });

  it('a fork of a name already in use is refused and changes nothing', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'taken' });
    await expect(engine.fork(T, 'src', { name: 'taken' })).rejects.toBeInstanceOf(ConflictError);
    await write('src', '/y', 'still writable');
    expect(await read('src', '/y')).toBe('still writable');
  });
});
