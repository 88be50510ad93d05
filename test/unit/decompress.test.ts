import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InvalidInputError, TooLargeError } from '../../shared/errors.js';
import { compressionOf, decompressing, type DecompressLimits } from '../../shared/tar/decompress.js';
import { readTar } from '../../shared/tar/tar-reader.js';

// The zstd cases need the zstd CLI (Debian package `zstd`); CI installs it alongside GNU tar.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-decompress-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;

async function* chunks(buf: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function inflate(compressed: Buffer, limits?: Partial<DecompressLimits>, chunkSize?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of decompressing(Readable.from(chunks(compressed, chunkSize)), limits)) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Consumes the output, returning the error it ended with and how many bytes came out first. */
async function failure(compressed: Buffer, limits?: Partial<DecompressLimits>): Promise<{ error: Error; produced: number }> {
  let produced = 0;
  try {
    for await (const chunk of decompressing(Readable.from(chunks(compressed)), limits)) produced += (chunk as Buffer).length;
  } catch (error) {
    return { error: error as Error, produced };
  }
  throw new Error('expected decompression to fail');
}

/** Compressible but not trivially so: text with some randomness, like a real layer. */
function sample(bytes: number): Buffer {
  const words = ['usr', 'lib', 'share', 'locale', 'x86_64-linux-gnu', 'python3', '.so.1', 'README', '\n'];
  const out = Buffer.alloc(bytes);
  let seed = 42;
  for (let i = 0; i < bytes; ) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    i += out.write(seed % 5 === 0 ? seed.toString(36) : words[seed % words.length]!, i);
  }
  return out;
}

const zstd = (input: Buffer, ...args: string[]) => execFileSync('zstd', ['-q', '-c', ...args], { input, maxBuffer: 256 * MiB });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('compressionOf', () => {
  it('recognises gzip, zstd (also behind a skippable frame) and anything else as none', () => {
    expect(compressionOf(Buffer.from([0x1f, 0x8b, 0x08]))).toBe('gzip');
    expect(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04]))).toBe('zstd');
    expect(compressionOf(Buffer.from([0x5e, 0x2a, 0x4d, 0x18]))).toBe('zstd');
    expect(compressionOf(Buffer.from('etc/passwd\0\0\0'))).toBe('none');
    expect(compressionOf(Buffer.from([0x1f]))).toBe('none');
    expect(compressionOf(Buffer.alloc(0))).toBe('none');
  });
});

describe('decompressing plain input', () => {
  it('passes an uncompressed tar through unchanged', async () => {
    const plain = sample(300_000);
    expect((await inflate(plain, undefined, 3)).equals(plain)).toBe(true);
  });

  it('passes empty input through as empty output', async () => {
    expect((await inflate(Buffer.alloc(0))).length).toBe(0);
  });

  it('still applies maxOutputBytes', async () => {
    const { error } = await failure(sample(2 * MiB), { maxOutputBytes: MiB });
    expect(error).toBeInstanceOf(TooLargeError);
  });

  it('names xz and bzip2, which Docker reads but Strata does not, instead of failing as a bad tar', async () => {
    const xz = await failure(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04]));
    expect(xz.error).toBeInstanceOf(InvalidInputError);
    expect(xz.error.message).toMatch(/xz compression is not supported/);
    const bz = await failure(Buffer.from('BZh91AY&SY'));
    expect(bz.error.message).toMatch(/bzip2 compression is not supported/);
  });
});

