import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { readTar } from '../../shared/tar/tar-reader.js';
import { loadImage, localEngine, text } from '../support/engine.js';

const T = 'acme';
let engine: Engine;
let cleanup: () => Promise<void>;
let imageId: string;

const base = [
  [
    { path: 'etc/hosts', content: 'hosts' },
    { path: 'etc/passwd', content: 'passwd' },
    { path: 'bin/sh', content: 'sh' },
    { path: 'usr/bin/env', content: 'env' },
    { path: 'd/sub/x', content: 'x' },
    { path: 'f/y', content: 'y' },
  ],
];

beforeEach(async () => {
  ({ engine, cleanup } = await localEngine());
  imageId = await loadImage(engine, T, base, ['base:1']);
});
afterEach(async () => cleanup());

const container = async (name?: string, mounts?: { target: string; volume?: string; readOnly?: boolean }[]) => {
  const created = await engine.containers.create(T, { image: 'base:1', name, mounts });
  return { kind: 'container' as const, ref: created.id };
};
const write = (c: { kind: 'container'; ref: string }, path: string, content: string) => engine.files.writeFile(T, c, path, Buffer.from(content));

async function tarNames(stream: Readable): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of readTar(stream)) out[e.header.path] = e.header.type === 'file' ? await text(e.body) : e.header.type;
  return out;
}

describe('changes (docker diff)', () => {
  it('mkdir /foo; echo xyzzy > /foo/bar gives exactly [/foo A, /foo/bar A]', async () => {
    const c = await container();
    await engine.files.mkdir(T, c, '/foo');
    await write(c, '/foo/bar', 'xyzzy\n');
    expect(await engine.changes(T, c.ref)).toEqual([
      { path: '/foo', kind: 1 },
      { path: '/foo/bar', kind: 1 },
    ]);
  });

  it('parents of changed paths are C; a deleted directory is one D; a directory replaced by a file is C; a new symlink is A', async () => {
    const c = await container();
    await write(c, '/etc/hosts', 'new');
    await engine.files.remove(T, c, '/d', { recursive: true });
    await engine.files.remove(T, c, '/f', { recursive: true });
    await write(c, '/f', 'file now');
    await engine.files.symlink(T, c, '/s', '/etc/hosts');
    expect(await engine.changes(T, c.ref)).toEqual([
      { path: '/d', kind: 2 },
      { path: '/etc', kind: 0 },
      { path: '/etc/hosts', kind: 0 },
      { path: '/f', kind: 0 },
      { path: '/s', kind: 1 },
    ]);
  });
});

describe('sizes', () => {
  it('after writing a 2-byte file, size grows by exactly 2 and virtual size is image + size', async () => {
    const c = await container();
    const before = await engine.containers.inspect(T, c.ref);
    await write(c, '/two', 'hi');
    const after = await engine.containers.inspect(T, c.ref);
    expect(after.size! - before.size!).toBe(2);
    const image = await engine.images.inspect(T, imageId);
    expect(after.virtualSize).toBe(image.size + after.size!);
    await write(c, '/two', 'hello');
    expect((await engine.containers.inspect(T, c.ref)).size).toBe(5);
    await engine.files.remove(T, c, '/two');
    expect((await engine.containers.inspect(T, c.ref)).size).toBe(0);
  });

  it('listing with sizes reports each container', async () => {
    const a = await container('a');
    await write(a, '/x', '1234');
    const list = await engine.containers.list(T, { size: true });
    expect(list.find((x) => x.name === 'a')).toMatchObject({ size: 4 });
  });
});

