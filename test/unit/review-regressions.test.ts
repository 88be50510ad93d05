import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { countingCalls, type StoreCalls } from '../../functions/http/store-calls.js';
import { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { TransactionConditionError } from '../../shared/errors.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { loadImage, localEngine, text } from '../support/engine.js';

/** Edge cases found in review: each was a real bug once. */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let blobs: BlobStore;
let cleanup: () => Promise<void>;
let c: { kind: 'container'; ref: string };

beforeEach(async () => {
  ({ engine, meta, blobs, cleanup } = await localEngine());
  await loadImage(
    engine,
    T,
    [
      [
        { path: 'a/f', content: 'F' },
        { path: 'b/', dir: true },
        { path: 'm/keep', content: 'K' },
        { path: 'lnk', symlink: '/m' },
        { path: 'empty', content: '' },
      ],
    ],
    ['img:1'],
  );
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

  it('refuses a write into a directory while it is being renamed, and loses nothing acknowledged', async () => {
    await engine.files.writeFile(T, c, '/m/one', Buffer.from('1'));
    const transact = meta.transact.bind(meta);
    let refusal: unknown;
    meta.transact = async (ops) => {
      const isRename = ops.some((op) => op.op === 'put' && (op.item.attrs as { r?: string }).r === '/m');
      if (isRename && refusal === undefined) {
        refusal = await engine.files.writeFile(T, c, '/m/two', Buffer.from('2')).then(
          () => 'accepted',
          (e) => e,
        );
      }
      return transact(ops);
    };
    await engine.files.rename(T, c, '/m', '/n');
    meta.transact = transact;
    expect(refusal).toMatchObject({ status: 409 });
    expect(await ls('/n')).toEqual(['keep', 'one']);
    await expect(ls('/m')).rejects.toMatchObject({ status: 404 });
    await engine.files.writeFile(T, c, '/n/two', Buffer.from('2'));
    expect(await ls('/n')).toEqual(['keep', 'one', 'two']);
  });

  it('an rmdir cannot remove a file written after its emptiness check', async () => {
    await engine.files.mkdir(T, c, '/e');
    const query = meta.query.bind(meta);
    let writeResult: unknown;
    meta.query = async (pk, options) => {
      // The emptiness check lists /e: a writer arrives right then.
      if (writeResult === undefined && pk.endsWith('#/e'))
        writeResult = await engine.files.writeFile(T, c, '/e/late', Buffer.from('x')).then(
          () => 'accepted',
          (e) => e,
        );
      return query(pk, options);
    };
    const removal = await engine.files.remove(T, c, '/e').then(
      () => 'removed',
      (e) => e,
    );
    meta.query = query;
    // Either the write was refused and the directory went, or the write won and rmdir said ENOTEMPTY.
    if (writeResult === 'accepted') {
      expect(removal).toMatchObject({ code: 'ENOTEMPTY' });
      expect(await ls('/e')).toEqual(['late']);
    } else {
      expect(writeResult).toMatchObject({ status: 409 });
      expect(removal).toBe('removed');
    }
  });

  it('a file moved into a recreated directory survives the old rename cleanup', async () => {
    await engine.files.writeFile(T, c, '/m/own', Buffer.from('mine'));
    await engine.files.rename(T, c, '/m', '/n');
    await engine.files.mkdir(T, c, '/m');
    await engine.files.writeFile(T, c, '/m/fresh', Buffer.from('fresh'));
    expect(await ls('/m')).toEqual(['fresh']);
    expect(await ls('/n')).toEqual(['keep', 'own']);
  });
});

describe('freezing', () => {
  it('removing or renaming a directory below untouched parents commits without a refused transaction', async () => {
    await loadImage(engine, T, [[{ path: 'p/q/r/f', content: 'x' }]], ['deep:1']);
    const deep = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'deep:1' })).id };
    const transact = meta.transact.bind(meta);
    let refused = 0;
    meta.transact = async (ops) => transact(ops).catch((e) => ((refused += 1), Promise.reject(e)));
    await engine.files.rename(T, deep, '/p/q/r', '/p/q/s');
    await engine.files.remove(T, deep, '/p/q/s', { recursive: true });
    meta.transact = transact;
    expect(refused).toBe(0);
    expect((await engine.files.list(T, deep, '/p/q')).entries).toEqual([]);
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
    const id = await loadImage(engine, T, [
      [{ path: 'd/old', content: 'o' }],
      [
        { path: '.wh.d', content: '' },
        { path: 'd/', dir: true },
        { path: 'd/new', content: 'n' },
      ],
    ]);
    expect((await engine.files.list(T, { kind: 'image', ref: id }, '/d')).entries.map((e) => e.name)).toEqual(['new']);
    const after = await loadImage(engine, T, [
      [{ path: 'd/old', content: 'o' }],
      [
        { path: 'd/', dir: true },
        { path: 'd/new2', content: 'n' },
        { path: '.wh.d', content: '' },
      ],
    ]);
    expect((await engine.files.list(T, { kind: 'image', ref: after }, '/d')).entries.map((e) => e.name)).toEqual(['new2']);
  });
});

