import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../shared/errors.js';
import { BLOCK_SIZE } from '../../shared/tar/tar-format.js';
import { readTar, type TarHeader } from '../../shared/tar/tar-reader.js';
import { TarWriter } from '../../shared/tar/tar-writer.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-tar-writer-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Input = { header: TarHeader; body?: Buffer };

const file = (path: string, content: string | Buffer, extra: Partial<TarHeader> = {}): Input => {
  const body = Buffer.isBuffer(content) ? content : Buffer.from(content);
  return { header: { path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1_700_000_000, ...extra }, body };
};
const entry = (path: string, type: TarHeader['type'], extra: Partial<TarHeader> = {}): Input => ({
  header: { path, type, mode: type === 'directory' ? 0o755 : 0o777, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000, ...extra },
});

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Writes the entries while concurrently draining the output, as a real consumer would. */
async function tarOf(inputs: Input[]): Promise<Buffer> {
  const writer = new TarWriter();
  const output = collect(writer.stream);
  for (const { header, body } of inputs) await writer.entry(header, body);
  await writer.finish();
  return output;
}

async function* chunksOf(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readBack(tar: Buffer) {
  const out: { header: TarHeader; content: Buffer; dataOffset: number }[] = [];
  for await (const e of readTar(chunksOf(tar, 4096))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ header: e.header, content: Buffer.concat(parts), dataOffset: e.dataOffset });
  }
  return out;
}

const SPLITTABLE = `${'a'.repeat(120)}/${'b'.repeat(90)}`; // 211 bytes: fits ustar prefix + name
const UNSPLITTABLE = `${'c'.repeat(80)}/${'d'.repeat(150)}.txt`; // last name over 100 bytes: needs pax
const DEEP = Array.from({ length: 12 }, (_, i) => `level-${i}-${'x'.repeat(40)}`).join('/'); // 575 bytes
const LONG_TARGET = `../${'t'.repeat(200)}/target`;

const SAMPLE: Input[] = [
  entry('etc/', 'directory'),
  file('etc/hostname', 'strata\n', { uid: 1000, gid: 1000 }),
  file('etc/empty', ''),
  file('etc/exact-block', Buffer.alloc(BLOCK_SIZE, 0x41)),
  file('etc/random.bin', createHash('sha512').update('x').digest().subarray(0, 33).toString('hex').repeat(3000)),
  entry('tmp/', 'directory', { mode: 0o1777 }),
  file('usr/bin/sudo', '#!/bin/sh\n', { mode: 0o4755 }),
  file('usr/bin/wall', '#!/bin/sh\n', { mode: 0o2755, gid: 5 }),
  entry('usr/link', 'symlink', { linkname: '../etc/hostname' }),
  entry('usr/hard', 'hardlink', { linkname: 'etc/hostname' }),
  entry('usr/long-link', 'symlink', { linkname: LONG_TARGET }),
  entry(`${'e'.repeat(100)}`, 'directory'), // exactly 100 bytes: still plain ustar
  file(`${SPLITTABLE}`, 'split'),
  file(UNSPLITTABLE, 'pax path'),
  file(DEEP, 'deep'),
  file('unicode/café ☕ 日本.txt', 'utf-8'),
  file('ids/big', 'big ids', { uid: 3_000_000, gid: 4_294_967_294 }),
  file('times/old', 'before 1970', { mtime: -86_400 }),
  file('times/zero', 'epoch', { mtime: 0 }),
];

describe('TarWriter round trip through readTar', () => {
  it('reads back every entry exactly as written', async () => {
    const entries = await readBack(await tarOf(SAMPLE));
    expect(entries.map((e) => e.header)).toEqual(SAMPLE.map((i) => i.header));
    for (const [i, e] of entries.entries()) expect(e.content.equals(SAMPLE[i]!.body ?? Buffer.alloc(0))).toBe(true);
  });

  it('lets a file be sliced out of the output by dataOffset', async () => {
    const tar = await tarOf(SAMPLE);
    for (const e of await readBack(tar)) {
      expect(tar.subarray(e.dataOffset, e.dataOffset + e.header.size).equals(e.content)).toBe(true);
    }
  });

  it('uses pax only where ustar cannot hold the value', async () => {
    const tar = await tarOf([file(SPLITTABLE, 'x'), file('plain', 'x')]);
    expect(tar.length).toBe((2 * 2 + 2) * BLOCK_SIZE); // two entries of header + one data block, then the end marker
    expect(tar.includes('PaxHeaders')).toBe(false);
    const paxed = await tarOf([file(UNSPLITTABLE, 'x')]);
    expect(paxed.includes('PaxHeaders.0/')).toBe(true);
  });

  it('accepts bodies as a Buffer or as chunks, and writes files of any size by streaming', async () => {
    const content = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    const writer = new TarWriter();
    const output = collect(writer.stream);
    await writer.entry(file('chunks', content).header, chunksOf(content, 100_000));
    await writer.entry(file('buffer', content).header, content);
    await writer.finish();
    const [a, b] = await readBack(await output);
    expect(a!.content.equals(content)).toBe(true);
    expect(b!.content.equals(content)).toBe(true);
  });
});

