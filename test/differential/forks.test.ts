import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { localEngine, loadImage } from '../support/engine.js';
import { applyInTurn, comparable, dockerChanges, KnownPaths, opArbitrary, strataTree, type AbstractOp, type TreeEntry } from '../support/fs-ops.js';
import { base, top, words } from '../support/fuzz-image.js';
import { writeLayer } from '../support/layer-dirs.js';
import { KernelOracle } from '../support/kernel-oracle.js';

/**
 * Forks against the kernel: random operations on a container, a fork of it, a fork of the fork,
 * and on the kernel side an overlay whose upper becomes a lower at each fork (a sealed layer is
 * exactly that). After each stage the fork's tree and `docker diff` must equal the kernel's; at
 * the end every earlier container must still show its tree at the instant it was forked, and
 * `changes?against` between neighbours must equal the difference of the kernel's trees.
 * STRATA_FORK_RUNS sets the number of sequences; STRATA_FUZZ_SEED replays a run.
 *
 * Hard links are left out here: the kernel keeps a copied-up link's identity in the overlay's
 * index (in its workdir), which is lost when the upper becomes a lower, so its names part ways
 * at a fork where Strata's stay one file. test/unit/forks.test.ts covers links across forks.
 */
const RUNS = Number(process.env.STRATA_FORK_RUNS ?? 40);
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? Math.floor(Date.now() / 86_400_000));
const STAGE_OPS = 40;
const T = 'forkfuzz';

let engine: Engine;
let cleanup: () => Promise<void>;
let work: string;
let lowers: string[];

