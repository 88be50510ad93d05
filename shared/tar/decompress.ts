import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { InvalidInputError, StrataError, TooLargeError } from '../errors.js';

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

/** Counts output against input and throws TooLargeError past either limit. */
class OutputGuard {
  private output = 0;
  constructor(private readonly limit: DecompressLimits) {}

  check(outputBytes: number, inputBytes: number): void {
    this.output += outputBytes;
    const { maxOutputBytes, maxRatio, ratioGraceBytes } = this.limit;
    if (this.output > maxOutputBytes) throw new TooLargeError(`decompressed data is over the ${maxOutputBytes}-byte limit`);
    if (this.output > ratioGraceBytes && this.output > maxRatio * inputBytes) {
      throw new TooLargeError(`compression ratio is over ${maxRatio}:1 (${this.output} bytes from ${inputBytes}); refusing a likely decompression bomb`);
    }
  }

  passThrough(bytes: number): void {
    this.output += bytes;
    if (this.output > this.limit.maxOutputBytes) throw new TooLargeError(`data is over the ${this.limit.maxOutputBytes}-byte limit`);
  }
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

/** zlib and fzstd errors become a short InvalidInputError; our own and the source's pass through. */
function asCorrupt(error: unknown, format: string): unknown {
  if (error instanceof StrataError) return error;
  const code = (error as { code?: unknown }).code;
  const isCodecError = format === 'gzip' ? typeof code === 'string' && code.startsWith('Z_') : true;
  if (!isCodecError) return error;
  const reason = error instanceof Error ? error.message.slice(0, 80) : 'undecodable data';
  return new InvalidInputError(`corrupt ${format} stream: ${reason}`);
}

// ---- zstd --------------------------------------------------------------------------------

/**
 * fzstd decodes every complete block of a pushed chunk synchronously, so one small chunk of RLE
 * blocks could expand to gigabytes before we get control back. ZstdFramer walks the frame and
 * block headers first, so we push at most one block at a time (at most 128 KiB of output), and
 * it rejects oversized windows before fzstd allocates them.
 */
async function* unzstd(input: AsyncIterable<Buffer>, guard: OutputGuard, maxWindowBytes: number): AsyncGenerator<Buffer> {
  const framer = new ZstdFramer(maxWindowBytes);
  let produced: Buffer[] = [];
  const decoder = new ZstdDecompress((data) => {
    // fzstd hands over a fresh array per block, so it can be wrapped without copying.
    if (data.length > 0) produced.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });
  let consumed = 0;
  const push = (piece: Uint8Array, final: boolean) => {
    try {
      decoder.push(piece, final);
    } catch (error) {
      throw asCorrupt(error, 'zstd');
    }
  };
  for await (const chunk of input) {
    let pos = 0;
    while (pos < chunk.length) {
      const n = framer.advance(chunk, pos);
      if (n > 0) push(chunk.subarray(pos, pos + n), false);
      pos += n;
      consumed += n;
      const out = produced;
      produced = [];
      for (const block of out) {
        guard.check(block.length, consumed);
        yield block;
      }
    }
  }
  framer.end();
  push(new Uint8Array(0), true);
  for (const block of produced) {
    guard.check(block.length, consumed);
    yield block;
  }
}

const ZSTD_MAGIC = 0xfd2fb528;
const MAX_BLOCK_BYTES = 128 * 1024;

type FramerState =
  | { at: 'magic' }
  | { at: 'frameHeader'; need: number }
  | { at: 'blockHeader' }
  | { at: 'blockBody'; left: number; last: boolean }
  | { at: 'checksum' }
  | { at: 'skippableSize' }
  | { at: 'skip'; left: number };

/**
 * Follows the zstd frame format (RFC 8878 section 3) without decoding: frame headers, block
 * headers and skippable frames. Validates what fzstd does not (window size, dictionary use,
 * reserved bits, block sizes) and tells the caller where each block ends.
 */
class ZstdFramer {
  private state: FramerState = { at: 'magic' };
  /** Bytes of the header being collected (headers may straddle chunks). */
  private header: number[] = [];
  private blockMax = MAX_BLOCK_BYTES;
  private hasChecksum = false;

  constructor(private readonly maxWindowBytes: number) {}