describe('commit and export', () => {
  it('a file created in a container is visible in a new container of the committed image', async () => {
    const c = await container();
    await write(c, '/new.txt', 'committed');
    const { id, tags } = await engine.commit(T, c.ref, { reference: 'snap:1', comment: 'test' });
    expect(tags).toEqual(['snap:1']);
    const next = await engine.containers.create(T, { image: 'snap:1' });
    expect(await text((await engine.files.read(T, { kind: 'container', ref: next.id }, '/new.txt')).body)).toBe('committed');
    const inspected = await engine.images.inspect(T, id);
    expect(inspected.layers).toHaveLength(2);
    expect(inspected.parent).toBe(imageId);
  });

  it('deleting /etc, /bin/sh and /usr/bin/env and committing gives a layer that removes them', async () => {
    const c = await container();
    await engine.files.remove(T, c, '/etc', { recursive: true });
    await engine.files.remove(T, c, '/bin/sh');
    await engine.files.remove(T, c, '/usr/bin/env');
    const { id } = await engine.commit(T, c.ref, { reference: 'slim:1' });
    const saved = await engine.images.save(T, ['slim:1']);
    const members = await tarNames(saved);
    const top = (await engine.images.inspect(T, id)).layers[1].diffId.slice(7);
    const layer = await tarNames(Readable.from([Buffer.from(members[`${top}/layer.tar`], 'utf8')]));
    expect(Object.keys(layer)).toEqual(expect.arrayContaining(['.wh.etc', 'bin/.wh.sh', 'usr/bin/.wh.env']));
    const img = { kind: 'image' as const, ref: id };
    await expect(engine.files.stat(T, img, '/etc')).rejects.toMatchObject({ status: 404 });
    await expect(engine.files.stat(T, img, '/bin/sh')).rejects.toMatchObject({ status: 404 });
    expect((await engine.files.list(T, img, '/usr/bin')).entries).toEqual([]);
  });

  it('commits a renamed and a re-created directory as opaque directories with their full contents', async () => {
    const c = await container();
    await engine.files.rename(T, c, '/d', '/moved');
    await engine.files.remove(T, c, '/f', { recursive: true });
    await engine.files.mkdir(T, c, '/f');
    await write(c, '/f/fresh', 'fresh');
    const { id } = await engine.commit(T, c.ref);
    const img = { kind: 'image' as const, ref: id };
    expect(await text((await engine.files.read(T, img, '/moved/sub/x')).body)).toBe('x');
    expect((await engine.files.list(T, img, '/f')).entries.map((e) => e.name)).toEqual(['fresh']);
    await expect(engine.files.stat(T, img, '/d')).rejects.toMatchObject({ status: 404 });
  });

  it('stacks of commits stay readable, and a deep stack is flattened into one index', async () => {
    let ref = 'base:1';
    for (let i = 0; i < 10; i++) {
      const created = await engine.containers.create(T, { image: ref });
      await write({ kind: 'container', ref: created.id }, `/gen${i}`, String(i));
      ref = (await engine.commit(T, created.id, { reference: `gen:${i}` })).id;
    }
    const img = { kind: 'image' as const, ref: 'gen:9' };
    expect((await engine.files.list(T, img, '/')).entries.map((e) => e.name)).toEqual(['bin', 'd', 'etc', 'f', ...Array.from({ length: 10 }, (_, i) => `gen${i}`), 'usr'].sort());
    expect(await text((await engine.files.read(T, img, '/gen0')).body)).toBe('0');
  });

  it('changes never lists the deletion of a path the image did not have', async () => {
    const c = await container();
    await engine.files.rename(T, c, '/etc', '/e2');
    await engine.files.remove(T, c, '/e2/hosts');
    const changes = await engine.changes(T, c.ref);
    expect(changes).not.toContainEqual({ path: '/e2/hosts', kind: 2 });
    expect(changes).toEqual([
      { path: '/e2', kind: 1 },
      { path: '/e2/passwd', kind: 1 },
      { path: '/etc', kind: 2 },
    ]);
  });

  it('changes lists what a directory renamed over an image path hides', async () => {
    const c = await container();
    await engine.files.remove(T, c, '/bin/sh');
    await engine.files.rename(T, c, '/f', '/bin');
    const changes = await engine.changes(T, c.ref);
    expect(changes).toContainEqual({ path: '/bin/sh', kind: 2 });
    expect(changes).toContainEqual({ path: '/bin/y', kind: 1 });
    expect(changes).toContainEqual({ path: '/f', kind: 2 });
  });

  it('changes lists what a directory removed and made again lost, a lost directory as one entry', async () => {
    const c = await container();
    await engine.files.remove(T, c, '/d', { recursive: true });
    await engine.files.mkdir(T, c, '/d');
    await write(c, '/d/new', 'n');
    expect(await engine.changes(T, c.ref)).toEqual([
      { path: '/d', kind: 0 },
      { path: '/d/new', kind: 1 },
      { path: '/d/sub', kind: 2 },
    ]);
  });

  it('a refused rmdir leaves no trace in the tree, changes, sizes or a commit', async () => {
    const c = await container();
    const before = await engine.containers.inspect(T, c.ref);
    await expect(engine.files.remove(T, c, '/d/sub')).rejects.toMatchObject({ status: 409, code: 'ENOTEMPTY' });
    expect(await engine.changes(T, c.ref)).toEqual([]);
    expect((await engine.containers.inspect(T, c.ref)).size).toBe(before.size);
    const { id } = await engine.commit(T, c.ref);
    expect(await tarNames(await engine.images.save(T, [id]))).toBeDefined();
  });

  it('export never holds a whiteout or opaque marker: a renamed directory and one made again are plain directories', async () => {
    const c = await container();
    await engine.files.rename(T, c, '/bin', '/b2');
    await engine.files.remove(T, c, '/d', { recursive: true });
    await engine.files.mkdir(T, c, '/d');
    await engine.files.remove(T, c, '/etc/passwd');
    const names = await tarNames(await engine.export(T, c.ref));
    expect(Object.keys(names).filter((n) => n.split('/').some((part) => part.startsWith('.wh.')))).toEqual([]);
    expect(names['b2/sh']).toBe('sh');
    expect(names['d/']).toBe('directory');
    expect(Object.keys(names).filter((n) => n.startsWith('d/'))).toEqual(['d/']);
    // A container of an image committed from it sees no marker as a file either.
    const { id } = await engine.commit(T, c.ref);
    const again = await engine.containers.create(T, { image: id });
    expect((await engine.files.list(T, { kind: 'container', ref: again.id }, '/b2')).entries.map((e) => e.name)).toEqual(['sh']);
    expect((await engine.files.list(T, { kind: 'container', ref: again.id }, '/d')).entries).toEqual([]);
    expect(Object.keys(await tarNames(await engine.export(T, again.id))).filter((n) => n.includes('.wh.'))).toEqual([]);
  });

  it('export writes the merged tree without volume contents', async () => {
    const c = await container(undefined, [{ target: '/data', volume: 'v1' }]);
    await write(c, '/data/in-volume', 'v');
    await write(c, '/etc/hosts', 'changed');
    await engine.files.remove(T, c, '/etc/passwd');
    const names = await tarNames(await engine.export(T, c.ref));
    expect(names['etc/hosts']).toBe('changed');
    expect(names['etc/passwd']).toBeUndefined();
    expect(Object.keys(names).some((n) => n.startsWith('data'))).toBe(false);
    expect(await engine.changes(T, c.ref)).toEqual([
      { path: '/etc', kind: 0 },
      { path: '/etc/hosts', kind: 0 },
      { path: '/etc/passwd', kind: 2 },
    ]);
  });
});

