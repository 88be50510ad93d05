import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, chown, link, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { diskTree } from '../support/disk-tree.js';
import { localEngine } from '../support/engine.js';
import { comparable, strataTree } from '../support/fs-ops.js';
import { Podman, tool } from '../support/podman.js';

/**
 * Archives as podman, skopeo and umoci write them, never by Strata's own helpers: each loads into
 * Strata with the image ID and layer digests the tool reports, and Strata's merged tree is the
 * one the tool applied (podman's image mount, umoci's unpack). The other way, what Strata saves
 * loads into a fresh podman, and skopeo reads it, with the same image ID and the same tree.
 */
const T = 'real-archives';
const BASE = 'localhost/strata-base:1';
const MULTI = 'localhost/strata-multi:1';

let engine: Engine;
let cleanup: () => Promise<void>;
let podman: Podman;
let work: string;

beforeAll(async () => {
  ({ engine, cleanup } = await localEngine());
  work = await mkdtemp(join(tmpdir(), 'strata-real-'));
  podman = await Podman.start();
  await podman.importTar(await baseRootTar(), BASE);
  await podman.build(await buildContext(), MULTI);
}, 120_000);
afterAll(async () => {
  await podman?.stop();
  await cleanup?.();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A root tree on disk with every kind of entry podman carries, tarred by GNU tar. */
async function baseRootTar(): Promise<string> {
  const root = join(work, 'base-root');
  await mkdir(join(root, 'etc/skel'), { recursive: true });
  await mkdir(join(root, 'bin'));
  await mkdir(join(root, 'srv/empty'), { recursive: true });
  await writeFile(join(root, 'etc/greeting'), 'hello\n');
  await writeFile(join(root, 'etc/skel/.profile'), 'export PS1=$\n');
  await writeFile(join(root, 'bin/busybox'), 'BUSYBOX');
  await chmod(join(root, 'bin/busybox'), 0o4755);
  await link(join(root, 'bin/busybox'), join(root, 'bin/sh'));
  await symlink('../etc/greeting', join(root, 'bin/greeting'));
  await symlink('/nowhere', join(root, 'bin/dangling'));
  await writeFile(join(root, 'srv/ünïcödé name'), 'u');
  await writeFile(join(root, 'srv/owned'), 'o');
  await chown(join(root, 'srv/owned'), 1000, 2000);
  await chmod(join(root, 'srv/owned'), 0o640);
  const tar = join(work, 'base-root.tar');
  execFileSync('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
  return tar;
}

/** FROM the base, two COPY lines: one overwrites a lower file and adds beside it, one adds a tree. */
async function buildContext(): Promise<string> {
  const context = join(work, 'context');
  await mkdir(join(context, 'etc-over'), { recursive: true });
  await mkdir(join(context, 'opt/tool/lib'), { recursive: true });
  await writeFile(join(context, 'etc-over/greeting'), 'hello from the upper layer\n');
  await writeFile(join(context, 'etc-over/added'), 'added');
  await writeFile(join(context, 'opt/tool/lib/x.so'), Buffer.alloc(70_000, 7));
  await writeFile(join(context, 'Containerfile'), `FROM ${BASE}\nCOPY etc-over /etc\nCOPY opt /opt\n`);
  return context;
}

async function load(file: string): Promise<{ id: string; tags: string[] }[]> {
  return engine.images.load(T, createReadStream(file));
}

async function save(refs: readonly string[], file: string): Promise<void> {
  await pipeline(await engine.images.save(T, refs), createWriteStream(file));
}

const strataImageTree = async (id: string) => comparable(await strataTree(engine, T, { kind: 'image', ref: id }));
const podmanImageTree = async (tool: Podman, ref: string) => comparable(await diskTree(await tool.mount(ref)));

/** An OCI layout's first image manifest. */
async function layoutManifest(layout: string): Promise<{ config: { digest: string }; layers: { digest: string; mediaType: string }[] }> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  return JSON.parse(await readFile(join(layout, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
}

/** The image ID an OCI layout names: the digest of its config. */
async function layoutImageId(layout: string): Promise<string> {
  return (await layoutManifest(layout)).config.digest;
}

/** An OCI layout directory as one tar, its members at the top (`index.json`, `blobs/...`), as users pack one. */
function tarLayout(layout: string, file: string, extra: readonly string[] = []): string {
  execFileSync('tar', ['-C', layout, '-cf', file, 'oci-layout', 'index.json', ...extra, 'blobs']);
  return file;
}

describe('archives written by podman, skopeo and umoci load into Strata as the tool sees them', () => {
  it('podman save --format docker-archive: top-level <hex>.tar layers, <id>/layer.tar symlinks, VERSION and json', async () => {
    const file = join(work, 'podman-docker.tar');
    await podman.save([MULTI], 'docker-archive', file);
    const id = await podman.imageId(MULTI);
    expect(await load(file)).toEqual([{ id, tags: [MULTI] }]);
    const image = await engine.images.inspect(T, id);
    expect(image.layers.map((l) => l.diffId)).toEqual(await podman.diffIds(MULTI));
    expect(image.layers).toHaveLength(3);
    expect(await strataImageTree(id)).toEqual(await podmanImageTree(podman, MULTI));
  });

  it('podman save --format oci-archive', async () => {
    const file = join(work, 'podman-oci.tar');
    await podman.save([BASE], 'oci-archive', file);
    const id = await podman.imageId(BASE);
    expect(await load(file)).toEqual([{ id, tags: [BASE] }]);
    expect(await strataImageTree(id)).toEqual(await podmanImageTree(podman, BASE));
  });

  it('podman save -m: two images sharing a layer in one docker-archive', async () => {
    const file = join(work, 'podman-both.tar');
    await podman.save([MULTI, BASE], 'docker-archive', file);
    const loaded = await load(file);
    expect(loaded).toEqual([
      { id: await podman.imageId(MULTI), tags: [MULTI] },
      { id: await podman.imageId(BASE), tags: [BASE] },
    ]);
    const [multi, base] = await Promise.all(loaded.map((image) => engine.images.inspect(T, image.id)));
    expect(multi.layers[0]).toEqual(base.layers[0]);
    expect(base.sharedSize).toBe(base.size);
  });

  it('skopeo copy from an OCI archive to a docker-archive, and to OCI layouts with gzip and zstd layers', async () => {
    const ociArchive = join(work, 'for-skopeo.tar');
    await podman.save([MULTI], 'oci-archive', ociArchive);
    const id = await podman.imageId(MULTI);
    const expected = await podmanImageTree(podman, MULTI);

    const dockerArchive = join(work, 'skopeo-docker.tar');
    await tool('skopeo', ['copy', `oci-archive:${ociArchive}`, `docker-archive:${dockerArchive}:skopeo/multi:docker`]);
    expect(await load(dockerArchive)).toEqual([{ id, tags: ['skopeo/multi:docker'] }]);

    for (const format of ['gzip', 'zstd']) {
      const layout = join(work, `skopeo-${format}`);
      await tool('skopeo', ['copy', '--dest-compress', '--dest-compress-format', format, `oci-archive:${ociArchive}`, `oci:${layout}:skopeo/multi:${format}`]);
      const manifest = await layoutManifest(layout);
      expect(manifest.layers.map((l) => l.mediaType)).toEqual(Array(3).fill(`application/vnd.oci.image.layer.v1.tar+${format}`));
      expect(await load(tarLayout(layout, `${layout}.tar`))).toEqual([{ id, tags: [`skopeo/multi:${format}`] }]);
      expect(await strataImageTree(id)).toEqual(expected);
    }
  });

  it('a Docker 25+ archive: an OCI layout (skopeo) with a manifest.json beside it naming blobs/sha256 members', async () => {
    const ociArchive = join(work, 'for-docker25.tar');
    await podman.save([MULTI], 'oci-archive', ociArchive);
    const layout = join(work, 'docker25');
    await tool('skopeo', ['copy', `oci-archive:${ociArchive}`, `oci:${layout}:1`]);
    // What Docker 25 writes beside the layout; its RepoTags win over the index's bare ref name.
    const manifest = await layoutManifest(layout);
    const blob = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
    await writeFile(join(layout, 'manifest.json'), JSON.stringify([{ Config: blob(manifest.config.digest), RepoTags: [MULTI], Layers: manifest.layers.map((l) => blob(l.digest)) }]));
    expect(await load(tarLayout(layout, `${layout}.tar`, ['manifest.json']))).toEqual([{ id: await podman.imageId(MULTI), tags: [MULTI] }]);
  });

  it("umoci repack: umoci's own whiteouts, unreferenced blobs of earlier revisions left in the layout", async () => {
    const { layout } = await umociImage('umoci-whiteouts', { replaceDirByFile: true });
    const id = await layoutImageId(layout);
    expect(await load(tarLayout(layout, `${layout}.tar`))).toEqual([{ id, tags: ['t:latest'] }]);
    const bundle = join(work, 'umoci-whiteouts-check');
    await tool('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
    expect(await strataImageTree(id)).toEqual(comparable(await diskTree(join(bundle, 'rootfs'))));
  });

  it('podman refuses the umoci layer that writes a whiteout under a path it made a file; Strata applies it as umoci does', async () => {
    // umoci writes `old` (now a file) and then `old/.wh.o`. A whiteout only hides what is below,
    // and the file already hides the lower directory, so the whiteout is a no-op (umoci's unpack
    // agrees); podman's unlinkat under a file fails with ENOTDIR.
    const { layout } = await umociImage('umoci-dir-to-file', { replaceDirByFile: true });
    await expect(podman.load(tarLayout(layout, join(work, 'dir-to-file.tar')))).rejects.toThrow(/not a directory/);
    const id = await layoutImageId(layout);
    await load(join(work, 'dir-to-file.tar'));
    expect((await strataImageTree(id)).find((e) => 'path' in e && e.path === '/old')).toMatchObject({ type: 'file', content: 'now a file' });
  });
});

/**
 * An image made by umoci alone: a first revision with files, a tree, hard links and a symlink;
 * a second that deletes a file and a tree, adds a file and a link to a lower file, and (if
 * asked) replaces a directory by a file. umoci repack computes the whiteouts itself.
 */
async function umociImage(name: string, options: { replaceDirByFile?: boolean } = {}): Promise<{ layout: string }> {
  const layout = join(work, name);
  const bundle = join(work, `${name}-bundle`);
  await tool('umoci', ['init', '--layout', layout]);
  await tool('umoci', ['new', '--image', `${layout}:t`]);
  await tool('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  await mkdir(join(rootfs, 'etc/sub'), { recursive: true });
  await mkdir(join(rootfs, 'old'));
  await mkdir(join(rootfs, 'gone/deep'), { recursive: true });
  await writeFile(join(rootfs, 'etc/a'), 'a');
  await writeFile(join(rootfs, 'etc/b'), 'b');
  await writeFile(join(rootfs, 'etc/sub/s'), 's');
  await writeFile(join(rootfs, 'old/o'), 'o');
  await writeFile(join(rootfs, 'gone/deep/x'), 'x');
  await link(join(rootfs, 'etc/b'), join(rootfs, 'etc/b-link'));
  await symlink('sub/s', join(rootfs, 'etc/s-link'));
  await tool('umoci', ['repack', '--image', `${layout}:t`, bundle]);
  await rm(bundle, { recursive: true });
  await tool('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
  await unlink(join(rootfs, 'etc/a'));
  await rm(join(rootfs, 'gone'), { recursive: true });
  await writeFile(join(rootfs, 'etc/sub/new'), 'new');
  await link(join(rootfs, 'etc/sub/s'), join(rootfs, 'etc/sub/s-link'));
  if (options.replaceDirByFile) {
    await rm(join(rootfs, 'old'), { recursive: true });
    await writeFile(join(rootfs, 'old'), 'now a file');
  }
  await tool('umoci', ['repack', '--image', `${layout}:t`, bundle]);
  return { layout };
}

describe('what Strata saves loads into a fresh podman and into skopeo with the same image ID', () => {
  it('a podman-built image saved by Strata', async () => {
    const file = join(work, 'podman-for-strata.tar');
    await podman.save([MULTI], 'docker-archive', file);
    const [{ id }] = await load(file);
    const saved = join(work, 'strata-saved.tar');
    await save([MULTI], saved);
    const fresh = await Podman.start();
    try {
      await fresh.load(saved);
      expect(await fresh.imageId(MULTI)).toBe(id);
      expect(await fresh.diffIds(MULTI)).toEqual(await podman.diffIds(MULTI));
      expect(await podmanImageTree(fresh, MULTI)).toEqual(await strataImageTree(id));
    } finally {
      await fresh.stop();
    }
  });

  it('an image with umoci whiteouts and hard links: podman applies what Strata saved to the tree Strata serves', async () => {
    const { layout } = await umociImage('umoci-for-podman');
    const id = await layoutImageId(layout);
    await load(tarLayout(layout, `${layout}.tar`));
    await engine.images.tag(T, id, 'localhost/umoci:saved');
    const saved = join(work, 'strata-umoci.tar');
    await save(['localhost/umoci:saved'], saved);
    const fresh = await Podman.start();
    try {
      await fresh.load(saved);
      expect(await fresh.imageId('localhost/umoci:saved')).toBe(id);
      const strata = await strataImageTree(id);
      expect(strata.map((e) => (e as { path: string }).path)).not.toContain('/gone');
      expect(await podmanImageTree(fresh, 'localhost/umoci:saved')).toEqual(strata);
    } finally {
      await fresh.stop();
    }
  });

  it('skopeo copies what Strata saved into an OCI layout whose config digest is the image ID', async () => {
    const file = join(work, 'podman-for-skopeo.tar');
    await podman.save([BASE], 'docker-archive', file);
    const [{ id }] = await load(file);
    const saved = join(work, 'strata-for-skopeo.tar');
    await save([BASE], saved);
    const layout = join(work, 'skopeo-from-strata');
    await tool('skopeo', ['copy', `docker-archive:${saved}`, `oci:${layout}:base`]);
    expect(await layoutImageId(layout)).toBe(id);
  });
});