describe('TarWriter output is deterministic', () => {
  it('gives byte-identical output, hence the same DiffID, for the same entries', async () => {
    const sha = async () =>
      createHash('sha256')
        .update(await tarOf(SAMPLE))
        .digest('hex');
    expect(await sha()).toBe(await sha());
  });

  it('does not write uname or gname, so host user names cannot leak into the DiffID', async () => {
    const withNames = SAMPLE.map((i) => ({ ...i, header: { ...i.header, uname: 'alice', gname: 'staff' } }));
    const plain = await tarOf(SAMPLE);
    expect((await tarOf(withNames)).equals(plain)).toBe(true);
    expect(plain.includes('alice')).toBe(false);
  });

  it('depends on every header field it writes (mtime changes the hash)', async () => {
    const a = await tarOf([file('f', 'x', { mtime: 1 })]);
    const b = await tarOf([file('f', 'x', { mtime: 2 })]);
    expect(a.equals(b)).toBe(false);
  });
});

describe('TarWriter output read by GNU tar', () => {
  it('lists the same names with tar -t', async () => {
    const tar = await tarOf(SAMPLE);
    const listing = execFileSync('tar', ['-t'], { input: tar }).toString().split('\n').filter(Boolean);
    expect(listing).toEqual(SAMPLE.map((i) => i.header.path));
  });

  it('shows modes, numeric owners and link targets with tar -tv', async () => {
    const tar = await tarOf(SAMPLE);
    const lines = execFileSync('tar', ['-tv', '--numeric-owner', '--full-time'], { input: tar, env: { TZ: 'UTC' }, stdio: 'pipe' })
      .toString()
      .split('\n');
    expect(lines.find((l) => l.endsWith('usr/bin/sudo'))).toMatch(/^-rwsr-xr-x 0\/0 +10 2023-11-14 22:13:20 usr\/bin\/sudo$/);
    expect(lines.find((l) => l.endsWith('ids/big'))).toMatch(/^-rw-r--r-- 3000000\/4294967294 /);
    expect(lines.find((l) => l.includes('usr/long-link'))).toContain(`usr/long-link -> ${LONG_TARGET}`);
    expect(lines.find((l) => l.includes('usr/hard'))).toContain('usr/hard link to etc/hostname');
    expect(lines.find((l) => l.endsWith('times/old'))).toContain('1969-12-31 00:00:00');
  });

  it('extracts with tar -x to the same files, contents, links and times', async () => {
    const tar = await tarOf(SAMPLE);
    const out = join(dir, 'extract');
    mkdirSync(out);
    execFileSync('tar', ['-x', '--same-owner', '--same-permissions', '-C', out], { input: tar, stdio: 'pipe' });
    for (const { header, body } of SAMPLE) {
      const path = join(out, header.path);
      const stat = lstatSync(path);
      if (header.type === 'file') {
        expect(readFileSync(path).equals(body!)).toBe(true);
        expect(stat.mode & 0o7777).toBe(header.mode);
        expect(stat.mtimeMs / 1000).toBe(header.mtime);
      }
      if (header.type === 'directory') expect(stat.isDirectory()).toBe(true);
      if (header.type === 'symlink') expect(readlinkSync(path)).toBe(header.linkname);
      if (header.type === 'hardlink') expect(stat.ino).toBe(lstatSync(join(out, header.linkname!)).ino);
    }
    expect(lstatSync(join(out, 'tmp')).mode & 0o7777).toBe(0o1777);
  });

  it('writes archives GNU tar produces entries for (tar -c | readTar | TarWriter | tar -t agrees)', async () => {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'a/b'), { recursive: true });
    writeFileSync(join(src, 'a/b/file'), 'content');
    const original = execFileSync('tar', ['-c', '--format=posix', '--sort=name', '-C', src, '.']);
    const writer = new TarWriter();
    const output = collect(writer.stream);
    for await (const e of readTar(chunksOf(original, 1000))) await writer.entry(e.header, e.body);
    await writer.finish();
    const relisted = execFileSync('tar', ['-t'], { input: await output }).toString();
    expect(relisted).toBe(execFileSync('tar', ['-t'], { input: original }).toString());
  });
});

