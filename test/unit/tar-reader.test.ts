import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError, TooLargeError } from '../../shared/errors.js';
import { layerEntryPath } from '../../shared/tar/layer-paths.js';
import { BLOCK_SIZE, FIELD, unsignedChecksum } from '../../shared/tar/tar-format.js';
import { readTar, type TarEntry, type TarHeader, type TarLimits } from '../../shared/tar/tar-reader.js';

// ---- helpers ---------------------------------------------------------------------------

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-tar-reader-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Splits a buffer into chunks of `size` bytes, as a network stream might deliver it. */
async function* chunks(buf: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

interface ReadEntry {
  header: TarHeader;
  dataOffset: number;
  content: Buffer;
}

async function readAll(source: AsyncIterable<Buffer> | Readable, limits?: Partial<TarLimits>): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  for await (const entry of readTar(source, limits)) {
    const parts: Buffer[] = [];
    for await (const chunk of entry.body) parts.push(chunk);
    out.push({ header: entry.header, dataOffset: entry.dataOffset, content: Buffer.concat(parts) });
  }
  return out;
}

/** Entries with their content replaced by its hash: comparing megabytes element by element is slow. */
function digests(entries: ReadEntry[]) {
  return entries.map((e) => ({ ...e, content: createHash('sha256').update(e.content).digest('hex') }));
}

async function failure(source: Buffer | AsyncIterable<Buffer>, limits?: Partial<TarLimits>): Promise<Error> {
  try {
    await readAll(Buffer.isBuffer(source) ? chunks(source) : source, limits);
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the archive to be rejected');
}

/** A hand-made header block, for archives no well-behaved tool would write. */
function header(fields: { name: string; typeflag?: string; size?: number; mode?: number; linkname?: string; prefix?: string; magic?: string }): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const put = (f: keyof typeof FIELD, value: string | Buffer) => {
    const [start, len] = FIELD[f];
    (Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8')).copy(block, start, 0, len);
  };
  const octal = (f: keyof typeof FIELD, n: number) => put(f, `${n.toString(8).padStart(FIELD[f][1] - 1, '0')}\0`);
  put('name', fields.name);
  octal('mode', fields.mode ?? 0o644);
  octal('uid', 0);
  octal('gid', 0);
  octal('size', fields.size ?? 0);
  octal('mtime', 1_700_000_000);
  put('typeflag', fields.typeflag ?? '0');
  put('linkname', fields.linkname ?? '');
  put('magic', fields.magic ?? 'ustar\0');
  put('version', '00');
  put('prefix', fields.prefix ?? '');
  put('checksum', `${unsignedChecksum(block).toString(8).padStart(6, '0')}\0 `);
  return block;
}

function padded(data: Buffer): Buffer {
  const pad = (BLOCK_SIZE - (data.length % BLOCK_SIZE)) % BLOCK_SIZE;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

function paxRecords(records: Record<string, string>): Buffer {
  return Buffer.concat(
    Object.entries(records).map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(rest) + 1;
      while (String(len).length + Buffer.byteLength(rest) !== len) len = String(len).length + Buffer.byteLength(rest);
      return Buffer.from(`${len}${rest}`);
    }),
  );
}

const END = Buffer.alloc(2 * BLOCK_SIZE);

function archive(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, END]);
}

function fileEntry(name: string, content: string | Buffer, extra: Parameters<typeof header>[0] = { name }): Buffer {
  const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return Buffer.concat([header({ ...extra, name, size: data.length }), padded(data)]);
}

function paxEntry(records: Record<string, string>): Buffer {
  const data = paxRecords(records);
  return Buffer.concat([header({ name: 'PaxHeaders/x', typeflag: 'x', size: data.length }), padded(data)]);
}

// ---- a tree built with GNU tar --------------------------------------------------------------

