import { expect } from 'vitest';
import type { FsckProblem } from '../../shared/domain/fsck.js';
import { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { text } from './engine.js';
import { FaultPlan, faultyStores, type FaultMode } from './fault-injection.js';
import { dockerArchive, multiImageArchive } from './images.js';

/**
 * Operations run with a fault at each of their storage calls in turn (see fault-injection.ts),
 * on whatever stores a test gives: in-process ones in the unit tests, DynamoDB Local and Ceph RGW
 * in the integration tests. After each, as after a restart, the sweep runs and fsck must find
 * nothing, and every write acknowledged before (or by) the operation must read back.
 */

/** Stores for one run; each run gets a fresh tenant (or fresh stores), so runs never meet. */
export interface World {
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  readonly tenant: string;
}

/** The tenant of the run in progress (scenarios are written against it). */
let T = 'acme';
const box = { kind: 'container' as const, ref: 'box' };
const agent = { kind: 'container' as const, ref: 'agent' };

/** Fills a world with the image, containers, volume and acknowledged writes every scenario starts from. */
export async function populate(world: World): Promise<void> {
  T = world.tenant;
  const engine = new Engine(world.meta, world.blobs);
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
  // A fork with changes of its own, for the merge.
  await engine.fork(T, 'box', { name: 'agent' });
  await engine.files.writeFile(T, agent, '/etc/hosts', Buffer.from('agent hosts'));
  await engine.files.writeFile(T, agent, '/agent-new', Buffer.from('agent'));
  await engine.containers.create(T, { image: 'base:1', name: 'doomed' });
  await engine.files.writeFile(T, { kind: 'container', ref: 'doomed' }, '/own', Buffer.from('own bytes'));
  if (pendingGarbage) await engine.containers.remove(T, 'doomed');
}

let pendingGarbage = false;

const read = async (engine: Engine, path: string, target = box) => {
  try {
    return await text((await engine.files.read(T, target, path)).body);
  } catch (error) {
    if ((error as { status?: number }).status === 404) return undefined;
    throw error;
  }
};

export interface Scenario {
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

/** Three images of 40 tags each: 126 items, so the load takes two transactions under a journal. */
const manyTags = (name: string) => Array.from({ length: 40 }, (_, i) => `${name}:${i}`);
const bigArchive = multiImageArchive([
  { layers: [[{ path: 'a', content: 'A' }]], tags: manyTags('one') },
  { layers: [[{ path: 'a', content: 'A' }], [{ path: 'b', content: 'B' }]], tags: manyTags('two') },
  { layers: [[{ path: 'c', content: 'C' }]], tags: [...manyTags('three').slice(1), 'base:1'] },
]);

export const scenarios: Scenario[] = [
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
      else
        expect([
          [undefined, 'x'],
          ['x', undefined],
        ]).toContainEqual([before, after]);
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
    name: 'load of an archive too big for one transaction (three images, 120 tags, one taken from another image)',
    op: async (e) => e.images.load(T, [(await bigArchive).archive]),
    verify: async (e, ok) => {
      const tags = (await e.images.list(T)).flatMap((i) => i.tags);
      // All 120 tags on the three new images, or none of them: no half-loaded archive survives.
      if (ok) expect(tags).toHaveLength(120);
      else expect([120, 1]).toContain(tags.length);
      if (tags.length === 1) {
        expect(tags).toEqual(['base:1']);
        expect(await read(e, '/etc/hosts', { kind: 'image', ref: 'base:1' } as never)).toBe('original');
        expect((await e.images.list(T)).length).toBe(1);
      } else expect(await read(e, '/c', { kind: 'image', ref: 'base:1' } as never)).toBe('C');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'fork',
    op: (e) => e.fork(T, 'box', { name: 'twin' }),
    verify: async (e, ok) => {
      if (ok) expect(await read(e, '/acked', { kind: 'container', ref: 'twin' })).toBe('acked');
      await e.files.writeFile(T, box, '/after', Buffer.from('after'));
      expect(await read(e, '/after')).toBe('after');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'merge of a fork',
    op: (e) => e.merge(T, 'box', { from: 'agent' }),
    verify: async (e, ok) => {
      // All of the fork's changes, or none of them.
      const seen = [await read(e, '/etc/hosts'), await read(e, '/agent-new')];
      if (ok) expect(seen).toEqual(['agent hosts', 'agent']);
      else
        expect([
          ['agent hosts', 'agent'],
          ['original', undefined],
        ]).toContainEqual(seen);
      expect(await read(e, '/agent-new', agent)).toBe('agent');
      await e.files.writeFile(T, box, '/after', Buffer.from('after'));
      expect(await read(e, '/after')).toBe('after');
      await earlierWritesIntact(e);
    },
  },
  {
    name: 'fork, then compaction of the chain',
    op: async (e) => {
      await e.fork(T, 'box', { name: 'third' });
      return e.compactor.compact(T, 'box');
    },
    verify: async (e) => {
      expect(await read(e, '/etc/hosts')).toBe('original');
      expect(await read(e, '/agent-new')).toBeUndefined();
      await e.files.writeFile(T, box, '/after', Buffer.from('after'));
      expect(await read(e, '/after')).toBe('after');
      expect(await read(e, '/agent-new', agent)).toBe('agent');
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
    return await Promise.race([
      promise.then(
        () => 'resolved' as const,
        () => 'rejected' as const,
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface PositionsReport {
  readonly positions: number;
  readonly lost: number;
  readonly problems: number;
  readonly failures: string[];
}

/** Runs `scenario` once to count its storage calls, then once per call and mode with that call faulty. */
export async function runPositions(scenario: Scenario, newWorld: () => Promise<World>, modes: readonly FaultMode[]): Promise<PositionsReport> {
  pendingGarbage = scenario.name.startsWith('sweep');
  const counting = await newWorld();
  await populate(counting);
  const plan = new FaultPlan();
  const stores = faultyStores(counting.meta, counting.blobs, plan);
  await scenario.op(new Engine(stores.meta, stores.blobs));
  const positions = plan.calls;
  const report = { positions: 0, lost: 0, problems: 0, failures: [] as string[] };
  for (const mode of modes) {
    for (let at = 1; at <= positions; at++) {
      const w = await newWorld();
      await populate(w);
      const faulty = new FaultPlan(at, mode);
      const stores = faultyStores(w.meta, w.blobs, faulty);
      const where = `${mode} at call ${at} (${faulty.log[at - 1] ?? '?'})`;
      report.positions++;
      const outcome = await settledWithin(scenario.op(new Engine(stores.meta, stores.blobs)), 10_000);
      if (outcome === 'pending') {
        report.failures.push(`${where}: the operation never settled`);
        continue;
      }
      // A restart: the stores without faults; the sweep reclaims what the failure left. The sweep
      // spares what is not older than its cutoff; a blob made in the very millisecond the sweep
      // starts would then be an orphan for the fsck a millisecond later, so time moves on first.
      await new Promise((resolve) => setTimeout(resolve, 5));
      const engine = new Engine(w.meta, w.blobs);
      await engine.sweeper.sweep(T, { graceMs: 0 });
      const fsck = await engine.fsck.check(T, { graceMs: 0 });
      if (fsck.problems.length) {
        report.problems += fsck.problems.length;
        report.failures.push(`${where}: ${fsck.problems.map((p: FsckProblem) => `${p.kind}: ${p.detail}`).join('; ')}`);
      }
      try {
        await scenario.verify(engine, outcome === 'resolved');
      } catch (error) {
        report.lost++;
        report.failures.push(`${where}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  }
  return report;
}
