import { InvalidInputError, StrataError, TooLargeError } from '../errors.js';
import type { DecompressLimits } from './decompress.js';

/* What every decoder shares: the bomb guard on its output, and how a codec's error reads. */

/** Counts output against input and throws TooLargeError past either limit. */
export class OutputGuard {
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

/** zlib and fzstd errors become a short InvalidInputError; our own and the source's pass through. */
export function asCorrupt(error: unknown, format: string): unknown {
  if (error instanceof StrataError) return error;
  const code = (error as { code?: unknown }).code;
  const isCodecError = format === 'gzip' ? typeof code === 'string' && code.startsWith('Z_') : true;
  if (!isCodecError) return error;
  const reason = error instanceof Error ? error.message.slice(0, 80) : 'undecodable data';
  return new InvalidInputError(`corrupt ${format} stream: ${reason}`);
}
