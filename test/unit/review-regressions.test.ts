import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { loadImage, localEngine, text } from '../support/engine.js';

/** Edge cases found in review: each was a real bug once. */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let cleanup: () => Promise<void>;
let c: { kind: 'container'; ref: string };

beforeEach(async () => {
  ({ engine, meta, cleanup } = await localEngine());
  await loadImage(engine, T, [[{ path: 'a/f', content: 'F' }, { path: 'b/', dir: true }, { path: 'm/keep', content: 'K' }, { path: 'lnk', symlink: '/m' }, { path: 'empty', content: '' }]], ['img:1']);
  c = { kind: 'container', ref: (await engine.containers.create(T, { image: 'img:1' })).id };
});
afterEach(async () => cleanup());

const ls = async (path: string) => (await engine.files.list(T, c, path)).entries.map((e) => e.name);

describe('rename', () => {
  it('out of a directory the container never touched hides the old name everywhere', async () => {
    await engine.files.rename(T, c, '/a/f', '/b/f');
    expect(await ls('/a')).toEqual([]);
    expect(await ls('/b')).toEqual(['f']);
    expect(await engine.changes(T, c.ref)).toEqual([
      { path: '/a', kind: 0 },
      { path: '/a/f', kind: 2 },
      { path: '/b', kind: 0 },
      { path: '/b/f', kind: 1 },
    ]);
    const { id } = await engine.commit(T, c.ref);
    await expect(engine.files.stat(T, { kind: 'image', ref: id }, '/a/f')).rejects.toMatchObject({ status: 404 });
  });

  it('into itself through a symlink is refused and deletes nothing', async () => {
    await expect(engine.files.rename(T, c, '/m', '/lnk/sub')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await text((await engine.files.read(T, c, '/m/keep')).body)).toBe('K');
  });

  it('keeps a write that lands in the directory while it is being renamed', async () => {
    await engine.files.writeFile(T, c, '/m/one', Buffer.from('1'));
    const transact = meta.transact.bind(meta);
    let injected = false;
    meta.transact = async (ops) => {
      const isRename = ops.some((op) => op.op === 'put' && (op.item.attrs as { r?: string }).r === '/m');
      if (isRename && !injected) {
        injected = true;
        await engine.files.writeFile(T, c, '/m/two', Buffer.from('2'));
      }
      return transact(ops);
    };
    await engine.files.rename(T, c, '/m', '/n');
    meta.transact = transact;
    expect(await ls('/n')).toEqual(['keep', 'one', 'two']);
    expect(await text((await engine.files.read(T, c, '/n/two')).body)).toBe('2');
  });
});

describe('writes', () => {
  it('a write of no bytes past the end changes nothing', async () => {
    await engine.files.writeFile(T, c, '/x', Buffer.from('12345'));
    const stat = await engine.files.writeRange(T, c, '/x', 100, Buffer.alloc(0));
    expect(stat.size).toBe(5);
    expect(await text((await engine.files.read(T, c, '/x')).body)).toBe('12345');
  });

  it('no byte range of an empty file can be satisfied', async () => {
    await expect(engine.files.read(T, c, '/empty', { start: 0 })).rejects.toMatchObject({ status: 416 });
    expect(await text((await engine.files.read(T, c, '/empty')).body)).toBe('');
  });
});

describe('layers', () => {
  it('a whiteout and a directory of the same name in one layer hide the lower contents', async () => {
    const id = await loadImage(engine, T, [[{ path: 'd/old', content: 'o' }], [{ path: '.wh.d', content: '' }, { path: 'd/', dir: true }, { path: 'd/new', content: 'n' }]]);
    expect((await engine.files.list(T, { kind: 'image', ref: id }, '/d')).entries.map((e) => e.name)).toEqual(['new']);
    const after = await loadImage(engine, T, [[{ path: 'd/old', content: 'o' }], [{ path: 'd/', dir: true }, { path: 'd/new2', content: 'n' }, { path: '.wh.d', content: '' }]]);
    expect((await engine.files.list(T, { kind: 'image', ref: after }, '/d')).entries.map((e) => e.name)).toEqual(['new2']);
  });
});

describe('mounts', () => {
  it('refuses one volume mounted twice and too many mounts, with 400', async () => {
    await expect(engine.containers.create(T, { image: 'img:1', mounts: [{ target: '/x', volume: 'v' }, { target: '/y', volume: 'v' }] })).rejects.toMatchObject({ status: 400 });
    await expect(engine.containers.create(T, { image: 'img:1', mounts: Array.from({ length: 60 }, (_, i) => ({ target: `/m${i}` })) })).rejects.toMatchObject({ status: 400 });
  });
});

describe('sweep', () => {
  it('leaves a namespace alone when it changes during the walk, so a moved file keeps its bytes', async () => {
    await engine.files.mkdir(T, c, '/q');
    await engine.files.writeFile(T, c, '/q/f', Buffer.from('precious'));
    await engine.files.mkdir(T, c, '/z');
    const query = meta.query.bind(meta);
    let moved = false;
    meta.query = async (pk, options) => {
      // While the sweep walks the container's root, move the file from a directory not yet walked into one already walked.
      if (!moved && pk.includes('#n#c:') && pk.endsWith('#/q')) {
        moved = true;
        await engine.files.rename(T, c, '/q/f', '/z/f');
      }
      return query(pk, options);
    };
    await engine.sweeper.sweep(T, { graceMs: 0 });
    meta.query = query;
    expect(moved).toBe(true);
    expect(await text((await engine.files.read(T, c, '/z/f')).body)).toBe('precious');
  });
});
