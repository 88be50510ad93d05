import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import type { FsckProblem } from '../../shared/domain/fsck.js';
import { Engine } from '../../shared/engine.js';
import { FaultPlan, faultyStores, type FaultMode } from '../support/fault-injection.js';
import { dockerArchive, multiImageArchive } from '../support/images.js';
import { text } from '../support/engine.js';

/**
 * Every storage call of each operation is made to fail in turn (once, or as a crash before or
 * after it takes effect). Then, as after a restart, the sweep runs and fsck must find nothing:
 * no dangling metadata, no orphan blob, no wrong counter, and every write acknowledged before
 * (or by) the operation still reads back.
 */
const T = 'acme';
const box = { kind: 'container' as const, ref: 'box' };
const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

interface World {
  meta: MemoryMetadataStore;
  blobs: FsBlobStore;
}

async function world(): Promise<World> {
  const root = await mkdtemp(join(tmpdir(), 'strata-fault-'));
  roots.push(root);
  const meta = new MemoryMetadataStore();
  const blobs = new FsBlobStore(root, async (key) => key);
  const engine = new Engine(meta, blobs);
  const { archive } = await dockerArchive(
    [
      [
        { path: 'etc/hosts', content: 'original' },
        { path: 'opt/dir/sub/f', content: 'x' },
        { path: 'big', content: Buffer.alloc(100_000, 7) },
      ],
    ],
    { tags: ['base:1'] },
  );
  await engine.images.load(T, [archive]);
  await engine.containers.create(T, { image: 'base:1', name: 'box', mounts: [{ target: '/data', volume: 'keep' }] });
  await engine.files.writeFile(T, box, '/acked', Buffer.from('acked'));
  await engine.files.writeFile(T, box, '/data/state', Buffer.from('volume'));
  await engine.containers.create(T, { image: 'base:1', name: 'doomed' });
  await engine.files.writeFile(T, { kind: 'container', ref: 'doomed' }, '/own', Buffer.from('own bytes'));
  return { meta, blobs };
}

const read = async (engine: Engine, path: string, target = box) => {
  try {
    return await text((await engine.files.read(T, target, path)).body);
  } catch (error) {
    if ((error as { status?: number }).status === 404) return undefined;
    throw error;
  }
};

interface Scenario {
  name: string;
  op: (engine: Engine) => Promise<unknown>;
  /** What must hold afterwards, given whether the operation was acknowledged. */
  verify: (engine: Engine, acknowledged: boolean) => Promise<void>;
}

/** Writes acknowledged before every operation. */
async function earlierWritesIntact(engine: Engine) {
  expect(await read(engine, '/acked')).toBe('acked');
  expect(await read(engine, '/data/state')).toBe('volume');
}

const secondArchive = multiImageArchive([
  { layers: [[{ path: 'a', content: 'A' }], [{ path: 'b', content: 'B' }]], tags: ['two:1'] },
  { layers: [[{ path: 'a', content: 'A' }], [{ path: 'c', content: 'C' }]], tags: ['three:1', 'base:1'] },
]);

