import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import { queryAll, type MetadataStore } from '../../shared/ports/metadata-store.js';
import { loadImage, localEngine, text } from '../support/engine.js';

/**
 * Merges: one container's changes since the common ancestor applied to another, all or nothing,
 * with what both changed reported as conflicts and settled by the strategy.
 */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, meta, cleanup } = await localEngine());
  await loadImage(
    engine,
    T,
    [
      [
        { path: 'etc/', dir: true },
        { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
        { path: 'etc/motd', content: 'hello\n' },
        { path: 'd/', dir: true },
        { path: 'd/a', content: 'A' },
        { path: 'd/sub/c', content: 'C' },
        { path: 'keep', content: 'K' },
      ],
    ],
    ['base:1'],
  );
  await engine.containers.create(T, { image: 'base:1', name: 'main' });
  await engine.fork(T, 'main', { name: 'agent' });
});
afterEach(async () => cleanup());

const tree = (ref: string) => ({ kind: 'container' as const, ref });
const read = (ref: string, path: string) =>
  engine.files.read(T, tree(ref), path).then(
    (found) => text(found.body),
    (error: { status?: number }) => error.status ?? error,
  );
const write = (ref: string, path: string, content: string) => engine.files.writeFile(T, tree(ref), path, Buffer.from(content));
const listing = async (ref: string, path: string) => (await engine.files.list(T, tree(ref), path)).entries.map((e) => e.name);
const changed = async (ref: string, against: string) => (await engine.changes(T, ref, { against })).map((c) => `${'CAD'[c.kind]} ${c.path}`);

describe('merging without conflicts', () => {
  it('brings every change of the source since the fork, keeps the target own, and leaves the source alone', async () => {
    await write('agent', '/etc/hosts', 'agent hosts\n');
    await write('agent', '/new/deep/file', 'n').catch(async () => {
      await engine.files.mkdir(T, tree('agent'), '/new/deep', { parents: true });
      await write('agent', '/new/deep/file', 'n');
    });
    await engine.files.remove(T, tree('agent'), '/keep');
    await engine.files.remove(T, tree('agent'), '/d/sub', { recursive: true });
    await engine.files.symlink(T, tree('agent'), '/link', '/etc/hosts');
    await engine.files.setAttributes(T, tree('agent'), '/etc/motd', { mode: 0o600 });
    await write('main', '/etc/mine', 'main only');
    await write('main', '/d/a', 'main A');

    const result = await engine.merge(T, 'main', { from: 'agent' });
    expect(result).toMatchObject({ applied: true, conflicts: [], strategy: 'fail' });
    expect(result.merged).toBeGreaterThanOrEqual(6);
    expect(await read('main', '/etc/hosts')).toBe('agent hosts\n');
    expect(await read('main', '/new/deep/file')).toBe('n');
    expect(await read('main', '/keep')).toBe(404);
    expect(await listing('main', '/d')).toEqual(['a']);
    expect((await engine.files.stat(T, tree('main'), '/link', { follow: false })).target).toBe('/etc/hosts');
    expect((await engine.files.stat(T, tree('main'), '/etc/motd')).mode).toBe(0o600);
    expect(await read('main', '/etc/mine')).toBe('main only');
    expect(await read('main', '/d/a')).toBe('main A');
    // What the target has that the source lacks is now exactly its own changes.
    expect(await changed('main', 'agent')).toEqual(['C /d', 'C /d/a', 'C /etc', 'A /etc/mine']);
    // The source is untouched and goes on independently.
    expect(await read('agent', '/etc/mine')).toBe(404);
    await write('agent', '/after', 'x');
    expect(await read('main', '/after')).toBe(404);
    await write('main', '/etc/hosts', 'main again');
    expect(await read('agent', '/etc/hosts')).toBe('agent hosts\n');
  });

  it('takes nothing twice: a second merge of the same source finds the changes already there', async () => {
    await write('agent', '/x', '1');
    expect((await engine.merge(T, 'main', { from: 'agent' })).merged).toBe(1);
    const again = await engine.merge(T, 'main', { from: 'agent' });
    expect(again).toMatchObject({ merged: 0, conflicts: [], applied: false });
    await write('agent', '/y', '2');
    expect((await engine.merge(T, 'main', { from: 'agent' })).merged).toBe(1);
    expect(await read('main', '/x')).toBe('1');
    expect(await read('main', '/y')).toBe('2');
  });

  it('counts the same change made on both sides as no conflict, comparing the bytes of small files', async () => {
    await write('agent', '/etc/hosts', 'same\n');
    await write('main', '/etc/hosts', 'same\n');
    await engine.files.remove(T, tree('agent'), '/keep');
    await engine.files.remove(T, tree('main'), '/keep');
    expect(await engine.merge(T, 'main', { from: 'agent' })).toMatchObject({ conflicts: [], merged: 0 });
  });

  it('writes the change into the target feed as one merged entry and an event', async () => {
    await write('agent', '/x', '1');
    await write('agent', '/y', '2');
    await engine.merge(T, 'main', { from: 'agent' });
    const { entries } = await engine.feedOf(T, { kind: 'container', ref: 'main' });
    expect(entries).toEqual([expect.objectContaining({ seq: 1, kind: 'merged', path: '/', paths: 2, from: (await engine.containers.record(T, 'agent')).id })]);
  });
});

