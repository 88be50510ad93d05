import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import { queryAll, type MetadataStore } from '../../shared/ports/metadata-store.js';
import { sealedOf } from '../../shared/domain/sealed-layers.js';
import { loadImage, localEngine } from '../support/engine.js';

/**
 * Compaction: a chain of sealed layers becomes one, and nothing anyone reads changes: the
 * container's tree (its export, byte for byte in content and metadata), the trees of the forks
 * that share the old layers, and what the sweep and fsck find.
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
        { path: 'etc/hosts', content: 'hosts\n' },
        { path: 'd/a', content: 'A' },
        { path: 'd/sub/c', content: 'C' },
        { path: 'keep', content: 'K' },
      ],
    ],
    ['base:1'],
  );
});
afterEach(async () => cleanup());

const box = (ref: string) => ({ kind: 'container' as const, ref });

/** The container's tree as GNU tar lists its export (names, modes, sizes, link targets) plus every file's bytes. */
async function treeOf(ref: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await engine.export(T, ref)) chunks.push(Buffer.from(chunk));
  const tar = Buffer.concat(chunks);
  const listing = execFileSync('tar', ['-tv', '--numeric-owner', '--full-time'], { input: tar }).toString().split('\n').sort().join('\n');
  const contents = execFileSync('tar', ['-xO'], { input: tar }).toString('base64');
  return `${listing}\n${contents}`;
}

type Op = { kind: 'write' | 'remove' | 'rename' | 'mkdir' | 'chmod' | 'fork'; path: string; to?: string };
const paths = ['/etc/hosts', '/d/a', '/d/sub/c', '/d/new', '/keep', '/n/x', '/d', '/d/sub', '/n'];
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('write' as const, 'remove' as const, 'mkdir' as const, 'chmod' as const), path: fc.constantFrom(...paths) }),
  fc.record({ kind: fc.constant('rename' as const), path: fc.constantFrom(...paths), to: fc.constantFrom('/moved', '/d/moved', '/r') }),
  fc.record({ kind: fc.constant('fork' as const), path: fc.constant('/') }),
);

async function apply(ref: string, op: Op, n: number): Promise<void> {
  const tree = box(ref);
  const ignore = (error: { status?: number }) => {
    if ((error.status ?? 500) >= 500) throw error;
  };
  switch (op.kind) {
    case 'write':
      return void (await engine.files.writeFile(T, tree, op.path, Buffer.from(`v${n}`)).catch(ignore));
    case 'remove':
      return void (await engine.files.remove(T, tree, op.path, { recursive: true }).catch(ignore));
    case 'mkdir':
      return void (await engine.files.mkdir(T, tree, op.path, { parents: true }).catch(ignore));
    case 'chmod':
      return void (await engine.files.setAttributes(T, tree, op.path, { mode: 0o600 }).catch(ignore));
    case 'rename':
      return void (await engine.files.rename(T, tree, op.path, op.to!).catch(ignore));
    case 'fork':
      await engine.fork(T, ref);
  }
}

describe('compaction', () => {
  it('turns a chain of forks into one layer, and nothing anyone reads changes', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'w' });
    for (let i = 0; i < 6; i++) {
      await engine.files.writeFile(T, box('w'), `/f${i}`, Buffer.from(`round ${i}`));
      await engine.files.writeFile(T, box('w'), '/etc/hosts', Buffer.from(`hosts ${i}`));
      if (i === 2) await engine.files.rename(T, box('w'), '/d', '/moved');
      if (i === 4) await engine.files.remove(T, box('w'), '/keep');
      await engine.fork(T, 'w', { name: `f${i}` });
    }
    const before = await treeOf('w');
    const forks = await Promise.all([0, 3, 5].map((i) => treeOf(`f${i}`)));
    expect(sealedOf(await engine.containers.record(T, 'w'))).toHaveLength(6);
    expect(await engine.compactor.compact(T, 'w')).toBe(6);
    expect(sealedOf(await engine.containers.record(T, 'w'))).toHaveLength(2);
    expect(await treeOf('w')).toBe(before);
    expect(await Promise.all([0, 3, 5].map((i) => treeOf(`f${i}`)))).toEqual(forks);
    // A fork's fork point is still one after its own chain is compacted.
    await engine.files.writeFile(T, box('f5'), '/mine', Buffer.from('mine'));
    const forkPoint = (await engine.containers.inspect(T, 'f5')).forkedFrom!.forkPoint;
    const sinceFork = await engine.changes(T, 'f5', { against: forkPoint });
    expect(await engine.compactor.compact(T, 'f5')).toBeGreaterThan(1);
    expect(await engine.changes(T, 'f5', { against: forkPoint })).toEqual(sinceFork);
    expect(sinceFork.map((c) => c.path)).toEqual(['/mine']);
    // It goes on as before: writes, forks, changes against the image.
    await engine.files.writeFile(T, box('w'), '/after', Buffer.from('after'));
    expect((await engine.changes(T, 'w')).map((c) => c.path)).toContain('/after');
    await engine.fork(T, 'w', { name: 'later' });
    expect(await treeOf('later')).toBe(await treeOf('w'));
    // Removing everything leaves nothing behind.
    for (const c of await engine.containers.list(T)) await engine.containers.remove(T, c.id);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
    expect(await queryAll(meta, keys.sealedLayers(T))).toEqual([]);
  });

  it('keeps the tree of random chains of changes and forks (property)', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary, { minLength: 4, maxLength: 30 }), async (ops) => {
        const name = `p${run++}`;
        await engine.containers.create(T, { image: 'base:1', name });
        for (const [i, op] of ops.entries()) await apply(name, op, i);
        const before = await treeOf(name);
        await engine.compactor.compact(T, name);
        expect(await treeOf(name)).toBe(before);
        return true;
      }),
      { numRuns: 40, seed: Number(process.env.STRATA_FUZZ_SEED ?? Math.floor(Date.now() / 86_400_000)) },
    );
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('the sweep compacts chains longer than 8, and a fork past the 32 a chain holds compacts first', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'deep' });
    for (let i = 0; i < 10; i++) {
      await engine.files.writeFile(T, box('deep'), `/f${i}`, Buffer.from(`${i}`));
      await engine.fork(T, 'deep');
    }
    const before = await treeOf('deep');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(sealedOf(await engine.containers.record(T, 'deep'))).toHaveLength(2);
    expect(await treeOf('deep')).toBe(before);
    for (let i = 0; i < 33; i++) await engine.fork(T, 'deep');
    expect(sealedOf(await engine.containers.record(T, 'deep')).length).toBeLessThanOrEqual(32);
    expect(await treeOf('deep')).toBe(before);
  });

  it('leaves a chain with hard links as it is', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'linked' });
    await engine.files.link(T, box('linked'), '/keep', '/keep2');
    await engine.fork(T, 'linked');
    await engine.fork(T, 'linked');
    expect(await engine.compactor.compact(T, 'linked')).toBe(0);
    expect(sealedOf(await engine.containers.record(T, 'linked'))).toHaveLength(2);
  });
});