const LONG_DIR = `${'d'.repeat(120)}/${'e'.repeat(120)}`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(200)}.txt`;
const LONG_TARGET = `${'t'.repeat(150)}/${'u'.repeat(150)}`;

function buildTree(root: string): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'strata\n');
  writeFileSync(join(root, 'etc/empty'), '');
  writeFileSync(join(root, 'etc/block'), Buffer.alloc(BLOCK_SIZE * 3, 7)); // exactly three blocks: no padding
  writeFileSync(join(root, 'etc/big.bin'), createHash('sha512').update('seed').digest().toString('hex').repeat(20_000));
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  writeFileSync(join(root, 'usr/bin/sudo'), '#!/bin/sh\n');
  chmodSync(join(root, 'usr/bin/sudo'), 0o4755);
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  symlinkSync('../etc/hostname', join(root, 'usr/hostname-link'));
  symlinkSync(LONG_TARGET, join(root, 'usr/long-link'));
  linkSync(join(root, 'etc/hostname'), join(root, 'usr/hardlink'));
  mkdirSync(join(root, LONG_DIR), { recursive: true });
  writeFileSync(join(root, LONG_FILE), 'deep\n');
  writeFileSync(join(root, 'etc/café ☕.txt'), 'unicode\n');
  for (const p of ['etc/hostname', 'etc/empty', 'usr/bin/sudo']) utimesSync(join(root, p), 1_600_000_000, 1_600_000_000);
}

function gnuTar(format: string, root: string, ...extra: string[]): Buffer {
  return execFileSync('tar', ['-c', `--format=${format}`, '--numeric-owner', '--owner=1000', '--group=1001', '--sort=name', ...extra, '-C', root, '.'], { maxBuffer: 64 * 1024 * 1024 });
}

describe('readTar on archives written by GNU tar', () => {
  let root: string;
  beforeAll(() => {
    root = join(dir, 'tree');
    mkdirSync(root);
    buildTree(root);
  });

  for (const format of ['gnu', 'posix', 'ustar'] as const) {
    it(`reads the ${format} format: types, modes, owners, times, links and long names`, async () => {
      const tar = gnuTar(format === 'ustar' ? 'ustar' : format, format === 'ustar' ? join(root, 'etc') : root);
      const entries = await readAll(chunks(tar, 1000));
      const byPath = new Map(entries.map((e) => [layerEntryPath(e.header.path), e]));

      const hostname = byPath.get('/hostname') ?? byPath.get('/etc/hostname')!;
      expect(hostname.header).toMatchObject({ type: 'file', size: 7, mtime: 1_600_000_000, uid: 1000, gid: 1001, mode: 0o644 });
      expect(hostname.content.toString()).toBe('strata\n');
      const big = byPath.get('/big.bin') ?? byPath.get('/etc/big.bin')!;
      expect(big.content.equals(Buffer.from(createHash('sha512').update('seed').digest().toString('hex').repeat(20_000)))).toBe(true);
      expect((byPath.get('/block') ?? byPath.get('/etc/block')!).content.equals(Buffer.alloc(BLOCK_SIZE * 3, 7))).toBe(true);
      expect((byPath.get('/empty') ?? byPath.get('/etc/empty')!).header.size).toBe(0);
      expect((byPath.get('/café ☕.txt') ?? byPath.get('/etc/café ☕.txt')!).content.toString()).toBe('unicode\n');
      if (format === 'ustar') return; // ustar cannot hold the long names, so only etc/ was archived

      expect(byPath.get('/usr/bin/sudo')!.header.mode).toBe(0o4755);
      expect(byPath.get('/tmp')!.header).toMatchObject({ type: 'directory', mode: 0o1777, size: 0 });
      expect(byPath.get('/usr/hostname-link')!.header).toMatchObject({ type: 'symlink', linkname: '../etc/hostname', size: 0 });
      expect(byPath.get('/usr/long-link')!.header).toMatchObject({ type: 'symlink', linkname: LONG_TARGET });
      const hard = [byPath.get('/usr/hardlink')!, byPath.get('/etc/hostname')!].find((e) => e.header.type === 'hardlink')!;
      expect(hard.header.size).toBe(0);
      expect(['./etc/hostname', './usr/hardlink']).toContain(hard.header.linkname);
      expect(byPath.get(`/${LONG_FILE}`)!.content.toString()).toBe('deep\n');
    });
  }

  it('gives offsets from which a file can be sliced straight out of the raw tar (one ranged GET)', async () => {
    const tar = gnuTar('posix', root);
    const entries = await readAll(chunks(tar, 777));
    const files = entries.filter((e) => e.header.type === 'file');
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      expect(tar.subarray(file.dataOffset, file.dataOffset + file.header.size).equals(file.content)).toBe(true);
      expect(file.dataOffset % BLOCK_SIZE).toBe(0);
    }
  });

  it('gives the same entries however the input is chunked, down to single bytes', async () => {
    const tar = gnuTar('posix', root, '--exclude=./etc/big.bin');
    const reference = digests(await readAll(chunks(tar)));
    expect(digests(await readAll(chunks(tar, 1)))).toEqual(reference);
    expect(digests(await readAll(chunks(tar, 513)))).toEqual(reference);
  });

  it('reads from a Readable as well as from an async iterable', async () => {
    const tar = gnuTar('gnu', root);
    const fromStream = await readAll(Readable.from(chunks(tar, 4096)));
    expect(digests(fromStream)).toEqual(digests(await readAll(chunks(tar))));
  });
});

describe('readTar streaming', () => {
  it('skips the bodies a consumer does not read, or reads only partly', async () => {
    const tar = archive(fileEntry('a', 'A'.repeat(5000)), fileEntry('b', 'B'.repeat(3000)), fileEntry('c', 'C'.repeat(700)));
    const seen: string[] = [];
    for await (const entry of readTar(chunks(tar, 100))) {
      if (entry.header.path === 'a') continue; // never touched
      if (entry.header.path === 'b') {
        for await (const chunk of entry.body) {
          expect(chunk.toString()).toMatch(/^B+$/);
          break; // one chunk, then abandon
        }
        seen.push('b');
        continue;
      }
      const parts: Buffer[] = [];
      for await (const chunk of entry.body) parts.push(chunk);
      seen.push(Buffer.concat(parts).toString());
    }
    expect(seen).toEqual(['b', 'C'.repeat(700)]);
  });

  it('passes chunks through instead of buffering an entry, and pulls input only as needed', async () => {
    const size = 50 * 1024 * 1024;
    let pulled = 0;
    async function* source(): AsyncGenerator<Buffer> {
      const head = header({ name: 'big', size });
      pulled += head.length;
      yield head;
      const chunk = Buffer.alloc(64 * 1024, 1);
      for (let sent = 0; sent < size; sent += chunk.length) {
        pulled += chunk.length;
        yield chunk;
      }
      pulled += END.length;
      yield END;
    }
    let largest = 0;
    let total = 0;
    for await (const entry of readTar(source())) {
      expect(pulled).toBeLessThan(1024 * 1024); // the entry is handed over before its data is read
      for await (const chunk of entry.body) {
        largest = Math.max(largest, chunk.length);
        total += chunk.length;
        expect(pulled - total).toBeLessThanOrEqual(64 * 1024 + BLOCK_SIZE); // at most one source chunk ahead
      }
    }
    expect(total).toBe(size);
    expect(largest).toBeLessThanOrEqual(64 * 1024);
  });

  it('refuses to read a body after moving on to the next entry', async () => {
    const tar = archive(fileEntry('a', 'hello'), fileEntry('b', 'world'));
    const entries: TarEntry[] = [];
    for await (const entry of readTar(chunks(tar))) entries.push(entry);
    await expect(async () => {
      for await (const _ of entries[0]!.body);
    }).rejects.toThrow(/after the reader moved past/);
  });

  it('destroys a Readable source when the consumer stops early', async () => {
    const tar = archive(fileEntry('a', 'x'), fileEntry('b', 'y'));
    const stream = Readable.from(chunks(tar, 512));
    for await (const entry of readTar(stream)) {
      expect(entry.header.path).toBe('a');
      break;
    }
    expect(stream.destroyed).toBe(true);
  });

  it('accepts an archive that ends after one zero block, as Docker does', async () => {
    const tar = Buffer.concat([fileEntry('a', 'x'), Buffer.alloc(BLOCK_SIZE)]);
    expect((await readAll(chunks(tar))).map((e) => e.header.path)).toEqual(['a']);
  });

  it('reads and ignores the record padding after the end marker', async () => {
    const tar = Buffer.concat([fileEntry('a', 'x'), Buffer.alloc(10240 - 1024)]);
    expect((await readAll(chunks(tar))).map((e) => e.header.path)).toEqual(['a']);
  });
});

describe('readTar extensions', () => {
  it('applies pax path, linkpath, size, mtime, uid, gid, uname and gname to the next entry only', async () => {
    const longPath = `${'p'.repeat(200)}/${'q'.repeat(200)}/name`;
    const tar = archive(
      paxEntry({ path: longPath, mtime: '1700000123.987654321', uid: '4000000', gid: '70000', uname: 'élodie', gname: 'staff', 'SCHILY.xattr.user.x': 'v' }),
      fileEntry('short', 'data'),
      paxEntry({ linkpath: LONG_TARGET }),
      header({ name: 'link', typeflag: '2', linkname: 'ignored' }),
      fileEntry('plain', ''),
    );
    const [first, link, plain] = await readAll(chunks(tar));
    expect(first!.header).toEqual({
      path: longPath,
      type: 'file',
      mode: 0o644,
      uid: 4_000_000,
      gid: 70_000,
      size: 4,
      mtime: 1_700_000_123,
      uname: 'élodie',
      gname: 'staff',
    });
    expect(link!.header).toMatchObject({ path: 'link', type: 'symlink', linkname: LONG_TARGET });
    expect(plain!.header).toMatchObject({ path: 'plain', uid: 0, mtime: 1_700_000_000 });
  });

  it('uses the pax size for the data that follows', async () => {
    const tar = archive(paxEntry({ size: '600' }), header({ name: 'f', size: 0 }), padded(Buffer.alloc(600, 9)), fileEntry('g', 'ok'));
    const [f, g] = await readAll(chunks(tar));
    expect(f!.content).toEqual(Buffer.alloc(600, 9));
    expect(g!.content.toString()).toBe('ok');
  });

  it('ignores pax global headers', async () => {
    const data = paxRecords({ comment: 'made by hand', path: 'not/this' });
    const tar = archive(header({ name: 'global', typeflag: 'g', size: data.length }), padded(data), fileEntry('real', 'r'));
    expect((await readAll(chunks(tar))).map((e) => e.header.path)).toEqual(['real']);
  });

  it('reads GNU long names and long link targets', async () => {
    const name = `${'n'.repeat(200)}/file`;
    const long = (type: string, text: string) => Buffer.concat([header({ name: '././@LongLink', typeflag: type, size: text.length + 1, magic: 'ustar  \0' }), padded(Buffer.from(`${text}\0`))]);
    const tar = archive(long('L', name), long('K', LONG_TARGET), header({ name: 'short', typeflag: '1', linkname: 'x', magic: 'ustar  \0' }));
    const [entry] = await readAll(chunks(tar));
    expect(entry!.header).toMatchObject({ path: name, type: 'hardlink', linkname: LONG_TARGET });
  });

  it('joins the ustar prefix and name', async () => {
    const tar = archive(fileEntry('file.txt', 'x', { name: 'file.txt', prefix: 'some/dir' }));
    expect((await readAll(chunks(tar)))[0]!.header.path).toBe('some/dir/file.txt');
  });

  it('reports devices, fifos and unknown types as other, skipping any data', async () => {
    const tar = archive(
      header({ name: 'dev/null', typeflag: '3' }),
      header({ name: 'fifo', typeflag: '6' }),
      fileEntry('vendor', 'opaque data', { name: 'vendor', typeflag: 'Z' }),
      fileEntry('after', 'fine'),
    );
    const entries = await readAll(chunks(tar));
    expect(entries.map((e) => [e.header.path, e.header.type])).toEqual([
      ['dev/null', 'other'],
      ['fifo', 'other'],
      ['vendor', 'other'],
      ['after', 'file'],
    ]);
    expect(entries[3]!.content.toString()).toBe('fine');
  });

  it('treats a directory size field as no data, as Go archive/tar does', async () => {
    const tar = archive(header({ name: 'dir/', typeflag: '5', size: 4096 }), fileEntry('dir/f', 'x'));
    const entries = await readAll(chunks(tar));
    expect(entries.map((e) => [e.header.path, e.header.size])).toEqual([
      ['dir/', 0],
      ['dir/f', 1],
    ]);
  });

  it('returns hostile names as stored, for layerEntryPath to reject', async () => {
    const tar = archive(fileEntry('../../etc/passwd', 'root::0:0'), fileEntry('a/../../x', 'x'), fileEntry('/etc/shadow', 's'));
    const names = (await readAll(chunks(tar))).map((e) => e.header.path);
    expect(names).toEqual(['../../etc/passwd', 'a/../../x', '/etc/shadow']);
    expect(() => layerEntryPath(names[0]!)).toThrow(InvalidInputError);
    expect(() => layerEntryPath(names[1]!)).toThrow(InvalidInputError);
    expect(layerEntryPath(names[2]!)).toBe('/etc/shadow');
  });
});

describe('readTar on hostile or broken input', () => {
  const good = () => archive(fileEntry('a', 'A'.repeat(1000)), fileEntry('b', 'bee'));

  it('rejects a header whose checksum does not match, naming its offset', async () => {
    const tar = good();
    tar[1536 + 10] ^= 0x01; // inside the second header (a's header and its two data blocks come first)
    const error = await failure(tar);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toBe('tar header checksum mismatch at offset 1536');
  });

  it('rejects something that is not a tar at all', async () => {
    const error = await failure(Buffer.from(`{"not": "a tar"}${' '.repeat(600)}`));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/checksum mismatch at offset 0/);
  });

  it.each([
    ['in the middle of a body', 1000],
    ['in the middle of a header', 1536 + 100],
    ['at a block boundary, without the end marker', 2048],
    ['before anything', 0],
  ])('rejects an archive truncated %s', async (_, length) => {
    const error = await failure(good().subarray(0, length));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/truncated/);
  });

  it('reports truncation inside a body to the consumer reading it', async () => {
    const tar = good().subarray(0, 800);
    await expect(async () => {
      for await (const entry of readTar(chunks(tar, 100))) for await (const _ of entry.body);
    }).rejects.toThrow(/truncated tar archive: unexpected end of input at offset 800/);
  });

  it('rejects a lone zero block followed by more entries (a hidden-entry trick)', async () => {
    const tar = archive(fileEntry('a', 'x'), Buffer.alloc(BLOCK_SIZE), fileEntry('hidden', 'y'));
    expect((await failure(tar)).message).toMatch(/lone zero block at offset 1024/);
  });

  it('rejects a pax header claiming a huge size for the entry, before reading any of it', async () => {
    const tar = archive(paxEntry({ size: '99999999999999999999999' }), header({ name: 'bomb' }));
    const error = await failure(tar);
    expect(error).toBeInstanceOf(TooLargeError);
    const error2 = await failure(archive(paxEntry({ size: String(2 ** 40) }), header({ name: 'bomb' })), { maxTotalBytes: 2 ** 30 });
    expect(error2).toBeInstanceOf(TooLargeError);
    expect(error2.message).toMatch(/pax size at offset 1024 is over/);
  });

  it('rejects a pax header that is itself huge without buffering it', async () => {
    // Only the header block exists: a reader that tried to buffer the 2 GiB would report truncation.
    const tar = header({ name: 'PaxHeaders/x', typeflag: 'x', size: 2 * 1024 ** 3 });
    const error = await failure(tar);
    expect(error).toBeInstanceOf(TooLargeError);
    expect(error.message).toMatch(/pax header at offset 0 is 2147483648 bytes/);
  });

  it('rejects a GNU long name over the path limit without buffering it', async () => {
    const error = await failure(header({ name: '././@LongLink', typeflag: 'L', size: 1024 ** 3 }));
    expect(error).toBeInstanceOf(TooLargeError);
  });

  it.each([
    ['a record length that overruns the data', Buffer.from('99 path=x\n')],
    ['a record without =', Buffer.from('9 pathx\n\n')],
    ['a non-numeric length', Buffer.from('xx path=x\n')],
    ['a record not ending in newline', Buffer.from('11 path=ab!')],
  ])('rejects a malformed pax header: %s', async (_, data) => {
    const tar = archive(header({ name: 'PaxHeaders/x', typeflag: 'x', size: data.length }), padded(data), fileEntry('f', 'x'));
    const error = await failure(tar);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/invalid pax header at offset 0/);
  });

  it.each([
    ['size', '-5'],
    ['uid', 'root'],
    ['mtime', 'yesterday'],
  ])('rejects a malformed pax %s', async (key, value) => {
    const error = await failure(archive(paxEntry({ [key]: value }), fileEntry('f', 'x')));
    expect(error).toBeInstanceOf(InvalidInputError);
  });

  it('rejects a NUL byte smuggled into a pax path', async () => {
    const error = await failure(archive(paxEntry({ path: 'etc/passwd\0.png' }), fileEntry('f', 'x')));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/NUL byte in pax path/);
  });

  it('rejects names that are not UTF-8 rather than mangling them into collisions', async () => {
    const tar = archive(fileEntry('x', 'x'));
    Buffer.from([0x63, 0x61, 0x66, 0xe9]).copy(tar, 0); // "café" in Latin-1
    tar.write(`${unsignedChecksum(tar.subarray(0, 512)).toString(8).padStart(6, '0')}\0 `, FIELD.checksum[0], 'latin1');
    expect((await failure(tar)).message).toMatch(/not valid UTF-8/);
  });

  it('rejects names over 255 bytes and paths over the limit', async () => {
    const longName = await failure(archive(paxEntry({ path: `dir/${'x'.repeat(256)}` }), fileEntry('f', 'x')));
    expect(longName).toBeInstanceOf(TooLargeError);
    expect(longName.message).toMatch(/over 255 bytes/);
    const longPath = await failure(archive(paxEntry({ path: Array(20).fill('y'.repeat(250)).join('/') }), fileEntry('f', 'x')));
    expect(longPath).toBeInstanceOf(TooLargeError);
    expect(longPath.message).toMatch(/over 4096 bytes/);
  });

  it('enforces the entry and total size limits', async () => {
    const many = archive(...Array.from({ length: 11 }, (_, i) => fileEntry(`f${i}`, 'x')));
    expect(await failure(many, { maxEntries: 10 })).toBeInstanceOf(TooLargeError);
    expect(await readAll(chunks(many), { maxEntries: 11 })).toHaveLength(11);
    const big = archive(fileEntry('big', Buffer.alloc(100_000)));
    const error = await failure(big, { maxTotalBytes: 50_000 });
    expect(error).toBeInstanceOf(TooLargeError);
    const streamed = await failure(Buffer.concat([big, Buffer.alloc(100_000)]), { maxTotalBytes: 150_000 });
    expect(streamed).toBeInstanceOf(TooLargeError); // trailing data counts too
  });

  it('rejects an extended header with no entry after it', async () => {
    expect((await failure(archive(paxEntry({ path: 'x' })))).message).toMatch(/has no entry after it/);
  });

  it('rejects GNU sparse files instead of returning their sparse map as content', async () => {
    const error = await failure(archive(fileEntry('sparse', 'x', { name: 'sparse', typeflag: 'S', magic: 'ustar  \0' })));
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error.message).toMatch(/sparse/);
  });

  it('rejects a numeric field that is not octal', async () => {
    const tar = archive(fileEntry('f', 'x'));
    tar.write('12345678', FIELD.mode[0], 'latin1');
    tar.write(`${unsignedChecksum(tar.subarray(0, 512)).toString(8).padStart(6, '0')}\0 `, FIELD.checksum[0], 'latin1');
    expect((await failure(tar)).message).toMatch(/invalid mode field in tar header at offset 0/);
  });
});
