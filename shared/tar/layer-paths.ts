import { InvalidInputError } from '../errors.js';

/**
 * OCI layer entry names: how a tar member name becomes a path inside the layer root, and which
 * names are whiteouts. Pure string rules; nothing here touches a filesystem.
 */

export const MAX_LAYER_PATH_BYTES = 4096;
export const MAX_LAYER_NAME_BYTES = 255;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

/**
 * Normalises a tar entry name to an absolute, clean path in the layer: `./a/b/` -> `/a/b`,
 * `a//b` -> `/a/b`, `a/../b` -> `/b`, `.` or `/` -> `/`. A leading `/` is taken as relative to the
 * layer root (some tools write absolute names), but a `..` that would climb above the root is
 * rejected rather than clamped, since a layer that tries it is hostile or broken.
 * Also used for hard link targets, which are paths in the layer too (symlink targets are not:
 * they are resolved inside the root when followed).
 */
export function layerEntryPath(raw: string): string {
  if (raw === '') throw new InvalidInputError('empty path in layer');
  if (raw.includes('\0')) throw new InvalidInputError(`NUL byte in layer path ${JSON.stringify(raw)}`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new InvalidInputError(`layer path ${JSON.stringify(raw)} climbs above the root`);
      parts.pop();
      continue;
    }
    if (Buffer.byteLength(part) > MAX_LAYER_NAME_BYTES) {
      throw new InvalidInputError(`a name in layer path ${JSON.stringify(shorten(raw))} is over ${MAX_LAYER_NAME_BYTES} bytes`);
    }
    parts.push(part);
  }
  const path = '/' + parts.join('/');
  if (Buffer.byteLength(path) > MAX_LAYER_PATH_BYTES) {
    throw new InvalidInputError(`layer path ${JSON.stringify(shorten(raw))} is over ${MAX_LAYER_PATH_BYTES} bytes`);
  }
  return path;
}

export type Whiteout = { kind: 'whiteout'; target: string } | { kind: 'opaque'; dir: string };

/**
 * Recognises `<dir>/.wh.<name>` (delete `<dir>/<name>` from the layers below) and
 * `<dir>/.wh..wh..opq` (hide everything the layers below have under `<dir>`). Accepts a raw
 * entry name or a normalised path. Returns undefined for an ordinary entry.
 *
 * Other `.wh..wh.*` names are AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`) found in old
 * layers; like Docker we read them as whiteouts of `.wh.<rest>`, a name no visible entry can
 * have, so they hide nothing and are never shown.
 */
export function whiteoutOf(path: string): Whiteout | undefined {
  const clean = layerEntryPath(path);
  const slash = clean.lastIndexOf('/');
  const base = clean.slice(slash + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return undefined;
  const dir = slash === 0 ? '/' : clean.slice(0, slash);
  if (base === OPAQUE_MARKER) return { kind: 'opaque', dir };
  const name = base.slice(WHITEOUT_PREFIX.length);
  // `.wh.`, `.wh..` and `.wh...` would whiteout the directory itself or its parent.
  if (name === '' || name === '.' || name === '..') {
    throw new InvalidInputError(`invalid whiteout name ${JSON.stringify(shorten(path))}`);
  }
  return { kind: 'whiteout', target: dir === '/' ? `/${name}` : `${dir}/${name}` };
}

/** Keeps error messages short when a hostile name is huge. */
function shorten(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}
