import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { DockerDaemon } from '../support/docker-daemon.js';
import { localEngine, loadImage } from '../support/engine.js';
import { applyInTurn, comparable, KnownPaths, opArbitrary, strataTree, type AbstractOp, type Change, type FsOp, type TreeEntry } from '../support/fs-ops.js';
import { base, top, words } from '../support/fuzz-image.js';
import { KernelOracle } from '../support/kernel-oracle.js';
import type { DirEntry } from '../support/layer-dirs.js';
import { writeLayer } from '../support/layer-dirs.js';

/**
 * The same random sequences as the overlay test, on a Strata container and on a container of a
 * real Docker daemon (vfs driver: the container's layer is a directory, and `docker diff` is
 * Docker's own naive diff against the image). Compared per operation, then `docker diff` as the
 * daemon prints it, then `docker export` as the daemon writes it (unpacked by GNU tar on both
 * sides). A tenth of STRATA_FUZZ_RUNS sequences, at least 40; the same seed rule.
 */
const RUNS = Math.max(40, Math.ceil(Number(process.env.STRATA_FUZZ_RUNS ?? 200) / 10));
const SEED = Number(process.env.STRATA_FUZZ_SEED ?? Math.floor(Date.now() / 86_400_000));
const OPS = 60;
const T = 'docker';
const IMAGE = 'strata-fuzz:docker';

/** What Docker's init layer adds to every container; the image has none of these paths. */
const INIT_PATHS = ['/.dockerenv', '/dev', '/proc', '/sys', '/etc'];
const fromInit = (path: string) => INIT_PATHS.some((p) => path === p || path.startsWith(`${p}/`));

/**
 * The fuzz image and vocabulary with `etc` renamed, so that no sequence meets the init layer's
 * /etc, and without the image's hard links: vfs copies the image into each container file by
 * file, so there they would be separate files (the overlay and umoci tests cover them). Links
 * the sequences make are real on both sides.
 */
const conf = (s: string) => s.replace(/(^|\/)etc(?=\/|$)/g, '$1conf');
const renamed = (entries: readonly DirEntry[]): DirEntry[] =>
  entries.filter((e) => !('hardlink' in e)).map((e) => ({ ...e, path: conf(e.path), ...('symlink' in e ? { symlink: conf(e.symlink) } : {}) }));
const vocabulary = { dirs: words.dirs.map(conf), names: words.names.map(conf), targets: words.targets.map(conf) };

let engine: Engine;
let cleanup: () => Promise<void>;
let daemon: DockerDaemon;
let work: string;
let strataImageId: string;
let sequence = 0;

