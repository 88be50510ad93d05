import type { Readable } from 'node:stream';

/** A byte range, inclusive start, exclusive end. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface PutResult {
  /** Bytes stored. */
  readonly size: number;
}

/**
 * Immutable blob storage (S3 or a local folder). Strata writes every object under a fresh,
 * unique key and never overwrites one, so callers never depend on read-after-overwrite.
 * Keys are opaque strings built by shared/keys.ts and always start with the tenant prefix.
 */
export interface BlobStore {
  /**
   * Stores a stream under a key that must not exist yet. Memory stays bounded whatever the size.
   * Throws ConflictError if the key already exists; a failed put leaves no object behind.
   * Always settles: a source that errors, or was destroyed before or while it is read, rejects
   * the put (never a truncated object).
   */
  put(key: string, body: Readable | Buffer): Promise<PutResult>;

  /**
   * Streams the blob, or only `range` of it, in one request.
   * Throws NotFoundError if the key does not exist, RangeNotSatisfiableError if range.start is past the end.
   */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /** Size of a blob. Throws NotFoundError if the key does not exist. */
  size(key: string): Promise<number>;

  /**
   * Server-side copy of `source` (or a range of it) to a new key: no bytes travel through the caller.
   * Throws NotFoundError if the source does not exist.
   */
  copy(source: string, target: string, range?: ByteRange): Promise<PutResult>;

  /** Deletes keys; missing keys are not an error. Never throws a domain error. */
  delete(keys: readonly string[]): Promise<void>;

  /** Lists keys under a prefix, in pages. Never throws a domain error. */
  list(prefix: string, cursor?: string): Promise<{ keys: string[]; cursor?: string }>;

  /**
   * Removes writes under `prefix` that were started before `before` (ms since epoch) and never
   * finished: a crash's partial files or multipart uploads, which `list` does not show.
   * Returns how many it removed. Never throws a domain error.
   */
  abortIncomplete(prefix: string, before: number): Promise<number>;

  /**
   * A URL a client can GET (or PUT) directly for `expiresInSeconds`, without Strata's credentials.
   * Never throws a domain error.
   */
  presign(key: string, method: 'GET' | 'PUT', expiresInSeconds: number): Promise<string>;
}
