import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { readTar } from '../../shared/tar/tar-reader.js';
import { loadImage, localEngine, text } from '../support/engine.js';

/** Hard links behave as a file system's: one file, several names (overlayfs with index=on). */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let cleanup: () => Promise<void>;
let c: { kind: 'container'; ref: string };

const base = [
  [
    { path: 'etc/', dir: true },
    { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
    { path: 'bin/', dir: true },
    { path: 'bin/busybox', content: 'BUSYBOX', mode: 0o755 },
    { path: 'bin/sh', hardlink: 'bin/busybox' },
    { path: 'bin/ls', hardlink: 'bin/busybox' },
    { path: 'sbin/', dir: true },
    { path: 'sbin/init', hardlink: 'bin/busybox' },
  ],
];

beforeEach(async () => {
  ({ engine, meta, cleanup } = await localEngine());
  await loadImage(engine, T, base, ['base:1']);
  c = { kind: 'container', ref: (await engine.containers.create(T, { image: 'base:1' })).id };
});
afterEach(async () => cleanup());

const read = async (path: string, tree = c) => text((await engine.files.read(T, tree, path)).body);
const write = (path: string, content: string, tree = c) => engine.files.writeFile(T, tree, path, Buffer.from(content));
const stat = (path: string, tree = c) => engine.files.stat(T, tree, path);
const size = async () => (await engine.containers.inspect(T, c.ref)).size;

async function tarEntries(stream: Readable): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of readTar(stream)) {
    out[e.header.path] = e.header.type === 'file' ? await text(e.body) : e.header.type === 'hardlink' ? `link:${e.header.linkname}` : e.header.type;
  }
  return out;
}

describe('hard links made in a container', () => {
  it('two names share one file: a write, a chmod and a truncate through either show through both', async () => {
    const linked = await engine.files.link(T, c, '/etc/hosts', '/hosts2');
    expect(linked).toMatchObject({ nlink: 2 });
    const [a, b] = [await stat('/etc/hosts'), await stat('/hosts2')];
    expect(a.inode).toBeDefined();
    expect(a).toMatchObject({ nlink: 2, inode: b.inode, etag: b.etag });
    await write('/hosts2', 'one file');
    expect(await read('/etc/hosts')).toBe('one file');
    await engine.files.writeRange(T, c, '/etc/hosts', 'end', Buffer.from('!'));
    expect(await read('/hosts2')).toBe('one file!');
    await engine.files.setAttributes(T, c, '/hosts2', { mode: 0o600 });
    expect((await stat('/etc/hosts')).mode).toBe(0o600);
    await engine.files.truncate(T, c, '/etc/hosts', 3);
    expect(await read('/hosts2')).toBe('one');
  });

  it('removing one name leaves the other with the file; removing the last frees its bytes', async () => {
    await write('/f', '12345');
    expect(await size()).toBe(5);
    await engine.files.link(T, c, '/f', '/g');
    expect(await size()).toBe(5);
    await engine.files.remove(T, c, '/f');
    expect(await stat('/g')).toMatchObject({ nlink: 1, size: 5 });
    expect(await read('/g')).toBe('12345');
    await engine.files.remove(T, c, '/g');
    expect(await size()).toBe(0);
    // Its object is now garbage, which the sweep reclaims as it does any removed file's.
    expect((await engine.sweeper.sweep(T, { graceMs: 0 })).blobs).toBe(1);
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('a name renamed keeps its link; a name renamed over another of the same file changes nothing', async () => {
    await engine.files.link(T, c, '/etc/hosts', '/h');
    await engine.files.mkdir(T, c, '/d');
    await engine.files.rename(T, c, '/h', '/d/h');
    await write('/d/h', 'moved');
    expect(await read('/etc/hosts')).toBe('moved');
    await engine.files.rename(T, c, '/d/h', '/etc/hosts');
    expect(await stat('/d/h')).toMatchObject({ nlink: 2 });
    await engine.files.rename(T, c, '/d', '/d2');
    await write('/d2/h', 'dir moved');
    expect(await read('/etc/hosts')).toBe('dir moved');
  });

  it('removing a directory with a name in it leaves the file to its other names', async () => {
    await engine.files.mkdir(T, c, '/d');
    await write('/d/f', 'kept');
    await engine.files.link(T, c, '/d/f', '/outside');
    await engine.files.remove(T, c, '/d', { recursive: true });
    expect(await stat('/outside')).toMatchObject({ nlink: 1 });
    expect(await read('/outside')).toBe('kept');
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('a directory cannot be linked (EPERM); a missing name is 404; an existing target is EEXIST', async () => {
    await expect(engine.files.link(T, c, '/etc', '/e2')).rejects.toMatchObject({ code: 'EPERM', status: 400 });
    await expect(engine.files.link(T, c, '/nope', '/x')).rejects.toMatchObject({ status: 404 });
    await expect(engine.files.link(T, c, '/etc/hosts', '/bin/sh')).rejects.toMatchObject({ code: 'EEXIST', status: 409 });
  });

  it('export and commit write the second name as a tar hard link, and the committed image keeps the link', async () => {
    await write('/f', 'shared');
    await engine.files.link(T, c, '/f', '/g');
    const exported = await tarEntries(await engine.export(T, c.ref));
    expect([exported.f, exported.g]).toEqual(['shared', 'link:f']);
    const { id } = await engine.commit(T, c.ref, { reference: 'linked:1' });
    const again = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: id })).id };
    expect(await stat('/g', again)).toMatchObject({ nlink: 2, size: 6 });
    await write('/f', 'through f', again);
    expect(await read('/g', again)).toBe('through f');
  });

  it('the sweep keeps what only a link points at, and fsck finds nothing wrong', async () => {
    await write('/f', 'first');
    await engine.files.link(T, c, '/f', '/g');
    await write('/g', 'bytes only the inode holds');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await read('/f')).toBe('bytes only the inode holds');
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });
});

