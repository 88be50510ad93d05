import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { loadImage, localEngine, text } from '../support/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';

const T = 'acme';
let engine: Engine;
let blobs: BlobStore;
let cleanup: () => Promise<void>;
let c: { kind: 'container'; ref: string };

const base = [
  [
    { path: 'etc/', dir: true, mode: 0o755 },
    { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
    { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n' },
    { path: 'd/', dir: true },
    { path: 'd/a', content: 'A' },
    { path: 'd/b', content: 'B' },
    { path: 'd/sub/c', content: 'C' },
    { path: 'big', content: '0123456789' },
    { path: 'abs', symlink: '/etc/hosts' },
    { path: 'climb', symlink: '../../../../etc/passwd' },
    { path: 'loop1', symlink: 'loop2' },
    { path: 'loop2', symlink: 'loop1' },
    { path: 'todir', symlink: 'd' },
  ],
];

beforeEach(async () => {
  ({ engine, blobs, cleanup } = await localEngine());
  await loadImage(engine, T, base, ['base:1']);
  const created = await engine.containers.create(T, { image: 'base:1', name: 'c1' });
  c = { kind: 'container', ref: created.id };
});
afterEach(async () => cleanup());

const read = async (path: string) => text((await engine.files.read(T, c, path)).body);
const ls = async (path: string) => (await engine.files.list(T, c, path)).entries.map((e) => e.name);
const write = (path: string, content: string) => engine.files.writeFile(T, c, path, Buffer.from(content));

describe('lookup and copy-up', () => {
  it('reads resolve down the stack, and the first write copies up: the image stays untouched', async () => {
    expect(await read('/etc/hosts')).toBe('127.0.0.1 localhost\n');
    await write('/etc/hosts', 'changed');
    expect(await read('/etc/hosts')).toBe('changed');
    expect(await text((await engine.files.read(T, { kind: 'image', ref: 'base:1' }, '/etc/hosts')).body)).toBe('127.0.0.1 localhost\n');
    const other = await engine.containers.create(T, { image: 'base:1' });
    expect(await text((await engine.files.read(T, { kind: 'container', ref: other.id }, '/etc/hosts')).body)).toBe('127.0.0.1 localhost\n');
  });

  it('open for write with truncate and write "q": it then reads "q"', async () => {
    await write('/big', 'q');
    expect(await read('/big')).toBe('q');
  });

  it('truncating a lower file to N keeps its first N bytes; growing it pads with zeros', async () => {
    await engine.files.truncate(T, c, '/big', 4);
    expect(await read('/big')).toBe('0123');
    await engine.files.truncate(T, c, '/big', 6);
    expect(await read('/big')).toBe('0123\0\0');
  });

  it('a range write into the middle of a lower file stores only the new bytes', async () => {
    await engine.files.writeRange(T, c, '/big', 3, Buffer.from('xy'));
    expect(await read('/big')).toBe('012xy56789');
    await engine.files.writeRange(T, c, '/big', 'end', Buffer.from('!'));
    expect(await read('/big')).toBe('012xy56789!');
    await engine.files.writeRange(T, c, '/big', 13, Buffer.from('Z'));
    expect(await read('/big')).toBe('012xy56789!\0\0Z');
    const { body } = await engine.files.read(T, c, '/big', { start: 2, end: 6 });
    expect(await text(body)).toBe('2xy5');
  });

  it('chmod, chown and utimes copy no data', async () => {
    const put = blobs.put.bind(blobs);
    let puts = 0;
    blobs.put = async (...args) => {
      puts++;
      return put(...args);
    };
    const stat = await engine.files.setAttributes(T, c, '/etc/passwd', { mode: 0o600, uid: 1000, gid: 1000, mtime: 5000 });
    expect(puts).toBe(0);
    expect(stat).toMatchObject({ mode: 0o600, uid: 1000, gid: 1000, mtime: 5000, size: 26 });
    expect(await read('/etc/passwd')).toBe('root:x:0:0::/root:/bin/sh\n');
  });

  it('copy-up of a file copies its parent directories up first, keeping their attributes', async () => {
    await engine.files.setAttributes(T, c, '/d', { mode: 0o750 });
    await write('/d/sub/c', 'new');
    expect((await engine.files.stat(T, c, '/d')).mode).toBe(0o750);
    expect(await ls('/d/sub')).toEqual(['c']);
  });
});

describe('removal', () => {
  it('unlinking a lower file: a later open is ENOENT, and so is a second unlink', async () => {
    await engine.files.remove(T, c, '/etc/passwd');
    await expect(read('/etc/passwd')).rejects.toMatchObject({ status: 404 });
    await expect(engine.files.remove(T, c, '/etc/passwd')).rejects.toMatchObject({ status: 404 });
    expect(await ls('/etc')).toEqual(['hosts']);
  });

  it('rmdir of a populated lower directory is ENOTEMPTY; after unlinking its files it succeeds', async () => {
    await expect(engine.files.remove(T, c, '/d/sub')).rejects.toMatchObject({ code: 'ENOTEMPTY', status: 409 });
    await engine.files.remove(T, c, '/d/sub/c');
    await engine.files.remove(T, c, '/d/sub');
    expect(await ls('/d')).toEqual(['a', 'b']);
  });

  it('removing a lower directory and creating it again yields an empty directory', async () => {
    await engine.files.remove(T, c, '/d', { recursive: true });
    await expect(ls('/d')).rejects.toMatchObject({ status: 404 });
    await engine.files.mkdir(T, c, '/d');
    expect(await ls('/d')).toEqual([]);
    await write('/d/new', 'n');
    expect(await ls('/d')).toEqual(['new']);
  });

  it('a recursive delete also drops what the container itself wrote below', async () => {
    await write('/d/mine', 'm');
    await engine.files.remove(T, c, '/d', { recursive: true });
    await engine.files.mkdir(T, c, '/d');
    expect(await ls('/d')).toEqual([]);
  });
});

describe('rename', () => {
  it('renames a populated lower directory without EXDEV, and back again', async () => {
    await write('/d/own', 'mine');
    await engine.files.rename(T, c, '/d', '/e');
    await expect(ls('/d')).rejects.toMatchObject({ status: 404 });
    expect(await ls('/e')).toEqual(['a', 'b', 'own', 'sub']);
    expect(await read('/e/sub/c')).toBe('C');
    await engine.files.rename(T, c, '/e', '/d');
    await expect(ls('/e')).rejects.toMatchObject({ status: 404 });
    expect(await read('/d/a')).toBe('A');
    expect(await read('/d/own')).toBe('mine');
  });

  it('renames a file over another file, over itself, and refuses a directory target or its own child', async () => {
    await engine.files.rename(T, c, '/d/a', '/d/b');
    expect(await read('/d/b')).toBe('A');
    expect(await ls('/d')).toEqual(['b', 'sub']);
    await engine.files.rename(T, c, '/d/b', '/d/b');
    expect(await read('/d/b')).toBe('A');
    await expect(engine.files.rename(T, c, '/d/b', '/d/sub')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(engine.files.rename(T, c, '/d', '/d/sub/x')).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('a renamed file keeps its content and copies no data', async () => {
    await engine.files.rename(T, c, '/big', '/moved');
    expect(await read('/moved')).toBe('0123456789');
    await expect(read('/big')).rejects.toMatchObject({ status: 404 });
  });
});

describe('links', () => {
  it('hard-link f to f2: both read the same; a missing source is ENOENT (more in hard-links.test.ts)', async () => {
    await engine.files.link(T, c, '/etc/hosts', '/hosts2');
    expect(await read('/hosts2')).toBe(await read('/etc/hosts'));
    await expect(engine.files.link(T, c, '/nope', '/x')).rejects.toMatchObject({ status: 404 });
  });

  it('symlinks resolve inside the root: absolute targets from the root, .. never above it', async () => {
    expect(await read('/abs')).toBe('127.0.0.1 localhost\n');
    expect(await read('/climb')).toBe('root:x:0:0::/root:/bin/sh\n');
    expect(await ls('/todir')).toEqual(['a', 'b', 'sub']);
    await engine.files.symlink(T, c, '/escape', '../../../../../etc/hosts');
    expect(await read('/escape')).toBe('127.0.0.1 localhost\n');
  });

  it('a symlink loop is a clear error', async () => {
    await expect(read('/loop1')).rejects.toMatchObject({ code: 'ELOOP', status: 400 });
  });

  it('creating a symlink to a lower file is not a copy-up of that file', async () => {
    await engine.files.symlink(T, c, '/l', '/etc/hosts');
    const changes = await engine.changes(T, c.ref);
    expect(changes).toEqual([{ path: '/l', kind: 1 }]);
  });
});

describe('paths', () => {
  it('refuses climbing above the root, NUL, long names and .wh. names', async () => {
    await expect(write('/../x', 'x')).rejects.toMatchObject({ status: 400 });
    await expect(write('/a\0b', 'x')).rejects.toMatchObject({ status: 400 });
    await expect(write('/' + 'n'.repeat(256), 'x')).rejects.toMatchObject({ status: 400 });
    await expect(write('/' + 'a/'.repeat(2100) + 'x', 'x')).rejects.toMatchObject({ status: 400 });
    await expect(write('/d/.wh.a', 'x')).rejects.toMatchObject({ status: 400 });
    expect(await ls('/d')).toEqual(['a', 'b', 'sub']);
  });

  it('writing below a file is ENOTDIR, writing into a missing directory is 404', async () => {
    await expect(write('/big/x', 'x')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(write('/nodir/x', 'x')).rejects.toMatchObject({ status: 404 });
  });
});

describe('preconditions and concurrency', () => {
  it('If-Match and If-None-Match: * guard writes', async () => {
    const stat = await engine.files.stat(T, c, '/etc/hosts');
    await expect(engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('x'), { ifNoneMatch: '*' })).rejects.toMatchObject({ status: 412 });
    await expect(engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('x'), { ifMatch: 'stale' })).rejects.toMatchObject({ status: 412 });
    const next = await engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('x'), { ifMatch: stat.etag });
    expect(next.etag).not.toBe(stat.etag);
    expect(await read('/etc/hosts')).toBe('x');
  });

  it('concurrent appends are not lost', async () => {
    await write('/log', '');
    await Promise.all(Array.from({ length: 8 }, (_, i) => engine.files.writeRange(T, c, '/log', 'end', Buffer.from(String(i)))));
    expect((await read('/log')).split('').sort().join('')).toBe('01234567');
  });
});