const scenarios: Scenario[] = [
  {
    name: 'write over a lower file',
    op: (e) => e.files.writeFile(T, box, '/etc/hosts', Buffer.from('new')),
    verify: async (e, ok) => {
      const content = await read(e, '/etc/hosts');
      if (ok) expect(content).toBe('new');
      else expect(['original', 'new']).toContain(content);
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'write into a large lower file at an offset',
    op: (e) => e.files.writeRange(T, box, '/big', 50_000, Buffer.from('zz')),
    verify: async (e, ok) => {
      const content = Buffer.from((await read(e, '/big'))!, 'latin1');
      expect(content.length).toBe(100_000);
      if (ok) expect(content.subarray(50_000, 50_002).toString()).toBe('zz');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'append',
    op: (e) => e.files.writeRange(T, box, '/acked', 'end', Buffer.from('+more')),
    verify: async (e, ok) => {
      const content = await read(e, '/acked');
      if (ok) expect(content).toBe('acked+more');
      else expect(['acked', 'acked+more']).toContain(content);
    },
  },
  {
    name: 'rename of a lower directory',
    op: (e) => e.files.rename(T, box, '/opt/dir', '/moved'),
    verify: async (e, ok) => {
      const [before, after] = [await read(e, '/opt/dir/sub/f'), await read(e, '/moved/sub/f')];
      if (ok) expect([before, after]).toEqual([undefined, 'x']);
      else expect([[undefined, 'x'], ['x', undefined]]).toContainEqual([before, after]);
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'recursive removal of a lower directory',
    op: (e) => e.files.remove(T, box, '/opt', { recursive: true }),
    verify: async (e, ok) => {
      const content = await read(e, '/opt/dir/sub/f');
      if (ok) expect(content).toBeUndefined();
      else expect([undefined, 'x']).toContain(content);
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'commit',
    op: (e) => e.commit(T, 'box', { reference: 'snap:1' }),
    verify: async (e, ok) => {
      if (ok) expect(await read(e, '/acked', { kind: 'image', ref: 'snap:1' } as never)).toBe('acked');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'load of an archive of two images that share a layer and take an existing tag',
    op: async (e) => e.images.load(T, [(await secondArchive).archive]),
    verify: async (e, ok) => {
      const tags = (await e.images.list(T)).flatMap((i) => i.tags).sort();
      const loaded = ['base:1', 'three:1', 'two:1'];
      // Both images with all their tags, or neither (base:1 then still names the old image).
      if (ok) expect(tags).toEqual(loaded);
      else expect([loaded, ['base:1']]).toContainEqual(tags);
      if (tags.length === 3) expect(await read(e, '/c', { kind: 'image', ref: 'base:1' } as never)).toBe('C');
      else expect(await read(e, '/etc/hosts', { kind: 'image', ref: 'base:1' } as never)).toBe('original');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'removal of a container',
    op: (e) => e.containers.remove(T, 'doomed'),
    verify: async (e, ok) => {
      if (ok) await expect(e.containers.inspect(T, 'doomed')).rejects.toMatchObject({ status: 404 });
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'sweep after a container removal',
    op: async (e) => {
      await e.sweeper.sweep(T, { graceMs: 0 });
    },
    verify: async (e) => earlierWritesIntact(e),
  },
];

/** 'resolved', 'rejected', or 'pending' if the promise has not settled within `ms`. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<'resolved' | 'rejected' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<'pending'>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([promise.then(() => 'resolved' as const, () => 'rejected' as const), pending]);
  } finally {
    clearTimeout(timer);
  }
}

const modes: FaultMode[] = ['fail', 'crash', 'crash-after'];
const totals = { positions: 0, lost: 0, problems: 0 };

describe('a fault at every storage call leaves a consistent store', () => {
  for (const scenario of scenarios) {
    it(`${scenario.name}`, async () => {
      // The sweep scenario needs garbage to sweep.
      const prepare = async (w: World) => {
        if (scenario.name.startsWith('sweep')) await new Engine(w.meta, w.blobs).containers.remove(T, 'doomed');
      };
      const counting = await world();
      await prepare(counting);
      const plan = new FaultPlan();
      const stores = faultyStores(counting.meta, counting.blobs, plan);
      await scenario.op(new Engine(stores.meta, stores.blobs));
      const positions = plan.calls;
      expect(positions).toBeGreaterThan(0);

      const failures: string[] = [];
      for (const mode of modes) {
        for (let at = 1; at <= positions; at++) {
          const w = await world();
          await prepare(w);
          const faulty = new FaultPlan(at, mode);
          const stores = faultyStores(w.meta, w.blobs, faulty);
          const outcome = await settledWithin(scenario.op(new Engine(stores.meta, stores.blobs)), 10_000);
          if (outcome === 'pending') {
            failures.push(`${mode} at call ${at} (${faulty.log[at - 1]}): the operation never settled`);
            continue;
          }
          const acknowledged = outcome === 'resolved';
          // A restart: fresh stores, no faults; the sweep reclaims what the failure left.
          const engine = new Engine(w.meta, w.blobs);
          await engine.sweeper.sweep(T, { graceMs: 0 });
          const report = await engine.fsck.check(T, { graceMs: 0 });
          totals.positions++;
          const where = `${mode} at call ${at} (${faulty.log[at - 1]})`;
          if (report.problems.length) {
            totals.problems += report.problems.length;
            failures.push(`${where}: ${report.problems.map((p: FsckProblem) => `${p.kind}: ${p.detail}`).join('; ')}`);
          }
          try {
            await scenario.verify(engine, acknowledged);
          } catch (error) {
            totals.lost++;
            failures.push(`${where}: ${(error as Error).message.split('\n')[0]}`);
          }
        }
      }
      expect(failures).toEqual([]);
    });
  }

  it('covered every position of every operation', () => {
    console.log(`fault positions injected: ${totals.positions}, lost writes: ${totals.lost}, fsck problems: ${totals.problems}`);
    expect(totals.positions).toBeGreaterThan(100);
  });
});