describe('hard links of an image', () => {
  it('names that share a file in a layer report nlink and one identity, and export keeps the link', async () => {
    const [sh, ls, busybox] = [await stat('/bin/sh'), await stat('/bin/ls'), await stat('/bin/busybox')];
    expect(sh).toMatchObject({ nlink: 4, inode: busybox.inode });
    expect(ls.inode).toBe(busybox.inode);
    const exported = await tarEntries(await engine.export(T, c.ref));
    expect([exported['bin/busybox'], exported['bin/ls'], exported['bin/sh']]).toEqual(['BUSYBOX', 'link:bin/busybox', 'link:bin/busybox']);
  });

  it('a write through one name is seen through the others, in the container only', async () => {
    await write('/bin/ls', 'patched');
    expect(await read('/bin/sh')).toBe('patched');
    expect(await read('/bin/busybox')).toBe('patched');
    expect(await stat('/bin/sh')).toMatchObject({ nlink: 4 });
    expect(await read('/bin/sh', { kind: 'image', ref: 'base:1' } as never)).toBe('BUSYBOX');
    await engine.files.remove(T, c, '/bin/busybox');
    expect(await stat('/bin/sh')).toMatchObject({ nlink: 3 });
    const changes = (await engine.changes(T, c.ref)).map((ch) => `${'CAD'[ch.kind]} ${ch.path}`);
    expect(changes).toEqual(['C /bin', 'D /bin/busybox', 'C /bin/ls', 'C /bin/sh', 'C /sbin', 'C /sbin/init']);
  });

  it('removing a name without a write leaves the other names reading the image', async () => {
    await engine.files.remove(T, c, '/bin/sh');
    expect(await stat('/bin/ls')).toMatchObject({ nlink: 3 });
    expect(await read('/bin/ls')).toBe('BUSYBOX');
    expect(await stat('/bin/busybox')).toMatchObject({ nlink: 3 });
  });

  it('rm -r of a directory unlinks the names below it: a name elsewhere keeps the file, one name fewer', async () => {
    await engine.files.remove(T, c, '/bin', { recursive: true });
    expect(await stat('/sbin/init')).toMatchObject({ nlink: 1, size: 7 });
    expect(await read('/sbin/init')).toBe('BUSYBOX');
    await engine.files.remove(T, c, '/sbin/init');
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('a name below a renamed directory shows a write made through another name, and keeps it when that name goes', async () => {
    await engine.files.rename(T, c, '/sbin', '/s2');
    await write('/bin/sh', 'patched');
    expect(await read('/s2/init')).toBe('patched');
    await engine.files.remove(T, c, '/bin', { recursive: true });
    expect(await read('/s2/init')).toBe('patched');
    expect(await stat('/s2/init')).toMatchObject({ nlink: 1 });
    const exported = await tarEntries(await engine.export(T, c.ref));
    expect(exported['s2/init']).toBe('patched');
  });

  it('an image with hard links leaves no item behind once it and its container are removed and swept', async () => {
    await write('/bin/sh', 'patched');
    await engine.containers.remove(T, c.ref);
    await engine.images.remove(T, 'base:1');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    const partitions = (meta as unknown as { partitions: Map<string, { items: Map<string, unknown> }> }).partitions;
    // The events of what happened stay until the table's TTL removes them (EVENT_RETENTION_MS).
    expect([...partitions].filter(([, p]) => p.items.size > 0).map(([pk]) => pk)).toEqual([`${T}#events`, 'tenants']);
  });
});