  /** Consumes bytes of `chunk` from `pos`, stopping right after a block ends; returns how many. */
  advance(chunk: Uint8Array, pos: number): number {
    const start = pos;
    for (;;) {
      const s = this.state;
      // Checked before the end-of-chunk test so that empty blocks and skippable frames complete.
      if (s.at === 'blockBody' || s.at === 'skip') {
        const n = Math.min(s.left, chunk.length - pos);
        s.left -= n;
        pos += n;
        if (s.left > 0) break;
        if (s.at === 'skip') this.state = { at: 'magic' };
        else {
          this.state = s.last ? (this.hasChecksum ? { at: 'checksum' } : { at: 'magic' }) : { at: 'blockHeader' };
          return pos - start; // block boundary: let the caller decode this block alone
        }
        continue;
      }
      if (pos >= chunk.length) break;
      this.header.push(chunk[pos++]!);
      this.onHeaderByte();
    }
    return pos - start;
  }

  /** Throws if the input stopped inside a frame. */
  end(): void {
    if (this.state.at !== 'magic' || this.header.length > 0) throw new InvalidInputError('corrupt zstd stream: unexpected end of input');
  }

  private onHeaderByte(): void {
    const h = this.header;
    const s = this.state;
    switch (s.at) {
      case 'magic': {
        if (h.length < 4) return;
        const magic = le(h, 0, 4);
        this.header = [];
        if (magic === ZSTD_MAGIC) this.state = { at: 'frameHeader', need: 1 };
        else if (magic >>> 4 === 0x184d2a5) this.state = { at: 'skippableSize' };
        else throw new InvalidInputError('corrupt zstd stream: bad frame magic');
        return;
      }
      case 'skippableSize':
        if (h.length < 4) return;
        this.state = { at: 'skip', left: le(h, 0, 4) };
        this.header = [];
        return;
      case 'frameHeader': {
        if (h.length === 1) s.need = frameHeaderSize(h[0]!);
        if (h.length < s.need) return;
        this.startFrame(h);
        this.header = [];
        this.state = { at: 'blockHeader' };
        return;
      }
      case 'blockHeader': {
        if (h.length < 3) return;
        const bits = le(h, 0, 3);
        this.header = [];
        const last = (bits & 1) === 1;
        const type = (bits >> 1) & 3;
        const size = bits >>> 3;
        if (type === 3) throw new InvalidInputError('corrupt zstd stream: reserved block type');
        if (size > this.blockMax) throw new InvalidInputError('corrupt zstd stream: block larger than its window allows');
        // An RLE block stores one byte, repeated `size` times on output.
        this.state = { at: 'blockBody', left: type === 1 ? 1 : size, last };
        return;
      }
      case 'checksum':
        if (h.length < 4) return;
        this.header = [];
        this.state = { at: 'magic' };
        return;
    }
  }

  private startFrame(h: number[]): void {
    const descriptor = h[0]!;
    if (descriptor & 0x08) throw new InvalidInputError('corrupt zstd stream: reserved bit set in frame header');
    const singleSegment = (descriptor & 0x20) !== 0;
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
    this.hasChecksum = (descriptor & 0x04) !== 0;
    let pos = 1;
    let window = 0;
    if (!singleSegment) {
      const w = h[pos++]!;
      const base = 2 ** (10 + (w >> 3));
      window = base + (base / 8) * (w & 7);
    }
    if (dictionaryBytes > 0 && le(h, pos, dictionaryBytes) !== 0) {
      throw new InvalidInputError('zstd dictionaries are not supported');
    }
    pos += dictionaryBytes;
    if (singleSegment) {
      // The whole content is one window, sized by the content size field.
      const sizeBytes = h.length - pos;
      window = le(h, pos, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
    }
    if (window > this.maxWindowBytes) {
      throw new TooLargeError(`zstd window of ${window} bytes is over the ${this.maxWindowBytes}-byte limit`);
    }
    this.blockMax = Math.min(window, MAX_BLOCK_BYTES);
  }
}

/** Frame header length after the magic, from its first (descriptor) byte. */
function frameHeaderSize(descriptor: number): number {
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
  return 1 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + contentSizeBytes;
}

/** Little-endian unsigned integer of `n` bytes (exact up to 2^53). */
function le(bytes: number[], pos: number, n: number): number {
  let value = 0;
  for (let i = n - 1; i >= 0; i--) value = value * 256 + bytes[pos + i]!;
  return value;
}
