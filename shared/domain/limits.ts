import { InvalidInputError, TooLargeError } from '../errors.js';

/**
 * The ranges every part of Strata can carry: a value accepted here can be stored in DynamoDB,
 * written to a tar (export, commit, save) and read back by Docker, so nothing accepted breaks
 * later. Checked at the domain's edge, whoever the caller is.
 */

/** uid and gid: Linux's uid_t, less (uid_t)-1, which means "no change" to chown(2). */
export const MAX_ID = 0xffff_fffe;

/** Default largest file: sizes, offsets and offset + length of a write stay at or below it. */
export const DEFAULT_MAX_FILE_BYTES = 1024 ** 4;

/** mtime in ms: years 1 to 9999, what an HTTP date and Go's time (Docker) both print. */
export const MIN_MTIME_MS = -62_135_596_800_000;
export const MAX_MTIME_MS = 253_402_300_799_999;

/** Labels live in the container or volume item, which DynamoDB caps at 400 KB with everything else. */
export const MAX_LABELS_BYTES = 64 * 1024;
export const MAX_LABELS = 256;
/** Keys that would reach an object's prototype in JavaScript and in some clients' JSON decoders. */
const RESERVED_LABEL_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** An empty key, or one that would reach an object's prototype. */
export function isReservedLabelKey(key: string): boolean {
  return key === '' || RESERVED_LABEL_KEYS.has(key);
}

export function checkId(value: number, name: 'uid' | 'gid'): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_ID) throw new InvalidInputError(`${name} must be an integer from 0 to ${MAX_ID}`);
  return value;
}

export function checkMtime(value: number): number {
  if (!Number.isInteger(value) || value < MIN_MTIME_MS || value > MAX_MTIME_MS) {
    throw new InvalidInputError(`mtime must be milliseconds since the epoch from ${MIN_MTIME_MS} to ${MAX_MTIME_MS} (years 1 to 9999)`);
  }
  return value;
}

/** A size or end offset of a file. Over the limit is 413: the request is well formed but too big. */
export function checkFileBytes(value: number, what: string, maxFileBytes: number): number {
  if (!Number.isInteger(value) || value < 0) throw new InvalidInputError(`${what} must be a non-negative integer`);
  if (value > maxFileBytes) throw new TooLargeError(`${what} ${value} is over the largest file size, ${maxFileBytes} bytes`);
  return value;
}

/** Labels as a fresh object of own string properties, within the item's budget. */
export function checkLabels(labels: Readonly<Record<string, unknown>>): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) throw new InvalidInputError(`at most ${MAX_LABELS} labels`);
  let bytes = 0;
  for (const [key, value] of entries) {
    if (isReservedLabelKey(key)) throw new InvalidInputError(`label key ${JSON.stringify(key)} is not allowed`);
    if (typeof value !== 'string') throw new InvalidInputError(`label ${JSON.stringify(key)} must be a string`);
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  if (bytes > MAX_LABELS_BYTES) throw new InvalidInputError(`labels total ${bytes} bytes, over the ${MAX_LABELS_BYTES}-byte limit`);
  return Object.fromEntries(entries) as Record<string, string>;
}