describe('conflicts', () => {
  beforeEach(async () => {
    await write('agent', '/etc/hosts', 'agent\n');
    await write('main', '/etc/hosts', 'main\n');
    await write('agent', '/ok', 'fine');
  });

  it('under fail: 409 with every conflict, and neither container changes', async () => {
    const before = await engine.containers.record(T, 'main');
    await expect(engine.merge(T, 'main', { from: 'agent' })).rejects.toMatchObject({
      status: 409,
      details: { conflicts: [{ path: '/etc/hosts', ours: 'modified', theirs: 'modified' }] },
    });
    expect(await engine.containers.record(T, 'main')).toEqual(before);
    expect(await read('main', '/ok')).toBe(404);
    expect(await queryAll(meta, keys.pendingMerges(T))).toEqual([]);
  });

  it('a dry run reports them and changes nothing', async () => {
    const result = await engine.merge(T, 'main', { from: 'agent', strategy: 'theirs', dryRun: true });
    expect(result).toMatchObject({ applied: false, merged: 2, conflicts: [{ path: '/etc/hosts', resolution: 'theirs' }] });
    expect(await read('main', '/etc/hosts')).toBe('main\n');
  });

  it('ours keeps the target side, theirs takes the source side; the rest is merged either way', async () => {
    await engine.fork(T, 'main', { name: 'main2' });
    expect((await engine.merge(T, 'main', { from: 'agent', strategy: 'ours' })).conflicts).toEqual([{ path: '/etc/hosts', ours: 'modified', theirs: 'modified', resolution: 'ours' }]);
    expect(await read('main', '/etc/hosts')).toBe('main\n');
    expect(await read('main', '/ok')).toBe('fine');
    await engine.merge(T, 'main2', { from: 'agent', strategy: 'theirs' });
    expect(await read('main2', '/etc/hosts')).toBe('agent\n');
    expect(await read('main2', '/ok')).toBe('fine');
  });

  it('a deletion against a change below it, and a file against a directory', async () => {
    await engine.files.remove(T, tree('agent'), '/d', { recursive: true });
    await write('main', '/d/a', 'main A');
    await engine.files.remove(T, tree('main'), '/etc/motd');
    await engine.files.mkdir(T, tree('main'), '/etc/motd');
    await write('agent', '/etc/motd', 'agent motd');
    await expect(engine.merge(T, 'main', { from: 'agent' })).rejects.toMatchObject({
      details: {
        conflicts: [
          { path: '/d', ours: 'changed below', theirs: 'deleted' },
          { path: '/etc/hosts', ours: 'modified', theirs: 'modified' },
          { path: '/etc/motd', ours: 'modified', theirs: 'modified' },
        ],
      },
    });
    await engine.merge(T, 'main', { from: 'agent', strategy: 'theirs' });
    expect(await read('main', '/d/a')).toBe(404);
    expect(await read('main', '/etc/motd')).toBe('agent motd');
  });

  it('a change below a directory the target removed brings the source directory back under theirs', async () => {
    await engine.files.remove(T, tree('main'), '/d', { recursive: true });
    await write('agent', '/d/sub/c', 'agent C');
    const result = await engine.merge(T, 'main', { from: 'agent', strategy: 'theirs' });
    expect(result.conflicts).toContainEqual({ path: '/d/sub/c', ours: 'deleted above', theirs: 'modified', resolution: 'theirs' });
    expect(await read('main', '/d/sub/c')).toBe('agent C');
    expect(await read('main', '/d/a')).toBe('A');
  });
});

