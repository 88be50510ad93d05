import { Decompress as ZstdDecompress } from 'fzstd';
import { InvalidInputError, TooLargeError } from '../errors.js';
import { asCorrupt, type OutputGuard } from './output-guard.js';

/**
 * fzstd decodes every complete block of a pushed chunk synchronously, so one small chunk of RLE
 * blocks could expand to gigabytes before we get control back. ZstdFramer walks the frame and
 * block headers first, so we push at most one block at a time (at most 128 KiB of output), and
 * it rejects oversized windows before fzstd allocates them.
 */
export async function* unzstd(input: AsyncIterable<Buffer>, guard: OutputGuard, maxWindowBytes: number): AsyncGenerator<Buffer> {
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
