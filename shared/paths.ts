import { InvalidInputError } from './errors.js';

/** Linux limits, which every user of a file API already expects. */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
const WHITEOUT_PREFIX = '.wh.';

/**
 * Normalises a path given by a client to an absolute, clean path ('/' for the root).
 * Refuses what could escape the root or collide with the layer format: `..` above the root,
 * NUL bytes, over-long names or paths, and names starting with `.wh.` (OCI whiteout markers).
 */
export function normalizePath(raw: string): string {
  if (raw.includes('\0')) throw new InvalidInputError('path must not contain NUL bytes');
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) throw new InvalidInputError(`path is longer than ${MAX_PATH_BYTES} bytes`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new InvalidInputError(`path ${JSON.stringify(raw)} climbs above the root`);
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) throw new InvalidInputError(`name is longer than ${MAX_NAME_BYTES} bytes`);
    if (part.startsWith(WHITEOUT_PREFIX)) throw new InvalidInputError(`names starting with ${WHITEOUT_PREFIX} are reserved: ${JSON.stringify(part)}`);
    parts.push(part);
  }
  return '/' + parts.join('/');
}

/** Components of a normalised path ('/' has none). */
export function components(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** Every ancestor prefix and the path itself, shortest first ('/a/b' -> ['/a', '/a/b']). */
export function prefixes(path: string): string[] {
  const out: string[] = [];
  let current = '';
  for (const part of components(path)) {
    current += '/' + part;
    out.push(current);
  }
  return out;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

/** True when `path` is `dir` itself or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  return dir === '/' || path === dir || path.startsWith(dir + '/');
}

/** Replaces the leading `from` of `path` by `to` (both normalised; path within from). */
export function rebase(path: string, from: string, to: string): string {
  if (path === from) return to;
  const rest = from === '/' ? path : path.slice(from.length);
  return to === '/' ? rest : to + rest;
}

/**
 * Where a symlink found at `linkPath` points, inside the root: an absolute target is relative
 * to the root and `..` never climbs above it (it stays at '/'), as `docker cp` resolves links.
 */
export function symlinkDestination(linkPath: string, target: string): string {
  const base = target.startsWith('/') ? [] : components(parentOf(linkPath));
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') base.pop();
    else base.push(part);
  }
  return '/' + base.join('/');
}

/**
 * Key order as DynamoDB sorts strings: by UTF-8 bytes, which is code point order, not
 * JavaScript's UTF-16 order (they differ for astral characters). Every merge of sorted
 * listings and the in-memory store use it, so they agree with the real store.
 */
export function compareNames(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const left = a.charCodeAt(index);
    const right = b.charCodeAt(index);
    if (left !== right) return codePointRank(left) - codePointRank(right);
  }
  return a.length - b.length;
}

/** Moves surrogates (astral code points) above U+E000..U+FFFF, where code point order puts them. */
function codePointRank(codeUnit: number): number {
  if (codeUnit >= 0xd800 && codeUnit <= 0xdfff) return codeUnit + 0x2000;
  if (codeUnit >= 0xe000) return codeUnit - 0x800;
  return codeUnit;
}