describe('names', () => {
  it('a file named __proto__ is an entry like any other in an image index', async () => {
    const id = await loadImage(engine, T, [
      [
        { path: 'etc/__proto__', content: 'p' },
        { path: '__proto__/x', content: 'x' },
        { path: 'constructor', content: 'c' },
      ],
    ]);
    const img = { kind: 'image' as const, ref: id };
    expect((await engine.files.list(T, img, '/etc')).entries.map((e) => e.name)).toEqual(['__proto__']);
    expect(await text((await engine.files.read(T, img, '/__proto__/x')).body)).toBe('x');
    expect((await engine.files.list(T, img, '/')).entries.map((e) => e.name)).toEqual(['__proto__', 'constructor', 'etc']);
  });
});

describe('mounts', () => {
  it('refuses one volume mounted twice and too many mounts, with 400', async () => {
    await expect(
      engine.containers.create(T, {
        image: 'img:1',
        mounts: [
          { target: '/x', volume: 'v' },
          { target: '/y', volume: 'v' },
        ],
      }),
    ).rejects.toMatchObject({ status: 400 });
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

describe('container names', () => {
  it('a read by name costs one metadata round trip once warm, and follows the name to a new container', async () => {
    await engine.containers.create(T, { image: 'img:1', name: 'named' });
    const byName = { kind: 'container' as const, ref: 'named' };
    await engine.files.stat(T, byName, '/a/f');
    const getMany = meta.getMany.bind(meta);
    const get = meta.get.bind(meta);
    let calls = 0;
    meta.getMany = async (k) => ((calls += 1), getMany(k));
    meta.get = async (k) => ((calls += 1), get(k));
    await text((await engine.files.read(T, byName, '/a/f')).body);
    meta.getMany = getMany;
    meta.get = get;
    expect(calls).toBe(1);
    // Another function instance (its own cache) removes it and gives the name to a new container.
    const other = new Engine(meta, blobs);
    await other.containers.remove(T, 'named');
    const again = await other.containers.create(T, { image: 'img:1', name: 'named' });
    await other.files.writeFile(T, { kind: 'container', ref: again.id }, '/a/f', Buffer.from('new one'));
    expect(await text((await engine.files.read(T, byName, '/a/f')).body)).toBe('new one');
  });
});

describe('writes on a warm engine', () => {
  /** An engine over the same stores whose port calls are counted into `calls`. */
  function countedEngine(calls: StoreCalls): Engine {
    return new Engine(countingCalls(meta, calls, 'metadata'), countingCalls(blobs, calls, 'blobs'));
  }

  it('a 1 KiB write by name costs 2 metadata round trips (the path with the proof of the record, the transaction) and 1 blob write, and a write of the same path again 1 + 1', async () => {
    await engine.containers.create(T, { image: 'img:1', name: 'warm' });
    const warm = { kind: 'container' as const, ref: 'warm' };
    const calls = { metadata: 0, blobs: 0 };
    const counted = countedEngine(calls);
    await counted.files.writeFile(T, warm, '/first', Buffer.from('warms the record cache'));
    const since = async (work: () => Promise<unknown>) => {
      Object.assign(calls, { metadata: 0, blobs: 0 });
      await work();
      return { ...calls };
    };
    expect(await since(() => counted.files.writeFile(T, warm, '/a/f', Buffer.alloc(1024, 1)))).toEqual({ metadata: 2, blobs: 1 });
    // That write copied /a up; once the parents are the container's own, a write of a path
    // written before costs its transaction alone (it pins every node the write relied on).
    expect(await since(() => counted.files.writeFile(T, warm, '/a/f', Buffer.alloc(1024, 1)))).toEqual({ metadata: 2, blobs: 1 });
    expect(await since(() => counted.files.writeRange(T, warm, '/a/f', 'end', Buffer.alloc(1024, 2)))).toEqual({ metadata: 1, blobs: 1 });
    expect(await since(() => counted.files.writeFile(T, warm, '/first', Buffer.alloc(1024, 3)))).toEqual({ metadata: 1, blobs: 1 });
    expect((await engine.files.stat(T, warm, '/a/f')).size).toBe(2048);
    // Another instance changes the file: the guess is stale, the transaction says so, and the
    // write is resolved afresh (with the feed's head, which that change moved) and lands on top of it.
    await new Engine(meta, blobs).files.writeRange(T, warm, '/a/f', 'end', Buffer.from('X'));
    expect(await since(() => counted.files.writeRange(T, warm, '/a/f', 'end', Buffer.from('Y')))).toEqual({ metadata: 4, blobs: 1 });
    expect((await text((await engine.files.read(T, warm, '/a/f')).body)).slice(-2)).toBe('XY');
    // Another instance removes the parent: the write is refused as the kernel would, not resurrected.
    await new Engine(meta, blobs).files.remove(T, warm, '/a', { recursive: true });
    await expect(counted.files.writeFile(T, warm, '/a/f', Buffer.from('Z'))).rejects.toMatchObject({ status: 404 });
  });

  it('a page of a 2,500-entry directory costs 2 metadata requests on a warm engine (3 with the container own entries there), with no empty last page', async () => {
    await loadImage(engine, T, [Array.from({ length: 2500 }, (_, i) => ({ path: `many/f${String(i).padStart(4, '0')}`, content: 'x' }))], ['many:1']);
    await engine.containers.create(T, { image: 'many:1', name: 'lister' });
    const lister = { kind: 'container' as const, ref: 'lister' };
    const calls = { metadata: 0, blobs: 0 };
    const counted = countedEngine(calls);
    await counted.files.stat(T, lister, '/');
    const pages = async () => {
      const out: { names: string[]; requests: number }[] = [];
      let cursor: string | undefined;
      do {
        calls.metadata = 0;
        const page = await counted.files.list(T, lister, '/many', { cursor, limit: 1000 });
        out.push({ names: page.entries.map((e) => e.name), requests: calls.metadata });
        cursor = page.cursor;
      } while (cursor);
      return out;
    };
    const untouched = await pages();
    expect(untouched.map((p) => p.names.length)).toEqual([1000, 1000, 500]);
    expect(untouched.map((p) => p.requests)).toEqual([2, 2, 2]);
    await engine.files.writeFile(T, lister, '/many/own', Buffer.from('o'));
    await engine.files.remove(T, lister, '/many/f0000');
    const changed = await pages();
    expect(changed.flatMap((p) => p.names)).toEqual([...untouched.flatMap((p) => p.names).slice(1), 'own']);
    // The container's own partition of the directory is one more query, in the same round.
    expect(changed.map((p) => p.requests)).toEqual([3, 3, 3]);
  });

  it('a write by a cached name follows the name to the container another instance gave it, even when the old one was only renamed', async () => {
    await engine.containers.create(T, { image: 'img:1', name: 'moving' });
    const byName = { kind: 'container' as const, ref: 'moving' };
    await engine.files.writeFile(T, byName, '/x', Buffer.from('to the first'));
    const other = new Engine(meta, blobs);
    await other.containers.rename(T, 'moving', 'moved');
    const second = await other.containers.create(T, { image: 'img:1', name: 'moving' });
    await engine.files.writeFile(T, byName, '/x', Buffer.from('to the second'));
    expect(await text((await other.files.read(T, { kind: 'container', ref: second.id }, '/x')).body)).toBe('to the second');
    expect(await text((await other.files.read(T, { kind: 'container', ref: 'moved' }, '/x')).body)).toBe('to the first');
    // A read by the cached name follows it too.
    expect(await text((await engine.files.read(T, byName, '/x')).body)).toBe('to the second');
  });

  it('a write by a cached name of a container removed meanwhile is 404, and leaves no blob', async () => {
    await engine.containers.create(T, { image: 'img:1', name: 'gone' });
    const byName = { kind: 'container' as const, ref: 'gone' };
    await engine.files.writeFile(T, byName, '/x', Buffer.from('x'));
    const calls = { metadata: 0, blobs: 0 };
    const counted = countedEngine(calls);
    await counted.files.writeFile(T, byName, '/x', Buffer.from('x'));
    await new Engine(meta, blobs).containers.remove(T, 'gone');
    calls.blobs = 0;
    await expect(counted.files.writeFile(T, byName, '/y', Buffer.from('y'))).rejects.toMatchObject({ status: 404 });
    expect(calls.blobs).toBe(0);
  });
});

describe('third review', () => {
  it('renaming a directory inside a mounted volume keeps its contents', async () => {
    const vc = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'img:1', mounts: [{ target: '/data', volume: 'vol' }] })).id };
    await engine.files.mkdir(T, vc, '/data/a');
    await engine.files.writeFile(T, vc, '/data/a/x', Buffer.from('kept'));
    await engine.files.rename(T, vc, '/data/a', '/data/b');
    expect(await text((await engine.files.read(T, vc, '/data/b/x')).body)).toBe('kept');
    expect(await text((await engine.files.read(T, { kind: 'volume', name: 'vol' }, '/b/x')).body)).toBe('kept');
    // No stray copies in the container's own layer: the image's empty /b stays empty.
    expect((await engine.files.list(T, vc, '/b')).entries).toEqual([]);
  });

  it('refuses a container name that looks like an ID', async () => {
    await expect(engine.containers.create(T, { image: 'img:1', name: c.ref })).rejects.toMatchObject({ status: 400 });
  });

  it('lists and writes by name follow the name to a container another instance made', async () => {
    await engine.containers.create(T, { image: 'img:1', name: 'web' });
    const byName = { kind: 'container' as const, ref: 'web' };
    await engine.files.writeFile(T, byName, '/old-only', Buffer.from('old'));
    expect((await engine.files.list(T, byName, '/')).entries.map((e) => e.name)).toContain('old-only');
    const other = new Engine(meta, blobs);
    await other.containers.remove(T, 'web');
    await other.containers.create(T, { image: 'img:1', name: 'web' });
    expect((await engine.files.list(T, byName, '/')).entries.map((e) => e.name)).not.toContain('old-only');
    await engine.files.writeFile(T, byName, '/new-only', Buffer.from('new'));
    expect(await text((await other.files.read(T, byName, '/new-only')).body)).toBe('new');
  });

  it('an rmdir whose last step is refused once never brings deleted lower files back', async () => {
    await loadImage(engine, T, [[{ path: 'p/e/gone', content: 'g' }]], ['rm:1']);
    const rc = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'rm:1' })).id };
    await engine.files.remove(T, rc, '/p/e/gone');
    const transact = meta.transact.bind(meta);
    let refused = false;
    meta.transact = async (ops) => {
      const vacating = ops.some((op) => (op.op === 'delete' && op.key.sk === 'e') || (op.op === 'put' && op.item.sk === 'e' && op.item.attrs.t === 'w'));
      if (vacating && !refused) {
        refused = true;
        throw new TransactionConditionError('injected race', [0]);
      }
      return transact(ops);
    };
    await engine.files.remove(T, rc, '/p/e');
    meta.transact = transact;
    expect(refused).toBe(true);
    expect((await engine.files.list(T, rc, '/p')).entries).toEqual([]);
  });

  it('a rename onto a path another client just created does not overwrite what it wrote', async () => {
    await engine.files.mkdir(T, c, '/s');
    await engine.files.writeFile(T, c, '/s/x', Buffer.from('source'));
    const transact = meta.transact.bind(meta);
    let raced = false;
    meta.transact = async (ops) => {
      const copying = ops.some((op) => op.op === 'put' && op.item.pk.endsWith('#/t'));
      if (copying && !raced) {
        raced = true;
        await engine.files.mkdir(T, c, '/t');
        await engine.files.writeFile(T, c, '/t/x', Buffer.from('ACKED'));
      }
      return transact(ops);
    };
    const outcome = await engine.files.rename(T, c, '/s', '/t').then(
      () => 'renamed',
      (e) => e,
    );
    meta.transact = transact;
    expect(raced).toBe(true);
    expect(outcome).toMatchObject({ status: 409 });
    expect(await text((await engine.files.read(T, c, '/t/x')).body)).toBe('ACKED');
    expect(await text((await engine.files.read(T, c, '/s/x')).body)).toBe('source');
  });
});