describe('decompressing gzip', () => {
  it('round-trips gzip from zlib and from the gzip CLI, including multi-member files', async () => {
    const data = sample(5 * MiB);
    expect(sha(await inflate(gzipSync(data)))).toBe(sha(data));
    expect(sha(await inflate(execFileSync('gzip', ['-c'], { input: data, maxBuffer: 64 * MiB })))).toBe(sha(data));
    const twoMembers = Buffer.concat([gzipSync(data.subarray(0, 1000)), gzipSync(data.subarray(1000))]);
    expect(sha(await inflate(twoMembers, undefined, 1000))).toBe(sha(data));
    const small = data.subarray(0, 50_000);
    expect((await inflate(gzipSync(small), undefined, 1)).equals(small)).toBe(true);
  });

  it('rejects a gzip bomb (200 MiB of zeros) by its ratio, early and without producing it all', async () => {
    const gz = createGzip({ level: 9 });
    const compressed = (async () => {
      const parts: Buffer[] = [];
      for await (const c of gz) parts.push(c as Buffer);
      return Buffer.concat(parts);
    })();
    const zeros = Buffer.alloc(MiB);
    for (let i = 0; i < 200; i++) if (!gz.write(zeros)) await new Promise((r) => gz.once('drain', r));
    gz.end();
    const bomb = await compressed;
    expect(bomb.length).toBeLessThan(250_000);

    const { error, produced } = await failure(bomb);
    expect(error).toBeInstanceOf(TooLargeError);
    expect(error.message).toMatch(/ratio is over 1000:1/);
    expect(produced).toBeLessThan(4 * MiB);
  });

  it('lets well-compressing small data through the 1 MiB grace, and high ratios when allowed', async () => {
    expect((await inflate(gzipSync(Buffer.alloc(MiB)))).length).toBe(MiB);
    expect((await inflate(gzipSync(Buffer.alloc(20 * MiB)), { maxRatio: 2000 })).length).toBe(20 * MiB);
  });

  it('enforces maxOutputBytes', async () => {
    const { error, produced } = await failure(gzipSync(sample(10 * MiB)), { maxOutputBytes: 3 * MiB });
    expect(error).toBeInstanceOf(TooLargeError);
    expect(produced).toBeLessThanOrEqual(3 * MiB);
  });

  it('rejects corrupt and truncated gzip with a short InvalidInputError', async () => {
    const good = gzipSync(sample(200_000));
    const corrupt = Buffer.from(good);
    for (let i = 100; i < 200; i++) corrupt[i] = 0xff;
    const bad = await failure(corrupt);
    expect(bad.error).toBeInstanceOf(InvalidInputError);
    expect(bad.error.message).toMatch(/^corrupt gzip stream: .{1,80}$/);

    const cut = await failure(good.subarray(0, good.length - 100));
    expect(cut.error).toBeInstanceOf(InvalidInputError);
    expect(cut.error.message).toBe('corrupt gzip stream: unexpected end of file');

    const badTrailer = Buffer.from(good);
    badTrailer[badTrailer.length - 6] ^= 0xff; // CRC32
    expect((await failure(badTrailer)).error).toBeInstanceOf(InvalidInputError);
  });

  it('passes a failing source error through unchanged', async () => {
    const good = gzipSync(sample(500_000));
    async function* broken(): AsyncGenerator<Buffer> {
      yield good.subarray(0, 10_000);
      throw new Error('connection reset');
    }
    await expect(async () => {
      for await (const _ of decompressing(Readable.from(broken())));
    }).rejects.toThrow('connection reset');
  });

  it('produces output only as it is read, and releases the source when the reader stops', async () => {
    let pulled = 0;
    const compressed = gzipSync(sample(20 * MiB));
    const source = Readable.from(
      (async function* () {
        for await (const c of chunks(compressed, 16 * 1024)) {
          pulled += c.length;
          yield c;
        }
      })(),
    );
    const output = decompressing(source);
    for await (const _ of output) break;
    // Release propagates asynchronously; on a loaded machine it can take longer than a fixed pause.
    await vi.waitFor(() => expect(source.destroyed).toBe(true), { timeout: 5_000, interval: 10 });
    expect(pulled).toBeLessThan(compressed.length / 2);
  });
});