describe('volumes', () => {
  it('in use is 409, after the container is removed it can go; missing is 404, or fine with force', async () => {
    const c = await container('user', [{ target: '/data', volume: 'v1' }]);
    await expect(engine.volumes.remove(T, 'v1')).rejects.toMatchObject({ status: 409 });
    await engine.containers.remove(T, c.ref);
    await engine.volumes.remove(T, 'v1');
    await expect(engine.volumes.remove(T, 'v1')).rejects.toMatchObject({ status: 404 });
    await engine.volumes.remove(T, 'v1', { force: true });
  });

  it('outlives its container, and two containers see each other’s writes at once', async () => {
    const a = await container('a', [{ target: '/data', volume: 'shared' }]);
    const b = await container('b', [{ target: '/mnt/data', volume: 'shared', readOnly: true }]);
    await write(a, '/data/note', 'from a');
    expect(await text((await engine.files.read(T, b, '/mnt/data/note')).body)).toBe('from a');
    await expect(write(b, '/mnt/data/note', 'from b')).rejects.toMatchObject({ status: 403 });
    expect((await engine.files.list(T, b, '/mnt')).entries.map((e) => e.name)).toEqual(['data']);
    await engine.containers.remove(T, a.ref, { volumes: true });
    await engine.containers.remove(T, b.ref, { volumes: true });
    expect(await text((await engine.files.read(T, { kind: 'volume', name: 'shared' }, '/note')).body)).toBe('from a');
    expect((await engine.volumes.inspect(T, 'shared')).size).toBe(6);
  });

  it('rm -v removes anonymous volumes, never named ones; prune keeps named volumes unless all', async () => {
    const c = await container('anon', [{ target: '/cache' }, { target: '/named', volume: 'keep' }]);
    const anonymous = (await engine.containers.inspect(T, c.ref)).mounts.find((m) => m.target === '/cache')!.volume;
    await engine.containers.remove(T, c.ref, { volumes: true });
    await expect(engine.volumes.inspect(T, anonymous)).rejects.toMatchObject({ status: 404 });
    expect((await engine.volumes.inspect(T, 'keep')).refCount).toBe(0);
    const other = await container('anon2', [{ target: '/cache' }]);
    await engine.containers.remove(T, other.ref);
    const pruned = await engine.volumes.prune(T);
    expect(pruned.removed).toHaveLength(1);
    expect((await engine.volumes.list(T)).map((v) => v.name)).toEqual(['keep']);
    await engine.volumes.prune(T, { all: true });
    expect(await engine.volumes.list(T)).toEqual([]);
  });

  it('volume files can be used directly, without any container', async () => {
    await engine.volumes.create(T, 'direct');
    const v = { kind: 'volume' as const, name: 'direct' };
    await engine.files.mkdir(T, v, '/dir');
    await engine.files.writeFile(T, v, '/dir/file', Buffer.from('abc'));
    expect((await engine.files.list(T, v, '/dir')).entries.map((e) => e.name)).toEqual(['file']);
    expect((await engine.volumes.inspect(T, 'direct')).size).toBe(3);
  });
});

