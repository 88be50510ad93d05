import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InvalidInputError } from '../errors.js';
import { asCorrupt, OutputGuard } from './output-guard.js';
import { unzstd } from './zstd-stream.js';

/**
 * Transparent decompression of layer blobs and image archives: gzip (node:zlib) and zstd (fzstd),
 * told apart by their magic bytes, with guards against decompression bombs.
 */

export type Compression = 'gzip' | 'zstd' | 'none';

export interface DecompressLimits {
  /** Total output bytes allowed. */
  maxOutputBytes: number;
  /** Output/input ratio allowed once more than `ratioGraceBytes` have come out. */
  maxRatio: number;
  /** Output before the ratio is enforced: small inputs (an all-zero block, a tiny tar) legitimately compress very well. */
  ratioGraceBytes: number;
  /** Largest zstd window accepted; the decoder allocates this much up front. zstd's own default limit is 128 MiB. */
  maxZstdWindowBytes: number;
}

export const DEFAULT_DECOMPRESS_LIMITS: Readonly<DecompressLimits> = Object.freeze({
  maxOutputBytes: 64 * 1024 ** 3,
  maxRatio: 1000,
  ratioGraceBytes: 1024 ** 2,
  maxZstdWindowBytes: 128 * 1024 ** 2,
});

/** Bytes needed to recognise every format we know of (xz has the longest magic). */
const SNIFF_BYTES = 6;

/** Which compression the stream starting with these bytes uses; 'none' when none we know. */
export function compressionOf(firstBytes: Uint8Array): Compression {
  const b = firstBytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  // A zstd stream may open with a skippable frame (magic 0x184D2A50..5F, little-endian).
  if (b.length >= 4 && (b[0]! & 0xf0) === 0x50 && b[1] === 0x2a && b[2] === 0x4d && b[3] === 0x18) return 'zstd';
  return 'none';
}

/**
 * The uncompressed bytes of `source`, which may be gzip, zstd or not compressed at all. The
 * returned stream fails with InvalidInputError on corrupt input and TooLargeError when the
 * output passes `maxOutputBytes` or the ratio passes `maxRatio`. Memory stays bounded: output is
 * produced only as fast as it is read.
 */
export function decompressing(source: Readable | AsyncIterable<Uint8Array>, limits: Partial<DecompressLimits> = {}): Readable {
  const limit: DecompressLimits = { ...DEFAULT_DECOMPRESS_LIMITS, ...limits };
  return Readable.from(decompress(source, limit), { objectMode: false });
}

async function* decompress(source: AsyncIterable<unknown>, limit: DecompressLimits): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  try {
    const head: Buffer[] = [];
    let headBytes = 0;
    while (headBytes < SNIFF_BYTES) {
      const next = await iterator.next();
      if (next.done) break;
      const chunk = toBuffer(next.value);
      head.push(chunk);
      headBytes += chunk.length;
    }
    // One chunk (a whole body handed over at once) is used as is: copying it would cost as much as the rest of the load.
    const first = head.length === 1 ? head[0]! : Buffer.concat(head);
    rejectUnsupported(first);
    const input = withHead(first, iterator);
    const guard = new OutputGuard(limit);
    switch (compressionOf(first)) {
      case 'gzip':
        yield* gunzip(input, guard);
        break;
      case 'zstd':
        yield* unzstd(input, guard, limit.maxZstdWindowBytes);
        break;
      case 'none':
        for await (const chunk of input) {
          guard.passThrough(chunk.length);
          yield chunk;
        }
    }
  } finally {
    await iterator.return?.();
  }
}

/** Formats Docker also accepts but we do not: say so instead of failing later as a bad tar. */
function rejectUnsupported(first: Buffer): void {
  if (first.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    throw new InvalidInputError('xz compression is not supported; use gzip or zstd');
  }
  if (first.length >= 4 && first.toString('latin1', 0, 3) === 'BZh' && first[3]! >= 0x31 && first[3]! <= 0x39) {
    throw new InvalidInputError('bzip2 compression is not supported; use gzip or zstd');
  }
}

async function* withHead(head: Buffer, rest: AsyncIterator<unknown>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    const chunk = toBuffer(next.value);
    if (chunk.length > 0) yield chunk;
  }
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'latin1');
  throw new TypeError('decompressing() source must yield Buffers');
}

// ---- gzip --------------------------------------------------------------------------------

async function* gunzip(input: AsyncIterable<Buffer>, guard: OutputGuard): AsyncGenerator<Buffer> {
  const inflater = createGunzip();
  const feed = Readable.from(input, { objectMode: false });
  // Errors on either side end up destroying `inflater`, which the loop below then throws.
  pipeline(feed, inflater, () => {});
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      // bytesWritten is the compressed input zlib has consumed so far, not merely buffered.
      guard.check(chunk.length, inflater.bytesWritten);
      yield chunk;
    }
  } catch (error) {
    throw asCorrupt(error, 'gzip');
  } finally {
    inflater.destroy();
    feed.destroy();
  }
}