beforeAll(async () => {
  ({ engine, cleanup } = await localEngine());
  work = await mkdtemp(join(tmpdir(), 'strata-docker-'));
  const layers = [await writeLayer(renamed(base), join(work, 'tar-1'), join(work, 'lower-1')), await writeLayer(renamed(top), join(work, 'tar-2'), join(work, 'lower-2'))];
  strataImageId = await loadImage(engine, T, layers, [IMAGE]);
  daemon = await DockerDaemon.start();
  // The image reaches Docker the way a user would move it: Strata's save, then docker load.
  await daemon.run(['load'], await bytes(await engine.images.save(T, [IMAGE])));
}, 120_000);
afterAll(async () => {
  await KernelOracle.shutdown();
  await daemon?.stop();
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

async function bytes(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

/** A tar unpacked by GNU tar and walked by the kernel helper: neither side's own reader. */
async function unpacked(tar: Buffer, name: string): Promise<TreeEntry[]> {
  const dir = join(work, name);
  await mkdir(dir);
  try {
    execFileSync('tar', ['-xpf', '-', '--numeric-owner', '--warning=no-timestamp', '-C', dir], { input: tar, maxBuffer: 64 << 20 });
    const kernel = await KernelOracle.directory(dir);
    try {
      return await kernel.tree();
    } finally {
      await kernel.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const byPath = (a: Change, b: Change) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path));

async function dockerDiff(name: string): Promise<Change[]> {
  const lines = (await daemon.run(['diff', name])).toString().split('\n').filter(Boolean);
  return lines
    .map((line) => ({ kind: line[0] as Change['kind'], path: line.slice(2) }))
    .filter((c) => !fromInit(c.path))
    .sort(byPath);
}

async function strataChanges(id: string): Promise<Change[]> {
  const kinds = ['C', 'A', 'D'] as const;
  return (await engine.changes(T, id)).map((c) => ({ path: c.path, kind: kinds[c.kind] })).sort(byPath);
}

/** Runs one sequence on both sides; throws at the first disagreement, naming the operation. */
async function agree(abstractOps: readonly AbstractOp[]): Promise<void> {
  const name = `seq-${++sequence}`;
  const { id } = await engine.containers.create(T, { image: IMAGE });
  const container = { kind: 'container' as const, ref: id };
  const containerId = (await daemon.run(['create', '--name', name, IMAGE, '/none'])).toString().trim();
  try {
    const known = new KnownPaths((await strataTree(engine, T, container)).map((e) => e.path));
    const kernel = await KernelOracle.directory(await daemon.layerDir(containerId));
    let ran: FsOp[];
    try {
      ran = await applyInTurn(kernel, 'Docker', { engine, tenant: T, tree: container }, known, abstractOps);
    } finally {
      await kernel.close();
    }
    const context = `after ${JSON.stringify(ran)}`;
    expect(await strataChanges(id), `docker diff ${context}`).toEqual(await dockerDiff(name));
    const docker = (await unpacked(await daemon.run(['export', name]), `${name}-docker`)).filter((e) => !fromInit(e.path));
    const strata = await unpacked(await bytes(await engine.export(T, id)), `${name}-strata`);
    expect(comparable(strata), `docker export ${context}`).toEqual(comparable(docker));
  } finally {
    await daemon.run(['rm', name]).catch(() => undefined);
    await engine.containers.remove(T, id).catch(() => undefined);
  }
}

/** The cases the fidelity issue named, as Docker itself answers them. */
const named: Record<string, AbstractOp[]> = {
  'a renamed lower directory exports with no whiteout or opaque marker': [{ op: 'rename', from: '/bin', to: '/b2' }],
  'a lower directory removed and made again exports empty and diffs as Docker does': [
    { op: 'remove', path: '/data', recursive: true },
    { op: 'mkdir', path: '/data' },
  ],
  'a deletion below a renamed directory is not listed at a path the image never had': [
    { op: 'rename', from: '/conf', to: '/e2' },
    { op: 'remove', path: '/e2/hello.txt', recursive: false },
  ],
  'a deletion hidden by a directory renamed over it is still listed': [
    { op: 'remove', path: '/bin/sh', recursive: false },
    { op: 'remove', path: '/bin/ls', recursive: false },
    { op: 'remove', path: '/bin', recursive: false },
    { op: 'rename', from: '/opt/dir', to: '/bin' },
  ],
  'a refused rmdir of a non-empty lower directory leaves no trace': [{ op: 'remove', path: '/opt/dir/sub1', recursive: false }],
  'two names of one file made in the container export as a tar hard link': [
    { op: 'link', existing: '/data/nested/c', path: '/dots/twin' },
    { op: 'append', path: '/dots/twin', data: '+' },
  ],
};

describe('Strata against a real Docker daemon (20.10, vfs)', () => {
  it('an image saved by Strata loads into Docker with the same ID', async () => {
    expect((await daemon.run(['image', 'inspect', '-f', '{{.Id}}', IMAGE])).toString().trim()).toBe(strataImageId);
  });

  it('a new container exports the same tree and diffs empty on both sides', () => agree([]));

  for (const [name, ops] of Object.entries(named)) it(name, () => agree(ops));

  it(`${RUNS} random sequences of ${OPS} operations agree (seed ${SEED})`, { timeout: 120_000 + RUNS * 5_000 }, async () => {
    console.log(`docker differential: seed ${SEED}, ${RUNS} sequences of ${OPS} operations`);
    await fc.assert(
      fc.asyncProperty(fc.array(opArbitrary(vocabulary), { minLength: OPS, maxLength: OPS }), (ops) => agree(ops)),
      { numRuns: RUNS, seed: SEED, verbose: 1, endOnFailure: process.env.STRATA_FUZZ_SHRINK === '0' },
    );
  });
});