describe('TarWriter sizes of 8 GiB and more', () => {
  it('records the size in a pax header, which GNU tar and readTar understand', async () => {
    const size = 8 * 1024 ** 3 + 5;
    const writer = new TarWriter();
    async function* zeros(): AsyncGenerator<Buffer> {
      const chunk = Buffer.alloc(1024 * 1024);
      for (let sent = 0; sent < size; sent += chunk.length) yield chunk.subarray(0, Math.min(chunk.length, size - sent));
    }
    const writing = writer.entry({ ...file('huge', '').header, size }, zeros());
    let seen: TarHeader | undefined;
    for await (const e of readTar(writer.stream)) {
      seen = e.header;
      break; // no need to move 8 GiB: the header is what matters
    }
    expect(seen).toMatchObject({ path: 'huge', size });
    await expect(writing).rejects.toThrow(); // the reader stopped, destroying the stream

    const head = new TarWriter();
    head.stream.on('error', () => {}); // aborted on purpose below
    const firstBlocks = new Promise<Buffer>((resolve) => head.stream.once('data', (chunk: Buffer) => resolve(chunk)));
    void head.entry({ ...file('huge', '').header, size }, zeros()).catch(() => {});
    const headerBytes = await firstBlocks;
    head.abort(new Error('enough'));
    expect(headerBytes.toString('latin1')).toContain(`size=${size}\n`);
  });
});

describe('TarWriter backpressure and misuse', () => {
  it('does not run ahead of a consumer that is not reading', async () => {
    const writer = new TarWriter({ highWaterMark: 64 * 1024 });
    const content = Buffer.alloc(10 * 1024 * 1024, 1);
    let done = false;
    const writing = writer.entry(file('big', content).header, chunksOf(content, 16 * 1024)).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    expect(writer.stream.readableLength).toBeLessThanOrEqual(64 * 1024 + 16 * 1024);
    const output = collect(writer.stream);
    await writing;
    await writer.finish();
    expect((await output).length).toBe(BLOCK_SIZE + content.length + 2 * BLOCK_SIZE);
  });

  it('refuses a body that is shorter or longer than the header says, failing the stream', async () => {
    for (const body of [Buffer.from('four'), Buffer.from('six!!!')]) {
      const writer = new TarWriter();
      const output = collect(writer.stream);
      await expect(writer.entry({ ...file('f', 'x').header, size: 5 }, chunksOf(body, 2))).rejects.toThrow(/header says 5/);
      await expect(output).rejects.toThrow(/header says 5/);
    }
  });

  it('refuses headers it cannot write, leaving the stream usable', async () => {
    const writer = new TarWriter();
    const output = collect(writer.stream);
    await expect(writer.entry(entry('dev/null', 'other').header)).rejects.toThrow(InvalidInputError);
    await expect(writer.entry(file('bad\0name', 'x').header, Buffer.from('x'))).rejects.toThrow(/NUL/);
    await expect(writer.entry(entry('dangling', 'symlink').header)).rejects.toThrow(/no target/);
    await expect(writer.entry({ ...file('f', 'x').header, uid: -1 }, Buffer.from('x'))).rejects.toThrow(/uid/);
    await expect(writer.entry({ ...entry('d/', 'directory').header }, Buffer.from('data'))).rejects.toThrow(/cannot have a body/);
    await writer.entry(file('ok', 'fine').header, Buffer.from('fine'));
    await writer.finish();
    expect((await readBack(await output)).map((e) => e.header.path)).toEqual(['ok']);
  });

  it('rejects writes after finish', async () => {
    const writer = new TarWriter();
    void collect(writer.stream);
    await writer.finish();
    await expect(writer.entry(file('late', 'x').header, Buffer.from('x'))).rejects.toThrow(/finished/);
  });
});