beforeAll(async () => {
  ({ engine, cleanup } = await localEngine());
  work = await mkdtemp(join(tmpdir(), 'strata-forks-'));
  const unlinked = (entries: typeof base) => entries.filter((e) => !('hardlink' in e));
  const baseTar = await writeLayer(unlinked(base), join(work, 'tar-1'), join(work, 'lower-1'));
  const topTar = await writeLayer(unlinked(top), join(work, 'tar-2'), join(work, 'lower-2'));
  lowers = [join(work, 'lower-2'), join(work, 'lower-1')];
  await loadImage(engine, T, [baseTar, topTar], ['fuzz:base']);
});
afterAll(async () => {
  await KernelOracle.shutdown();
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

const kinds = ['C', 'A', 'D'] as const;
const changesOf = async (ref: string, against?: string) => (await engine.changes(T, ref, { against })).map((c) => ({ path: c.path, kind: kinds[c.kind] }));

async function agree(stages: readonly (readonly AbstractOp[])[]): Promise<void> {
  const created: string[] = [];
  const ranSoFar: unknown[] = [];
  const first = await engine.containers.create(T, { image: 'fuzz:base' });
  created.push(first.id);
  let kernel = await KernelOracle.overlay(lowers);
  try {
    const image = await kernel.tree();
    const known = new KnownPaths(image.map((e) => e.path));
    /** The kernel's tree when each container was forked (the last one: now). */
    const frozen: TreeEntry[][] = [];
    const ran: unknown[] = ranSoFar;
    for (const [stage, ops] of stages.entries()) {
      if (stage > 0) {
        frozen.push(await kernel.tree());
        const fork = await engine.fork(T, created[created.length - 1]);
        created.push(fork.id);
        kernel = await kernel.fork();
        ran.push('fork');
      }
      const ref = created[created.length - 1];
      ran.push(...(await applyInTurn(kernel, 'kernel', { engine, tenant: T, tree: { kind: 'container', ref } }, known, ops)));
      const now = await kernel.tree();
      const context = `stage ${stage} after ${JSON.stringify(ran)}`;
      expect(comparable(await strataTree(engine, T, { kind: 'container', ref })), `merged tree, ${context}`).toEqual(comparable(now));
      expect(await changesOf(ref), `docker diff, ${context}`).toEqual(dockerChanges(image, now));
      if (stage > 0) expect(await changesOf(ref, created[created.length - 2]), `changes against the source, ${context}`).toEqual(dockerChanges(frozen[stage - 1], now));
    }
    for (const [i, tree] of frozen.entries()) {
      expect(comparable(await strataTree(engine, T, { kind: 'container', ref: created[i] })), `container ${i} after its fork, ${JSON.stringify(ran)}`).toEqual(comparable(tree));
    }
  } catch (error) {
    if (process.env.STRATA_FORK_DUMP) await writeFile(process.env.STRATA_FORK_DUMP, JSON.stringify(ranSoFar));
    throw error;
  } finally {
    await kernel.close();
    for (const id of created.reverse()) await engine.containers.remove(T, id).catch(() => undefined);
  }
}

/** Stages of a flat list of operations with 'fork' between them (what a failure dumps). */
const stagesOf = (flat: readonly (AbstractOp | 'fork')[]) => {
  const stages: AbstractOp[][] = [[]];
  for (const op of flat)
    if (op === 'fork') stages.push([]);
    else stages[stages.length - 1].push(op);
  return stages;
};

describe('forks against kernel overlayfs (an upper sealed into a lower)', () => {
  // A debugging aid, off unless asked for: STRATA_FUZZ_MINIMIZE=FILE (what STRATA_FORK_DUMP=FILE
  // wrote at a failure) prints the shortest sub-sequence that still disagrees.
  const toMinimize = process.env.STRATA_FUZZ_MINIMIZE;
  if (toMinimize) {
    it(`minimizes the sequence in ${toMinimize}`, { timeout: 1_200_000 }, async () => {
      let current = JSON.parse(await readFile(toMinimize, 'utf8')) as (AbstractOp | 'fork')[];
      const disagrees = (flat: typeof current) =>
        agree(stagesOf(flat)).then(
          () => false,
          () => true,
        );
      expect(await disagrees(current), 'the sequence must disagree to begin with').toBe(true);
      for (let chunk = Math.ceil(current.length / 2); chunk >= 1; chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2)) {
        for (let at = 0; at < current.length; ) {
          const without = [...current.slice(0, at), ...current.slice(at + chunk)];
          if (await disagrees(without)) current = without;
          else at += chunk;
        }
      }
      const why = await agree(stagesOf(current)).then(
        () => '',
        (error: Error) => error.message,
      );
      console.log(`minimal disagreeing sequence: ${JSON.stringify(current)}\n${why.slice(0, 3000)}`);
    });
    return;
  }

  it('a rename and a removal in a sealed layer read as the kernel reads them', () =>
    agree([
      [
        { op: 'rename', from: '/opt/dir', to: '/opt/moved' },
        { op: 'remove', path: '/etc/sub/deep.txt', recursive: false },
      ],
      [
        { op: 'write', path: '/opt/moved/sub1/new', data: 'n' },
        { op: 'append', path: '/etc/hello.txt', data: 'more' },
        { op: 'rename', from: '/opt/moved', to: '/again' },
      ],
      [
        { op: 'remove', path: '/again', recursive: true },
        { op: 'mkdir', path: '/again' },
      ],
    ]));

  it(`${RUNS} random sequences of 3 × ${STAGE_OPS} operations with two forks agree (seed ${SEED})`, { timeout: 120_000 + RUNS * 6_000 }, async () => {
    console.log(`fork differential: seed ${SEED}, ${RUNS} sequences`);
    const stage = fc.array(
      opArbitrary(words).filter((op) => op.op !== 'link'),
      { minLength: STAGE_OPS, maxLength: STAGE_OPS },
    );
    await fc.assert(
      fc.asyncProperty(fc.tuple(stage, stage, stage), (stages) => agree(stages)),
      { numRuns: RUNS, seed: SEED, verbose: 1, endOnFailure: process.env.STRATA_FUZZ_SHRINK === '0' },
    );
  });
});