describe('renames', () => {
  it('a directory the source renamed carries the target changes inside it to its new path', async () => {
    await engine.files.rename(T, tree('agent'), '/d', '/moved');
    await write('agent', '/moved/from-agent', 'agent');
    await write('main', '/d/a', 'main A');
    await write('main', '/d/sub/new', 'main new');
    const result = await engine.merge(T, 'main', { from: 'agent' });
    expect(result.conflicts).toEqual([]);
    expect(await read('main', '/d/a')).toBe(404);
    expect(await read('main', '/moved/a')).toBe('main A');
    expect(await read('main', '/moved/sub/new')).toBe('main new');
    expect(await read('main', '/moved/sub/c')).toBe('C');
    expect(await read('main', '/moved/from-agent')).toBe('agent');
  });

  it('a directory the target renamed takes the source changes made at its old path', async () => {
    await engine.files.rename(T, tree('main'), '/d', '/mine');
    await write('agent', '/d/a', 'agent A');
    await engine.files.remove(T, tree('agent'), '/d/sub/c');
    expect((await engine.merge(T, 'main', { from: 'agent' })).conflicts).toEqual([]);
    expect(await read('main', '/mine/a')).toBe('agent A');
    expect(await read('main', '/mine/sub/c')).toBe(404);
    expect(await read('main', '/d/a')).toBe(404);
  });

  it('a file the target deleted after renaming its directory conflicts with the source changing it', async () => {
    await engine.files.rename(T, tree('main'), '/d', '/mine');
    await engine.files.remove(T, tree('main'), '/mine/sub/c');
    await write('agent', '/d/sub/c', 'agent C');
    await expect(engine.merge(T, 'main', { from: 'agent' })).rejects.toMatchObject({ details: { conflicts: [{ path: '/mine/sub/c', ours: 'deleted', theirs: 'modified' }] } });
  });

  it('both renaming one directory to different places is a conflict', async () => {
    await engine.files.rename(T, tree('agent'), '/d', '/theirs');
    await engine.files.rename(T, tree('main'), '/d', '/ours');
    await expect(engine.merge(T, 'main', { from: 'agent' })).rejects.toMatchObject({ details: { conflicts: [{ path: '/theirs', ours: 'renamed', theirs: 'renamed' }] } });
  });
});

describe('lifetimes, limits and refusals', () => {
  it('files merged in outlive their source, and removing both leaves nothing behind', async () => {
    await write('agent', '/big', 'x'.repeat(5000));
    await engine.files.link(T, tree('agent'), '/big', '/big-link');
    await engine.merge(T, 'main', { from: 'agent' });
    await engine.containers.remove(T, 'agent');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await read('main', '/big')).toBe('x'.repeat(5000));
    expect(await read('main', '/big-link')).toBe('x'.repeat(5000));
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
    await engine.containers.remove(T, 'main');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
    expect(await queryAll(meta, keys.sealedLayers(T))).toEqual([]);
    expect(await queryAll(meta, keys.garbageList(T))).toEqual([]);
  });

  it('a merge past the target quota is refused with 507 and leaves no layer behind', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'capped', quota: { bytes: 100 } });
    await engine.fork(T, 'capped', { name: 'capped-agent' });
    await engine.containers.setQuota(T, 'capped-agent', { bytes: null });
    await write('capped-agent', '/big', 'x'.repeat(500));
    await expect(engine.merge(T, 'capped', { from: 'capped-agent' })).rejects.toMatchObject({ status: 507 });
    expect(await read('capped', '/big')).toBe(404);
    expect(await queryAll(meta, keys.pendingMerges(T))).toEqual([]);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('refuses a merge into itself and one between containers of two images', async () => {
    await loadImage(engine, T, [[{ path: 'other', content: 'o' }]], ['other:1']);
    await engine.containers.create(T, { image: 'other:1', name: 'stranger' });
    await expect(engine.merge(T, 'main', { from: 'main' })).rejects.toMatchObject({ status: 400 });
    await expect(engine.merge(T, 'main', { from: 'stranger' })).rejects.toMatchObject({ status: 400, message: expect.stringContaining('one image') });
    await expect(engine.merge(T, 'main', { from: 'nobody' })).rejects.toMatchObject({ status: 404 });
  });

  it('merges between containers of one image that were never forked, against the image', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'sibling' });
    await write('sibling', '/etc/hosts', 'sibling\n');
    await write('main', '/etc/motd', 'main motd\n');
    expect((await engine.merge(T, 'main', { from: 'sibling' })).conflicts).toEqual([]);
    expect(await read('main', '/etc/hosts')).toBe('sibling\n');
    expect(await read('main', '/etc/motd')).toBe('main motd\n');
  });
});
