import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { diskTree } from '../support/disk-tree.js';
import { localEngine, loadImage } from '../support/engine.js';
import { comparable, strataTree, type TreeEntry } from '../support/fs-ops.js';
import { tarOf, type LayerEntry } from '../support/images.js';

/**
 * Every image here is applied by umoci (the OCI reference unpacker) and loaded into Strata;
 * the two merged trees must be the same, hard-link groups and mtimes included.
 */
const T = 'umoci';
let engine: Engine;
let cleanup: () => Promise<void>;
let work: string;

beforeAll(async () => {
  ({ engine, cleanup } = await localEngine());
  work = await mkdtemp(join(tmpdir(), 'strata-umoci-'));
});
afterAll(async () => {
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

const manyLayers: LayerEntry[][] = Array.from({ length: 127 }, (_, i) => [
  { path: `f${i}`, content: `layer ${i}` },
  { path: 'common', content: `written by ${i}`, mtime: 1_700_000_000 + i },
  ...(i > 0 && i % 5 === 0 ? [{ path: `.wh.f${i - 1}`, content: '' }] : []),
  ...(i % 7 === 0
    ? [
        { path: 'dir/', dir: true, mode: 0o700 + (i % 8) * 0o10 },
        { path: `dir/d${i}`, content: 'd' },
      ]
    : []),
  ...(i % 11 === 0 ? [{ path: 'dir/.wh..wh..opq', content: '' }] : []),
]);

const images: Record<string, LayerEntry[][]> = {
  'whiteouts of files and directories': [
    [
      { path: 'etc/', dir: true },
      { path: 'etc/a', content: 'a' },
      { path: 'etc/b', content: 'b' },
      { path: 'bin/sh', content: 'sh', mode: 0o755 },
      { path: 'opt/tree/deep/x', content: 'x' },
    ],
    [
      { path: 'etc/.wh.a', content: '' },
      { path: 'bin/.wh.sh', content: '' },
      { path: 'opt/.wh.tree', content: '' },
    ],
  ],
  'an opaque directory hides only what is below it': [
    [
      { path: 'data/x', content: 'x' },
      { path: 'data/sub/y', content: 'y' },
      { path: 'keep/z', content: 'z' },
    ],
    [
      { path: 'data/', dir: true, mode: 0o750 },
      { path: 'data/.wh..wh..opq', content: '' },
      { path: 'data/new', content: 'n' },
    ],
  ],
  'a directory replaced by a file and back': [
    [{ path: 'p/q/file', content: 'old' }],
    [
      { path: '.wh.p', content: '' },
      { path: 'p', content: 'now a file', mode: 0o600 },
    ],
    [
      { path: '.wh.p', content: '' },
      { path: 'p/', dir: true, mode: 0o711 },
      { path: 'p/r', content: 'dir again' },
    ],
  ],
  'a file replaced by a directory without a whiteout': [
    [{ path: 'x', content: 'file' }],
    [
      { path: 'x/', dir: true },
      { path: 'x/inside', content: 'i' },
    ],
  ],
  'symlink loops and escapes are kept as written': [
    [
      { path: 'etc/passwd', content: 'root' },
      { path: 'loop', symlink: 'loop' },
      { path: 'a', symlink: 'b' },
      { path: 'b', symlink: 'a' },
      { path: 'escape', symlink: '../../../../etc/passwd' },
      { path: 'abs', symlink: '/etc' },
      { path: 'dangling', symlink: '/nowhere' },
    ],
    [{ path: 'loop', symlink: 'elsewhere' }],
  ],
  'hard links within a layer and across layers': [
    [
      { path: 'bin/busybox', content: 'BUSYBOX', mode: 0o755 },
      { path: 'bin/sh', hardlink: 'bin/busybox' },
      { path: 'lib/a', content: 'lower' },
    ],
    [
      { path: 'bin/ls', hardlink: 'bin/busybox' },
      { path: 'lib/b', content: 'upper' },
      { path: 'lib/c', hardlink: 'lib/b' },
      { path: 'lib/d', hardlink: 'lib/a' },
    ],
  ],
  'owners, modes and times of every kind of entry': [
    [
      { path: 'srv/', dir: true, mode: 0o1777, mtime: 1_600_000_000 },
      { path: 'srv/owned', content: 'o', uid: 1000, gid: 2000, mode: 0o640, mtime: 1_500_000_000 },
      { path: 'srv/setuid', content: 's', mode: 0o4755 },
      { path: 'srv/name with spaces and ünïcödé', content: 'u' },
      { path: 'srv/...', content: 'dots' },
    ],
  ],
  '127 layers, each changing a shared file, some deleting, some making a directory opaque': manyLayers,
};

/** umoci's unpack of the layers, walked like the kernel oracle walks its mount. */
async function umociTree(name: string, layers: readonly (readonly LayerEntry[])[]): Promise<TreeEntry[]> {
  const dir = join(work, name.replace(/[^a-z0-9]+/gi, '-'));
  const layout = join(dir, 'layout');
  execFileSync('umoci', ['init', '--layout', layout]);
  execFileSync('umoci', ['new', '--image', `${layout}:t`]);
  for (const [i, layer] of layers.entries()) {
    const tar = join(dir, `layer-${i}.tar`);
    await writeFile(tar, await tarOf(layer));
    execFileSync('umoci', ['raw', 'add-layer', '--image', `${layout}:t`, tar]);
  }
  execFileSync('umoci', ['unpack', '--image', `${layout}:t`, join(dir, 'bundle')]);
  return diskTree(join(dir, 'bundle', 'rootfs'));
}

const withTimes = (entries: readonly TreeEntry[]) => comparable(entries).map((e, i) => ({ ...e, mtimeMs: entries[i].type === 'dir' ? undefined : entries[i].mtimeMs }));

describe('Strata against umoci unpack', () => {
  for (const [name, layers] of Object.entries(images)) {
    it(name, async () => {
      const id = await loadImage(engine, T, layers);
      const strata = await strataTree(engine, T, { kind: 'image', ref: id });
      expect(withTimes(strata)).toEqual(withTimes(await umociTree(name, layers)));
    });
  }
});
