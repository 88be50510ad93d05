import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { InvalidInputError } from '../errors.js';
import type { BlobStore } from '../ports/blob-store.js';
import { decompressing } from '../tar/decompress.js';
import { layerEntryPath, whiteoutOf } from '../tar/layer-paths.js';
import { readTar, type TarLimits } from '../tar/tar-reader.js';
import type { TocEntry } from './layer-tree.js';

export interface IngestedLayer {
  /** sha256 of the uncompressed tar, `sha256:<hex>`. */
  readonly diffId: string;
  readonly blobKey: string;
  /** Bytes of the uncompressed tar as stored. */
  readonly tarSize: number;
  /** Bytes of regular files in the layer. */
  readonly contentBytes: number;
  readonly toc: TocEntry[];
}

export interface IngestLimits extends Partial<TarLimits> {
  /** Uncompressed bytes one layer may expand to. */
  readonly maxLayerBytes?: number;
}

/**
 * Stores one layer (plain, gzip or zstd) as its uncompressed tar, in a single pass: the bytes are
 * hashed for the DiffID, parsed into a table of contents with each file's offset (so a later read
 * is one ranged GET) and streamed to the blob store, with memory bounded by the stream buffers.
 * Hostile entries (traversal, duplicate paths, bombs) reject the layer and nothing stays behind.
 */
export async function ingestLayer(source: Readable | AsyncIterable<Buffer>, blobs: BlobStore, blobKey: string, limits: IngestLimits = {}): Promise<IngestedLayer> {
  const tap = new PassThrough();
  const uncompressed = decompressing(tap, { maxOutputBytes: limits.maxLayerBytes });
  const diff = createHash('sha256');
  const upload = new PassThrough({ highWaterMark: 1 << 20 });
  const parse = new PassThrough({ highWaterMark: 1 << 20 });
  let tarSize = 0;
  // Their consumers may be gone when they are destroyed with the failure; the failure is reported by the promise.
  for (const stream of [tap, upload, parse]) stream.on('error', () => undefined);

  const failure = new AbortController();
  // The first failure anywhere ends the input too: the loop below may be waiting for bytes
  // that a failed source will never send.
  const fail = (error: unknown) => {
    if (failure.signal.aborted) return;
    failure.abort(error);
    tap.destroy(asError(error));
  };
  const stored = blobs.put(blobKey, upload);
  const toc = tableOfContents(parse, limits).finally(() => parse.resume());
  stored.catch(fail);
  toc.catch(fail);

  const feed = (async () => {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (!tap.write(chunk)) await untilDrainOrFailure(tap, failure.signal);
    }
    tap.end();
  })();
  feed.catch(fail);

  try {
    for await (const chunk of uncompressed as AsyncIterable<Buffer>) {
      if (failure.signal.aborted) break;
      diff.update(chunk);
      tarSize += chunk.length;
      const a = upload.write(chunk);
      const b = parse.write(chunk);
      if (!a) await untilDrainOrFailure(upload, failure.signal);
      if (!b) await untilDrainOrFailure(parse, failure.signal);
    }
    if (failure.signal.aborted) throw failure.signal.reason;
    upload.end();
    parse.end();
    const [entries] = await Promise.all([toc, stored, feed]);
    if (tarSize === 0) throw new InvalidInputError('layer is empty');
    const contentBytes = entries.reduce((sum, e) => sum + (e.kind === 'file' ? e.size : 0), 0);
    return { diffId: `sha256:${diff.digest('hex')}`, blobKey, tarSize, contentBytes, toc: entries };
  } catch (error) {
    const reason = failure.signal.aborted ? failure.signal.reason : error;
    // Destroyed with the reason, never bare: a stream destroyed without an error after end()
    // leaves a pipeline attached to it later pending forever (Node 20).
    upload.destroy(asError(reason));
    parse.destroy(asError(reason));
    tap.destroy(asError(reason));
    await stored.catch(() => undefined);
    await blobs.delete([blobKey]).catch(() => undefined);
    throw reason;
  }
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

/**
 * Waits until `stream` wants more, or the ingest failed. Checks the flag first: with two
 * outputs, one may drain while we wait on the other, and its 'drain' event would be missed.
 */
async function untilDrainOrFailure(stream: Writable, signal: AbortSignal): Promise<void> {
  if (signal.aborted || !stream.writableNeedDrain) return;
  try {
    await once(stream, 'drain', { signal });
  } catch {
    // Aborted: the caller looks at the signal.
  }
}

/** Parses a layer tar into its table of contents, checking each entry against the OCI rules. */
async function tableOfContents(tar: Readable, limits: Partial<TarLimits>): Promise<TocEntry[]> {
  const entries: TocEntry[] = [];
  for await (const { header, dataOffset } of readTar(tar, limits)) {
    if (header.type === 'other') continue;
    const path = layerEntryPath(header.path);
    const base = { mode: header.mode & 0o7777, uid: header.uid, gid: header.gid, mtime: Math.round(header.mtime * 1000), size: 0, offset: dataOffset };
    const marker = whiteoutOf(path);
    if (marker?.kind === 'opaque') {
      entries.push({ ...base, path: marker.dir, kind: 'opaque' });
      continue;
    }
    if (marker?.kind === 'whiteout') {
      entries.push({ ...base, path: marker.target, kind: 'whiteout' });
      continue;
    }
    switch (header.type) {
      case 'file':
        entries.push({ ...base, path, kind: 'file', size: header.size });
        break;
      case 'directory':
        entries.push({ ...base, path, kind: 'dir' });
        break;
      case 'symlink':
        entries.push({ ...base, path, kind: 'symlink', linkname: header.linkname ?? '' });
        break;
      case 'hardlink':
        entries.push({ ...base, path, kind: 'hardlink', linkname: layerEntryPath(header.linkname ?? '') });
        break;
    }
  }
  return entries;
}