describe('images in use and removal', () => {
  it('an image used by a container cannot be removed unless forced; forced removal only untags it', async () => {
    const c = await container();
    await expect(engine.images.remove(T, 'base:1')).rejects.toMatchObject({ status: 409 });
    await engine.images.remove(T, 'base:1', { force: true });
    await expect(engine.images.resolve(T, 'base:1')).rejects.toMatchObject({ status: 404 });
    expect(await text((await engine.files.read(T, c, '/etc/hosts')).body)).toBe('hosts');
    await engine.containers.remove(T, c.ref);
    await engine.images.remove(T, imageId);
    expect(await engine.images.list(T)).toEqual([]);
  });

  it('a removed container is gone, its name is free again and the sweep reclaims its objects', async () => {
    const c = await container('gone');
    await write(c, '/file', 'data');
    await engine.containers.remove(T, c.ref);
    await expect(engine.files.read(T, c, '/file')).rejects.toMatchObject({ status: 404 });
    await expect(engine.containers.inspect(T, 'gone')).rejects.toMatchObject({ status: 404 });
    await container('gone');
    const report = await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(report.namespaces).toBe(1);
    expect(report.blobs).toBeGreaterThanOrEqual(1);
  });

  it('the sweep removes layers no image uses and keeps those in use', async () => {
    await loadImage(engine, T, [[{ path: 'only', content: 'unique layer' }]], ['tmp:1']);
    await engine.images.remove(T, 'tmp:1');
    const report = await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(report.layers).toBe(1);
    expect(report.chains).toBe(1);
    const c = await container();
    expect(await text((await engine.files.read(T, c, '/etc/hosts')).body)).toBe('hosts');
  });
});