describe('decompressing zstd', () => {
  it('round-trips zstd CLI output: streamed, with a known size, with and without checksums, at high levels', async () => {
    const data = sample(6 * MiB);
    expect(sha(await inflate(zstd(data)))).toBe(sha(data)); // from stdin: no content size, window descriptor
    const path = join(dir, 'small.txt');
    writeFileSync(path, data.subarray(0, 5000));
    const singleSegment = execFileSync('zstd', ['-q', '-c', path]);
    expect(singleSegment[4]! & 0x20).toBe(0x20);
    expect((await inflate(singleSegment)).equals(data.subarray(0, 5000))).toBe(true);
    expect(sha(await inflate(zstd(data, '--no-check')))).toBe(sha(data));
    expect(sha(await inflate(zstd(data, '-19')))).toBe(sha(data));
  });

  it('decodes input delivered one byte at a time', async () => {
    const data = sample(200_000);
    expect((await inflate(zstd(data), undefined, 1)).equals(data)).toBe(true);
  });

  it('decodes several frames and skips skippable frames', async () => {
    const a = sample(300_000);
    const b = Buffer.from('second frame');
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('hello')]);
    const stream = Buffer.concat([skippable, zstd(a), skippable, zstd(b), zstd(Buffer.alloc(0))]);
    expect((await inflate(stream, undefined, 1000)).equals(Buffer.concat([a, b]))).toBe(true);
    // Zero-length pieces at the very end: an empty frame without checksum, an empty skippable frame.
    const emptyEnd = Buffer.concat([zstd(b), zstd(Buffer.alloc(0), '--no-check'), Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0])]);
    for (const size of [1, 3, 1000]) expect((await inflate(emptyEnd, undefined, size)).equals(b)).toBe(true);
    expect((await inflate(zstd(Buffer.alloc(0), '--no-check'))).length).toBe(0);
  });

  it('rejects a zstd bomb (200 MiB of zeros) by its ratio, early', async () => {
    const bomb = execFileSync('sh', ['-c', 'head -c 209715200 /dev/zero | zstd -q -c']);
    expect(bomb.length).toBeLessThan(20_000);
    const { error, produced } = await failure(bomb);
    expect(error).toBeInstanceOf(TooLargeError);
    expect(produced).toBeLessThan(2 * MiB);
  });

  it('rejects a window larger than the limit before allocating it', async () => {
    const long = zstd(sample(100_000), '--long=28'); // 256 MiB window
    const { error } = await failure(long);
    expect(error).toBeInstanceOf(TooLargeError);
    expect(error.message).toMatch(/window of 268435456 bytes/);
    expect((await inflate(long, { maxZstdWindowBytes: 256 * MiB })).length).toBe(100_000);
  });

  it('enforces maxOutputBytes', async () => {
    const { error } = await failure(zstd(sample(4 * MiB)), { maxOutputBytes: MiB });
    expect(error).toBeInstanceOf(TooLargeError);
  });

  it('rejects corrupt and truncated zstd with InvalidInputError', async () => {
    const good = zstd(sample(500_000));
    const cases: [string, Buffer][] = [
      ['truncated', good.subarray(0, good.length - 50)],
      ['cut inside the frame header', good.subarray(0, 5)],
      ['reserved header bit', Buffer.concat([good.subarray(0, 4), Buffer.from([good[4]! | 0x08]), good.subarray(5)])],
      ['garbage after the frame', Buffer.concat([good, Buffer.from('trailing garbage')])],
      ['a dictionary', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x58, 0x07, 0x01, 0x00, 0x00, 0x00])],
    ];
    for (const [what, input] of cases) {
      const { error } = await failure(input);
      expect(error, what).toBeInstanceOf(InvalidInputError);
      expect(error.message, what).toMatch(/zstd/);
    }
    const scrambled = Buffer.from(good);
    for (let i = 2000; i < 2400; i++) scrambled[i] = (i * 7) & 0xff;
    const { error } = await failure(scrambled);
    expect(error).toBeInstanceOf(InvalidInputError);
  });
});

describe('decompressing layers made by GNU tar', () => {
  it('reads the same entries from tar, tar.gz and tar.zst', async () => {
    const root = join(dir, 'layer');
    mkdirSync(join(root, 'usr/share/doc'), { recursive: true });
    writeFileSync(join(root, 'usr/share/doc/README'), sample(100_000));
    writeFileSync(join(root, 'usr/share/doc/empty'), '');
    const listing = async (bytes: Buffer) => {
      const out: string[] = [];
      for await (const e of readTar(decompressing(Readable.from(chunks(bytes, 10_000))))) {
        const h = createHash('sha256');
        for await (const c of e.body) h.update(c);
        out.push(`${e.header.path} ${e.header.size} ${h.digest('hex')}`);
      }
      return out;
    };
    const tarArgs = ['-c', '--sort=name', '-C', root, '.'];
    const plain = await listing(execFileSync('tar', tarArgs));
    expect(plain).toHaveLength(6);
    expect(await listing(execFileSync('tar', ['-z', ...tarArgs]))).toEqual(plain);
    expect(await listing(execFileSync('tar', ['--zstd', ...tarArgs]))).toEqual(plain);
  });
});
