import type { Readable } from 'node:stream';
import type { BlobStore } from '../ports/blob-store.js';
import { ZERO_BLOB, type Extent } from './nodes.js';
import { readAll } from './streams.js';

/** How a batch of small files is read: the limits that bound memory and requests. */
export interface BatchedReadOptions {
  /** A file larger than this streams on its own (its bytes are never held). @default 1 MiB */
  readonly smallFileBytes?: number;
  /** One ranged GET covers at most this many bytes. @default 8 MiB */
  readonly maxRunBytes?: number;
  /** Extents this close in one blob share a GET, the bytes between read and dropped (tar headers, other files). @default 64 KiB */
  readonly maxGapBytes?: number;
  /** A batch whose runs, gaps included, would hold more than this is read without gaps instead. @default 64 MiB */
  readonly maxHeldBytes?: number;
  /** GETs in flight at once. @default 4 */
  readonly concurrency?: number;
}

/** Bytes a batch of small files may hold in memory at once, fetched ahead of the writer. */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;

interface Run {
  readonly key: string;
  readonly start: number;
  end: number;
  data?: Promise<Buffer>;
}

/**
 * Reads the bytes of many small files in few requests: their extents, sorted by blob and offset,
 * are merged into runs (one ranged GET each, the small gaps between them read and dropped), and
 * the runs are fetched a few at a time. Unchanged files of one layer lie next to each other in
 * its tar, so an export of a 10,000-file image costs a few dozen GETs, not 10,000.
 */
export class BatchedReads {
  private readonly smallFileBytes: number;
  private readonly maxRunBytes: number;
  private readonly maxGapBytes: number;
  private readonly maxHeldBytes: number;
  private readonly concurrency: number;

  constructor(
    private readonly blobs: BlobStore,
    private readonly streamOf: (extents: readonly Extent[]) => Readable,
    options: BatchedReadOptions = {},
  ) {
    this.smallFileBytes = options.smallFileBytes ?? 1024 * 1024;
    this.maxRunBytes = options.maxRunBytes ?? 8 * 1024 * 1024;
    this.maxGapBytes = options.maxGapBytes ?? 64 * 1024;
    this.maxHeldBytes = options.maxHeldBytes ?? 64 * 1024 * 1024;
    this.concurrency = options.concurrency ?? 4;
  }

  /** Whether a file's bytes go in a batch (small, and no holes to stream) or stream on their own. */
  batchable(extents: readonly Extent[]): boolean {
    let bytes = 0;
    for (const [key, , length] of extents) {
      if (key === ZERO_BLOB) return false;
      bytes += length;
    }
    return bytes <= this.smallFileBytes;
  }

  /**
   * Starts reading the files' bytes and answers, per file, a function that gives its bytes. Files
   * that are not batchable stream when asked. The caller holds at most the batch's bytes (plus
   * gaps); it should keep a batch under MAX_BATCH_BYTES.
   */
  read(files: readonly (readonly Extent[])[]): (() => AsyncIterable<Buffer>)[] {
    const pieces: { key: string; offset: number; length: number; run?: Run }[][] = files.map((extents) =>
      this.batchable(extents) ? extents.map(([key, offset, length]) => ({ key, offset, length })) : [],
    );
    const sorted = pieces
      .flat()
      .filter((p) => p.length > 0)
      .sort((a, b) => (a.key === b.key ? a.offset - b.offset : a.key < b.key ? -1 : 1));
    let runs = this.plan(sorted, this.maxGapBytes);
    // Files scattered over a blob would make the gaps the bulk of what is held: read them without.
    if (runs.reduce((n, r) => n + r.end - r.start, 0) > this.maxHeldBytes) runs = this.plan(sorted, 0);
    this.fetch(runs);
    return files.map((extents, i) => {
      if (!this.batchable(extents)) return () => this.streamOf(extents);
      const own = pieces[i];
      return () =>
        (async function* () {
          for (const piece of own) {
            if (piece.length === 0) continue;
            const data = await piece.run!.data!;
            yield data.subarray(piece.offset - piece.run!.start, piece.offset - piece.run!.start + piece.length);
          }
        })();
    });
  }

  /** Merges sorted pieces into runs (each piece learns its run). */
  private plan(sorted: { key: string; offset: number; length: number; run?: Run }[], maxGap: number): Run[] {
    const runs: Run[] = [];
    for (const piece of sorted) {
      const last = runs.at(-1);
      const end = piece.offset + piece.length;
      if (last && last.key === piece.key && piece.offset - last.end <= maxGap && end - last.start <= this.maxRunBytes) last.end = Math.max(last.end, end);
      else runs.push({ key: piece.key, start: piece.offset, end });
      piece.run = runs.at(-1);
    }
    return runs;
  }

  /** Fetches the runs in order, `concurrency` at a time; each run's promise settles with its bytes. */
  private fetch(runs: readonly Run[]): void {
    let active = 0;
    const waiting: (() => void)[] = [];
    const acquire = () => (active < this.concurrency ? (active++, Promise.resolve()) : new Promise<void>((resolve) => waiting.push(() => (active++, resolve()))));
    const release = () => {
      active--;
      waiting.shift()?.();
    };
    for (const run of runs) {
      run.data = acquire().then(async () => {
        try {
          return await readAll(await this.blobs.get(run.key, { start: run.start, end: run.end }));
        } finally {
          release();
        }
      });
      // A reader that stopped early must not leave an unhandled rejection behind.
      run.data.catch(() => undefined);
    }
  }
}
