import { randomUUID } from 'node:crypto';

/**
 * One path in one namespace, as stored. A file's bytes are a list of extents, each a byte range
 * of some immutable blob (a layer tar, or an object a container wrote). That is what makes
 * copy-up cheap: a chmod or rename copies the extent list, and a 4 KiB write into a 64 MiB lower
 * file stores only the 4 KiB and points at the lower blob for the rest.
 */
export type Extent = readonly [blobKey: string, offset: number, length: number];

/** An extent whose blob key is empty reads as zeros (a hole left by truncate or a write past the end). */
export const ZERO_BLOB = '';

export type NodeType = 'file' | 'dir' | 'symlink' | 'whiteout';

export interface FileMeta {
  /** Permission bits (0o7777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtime: number;
}

export interface NodeBase extends FileMeta {
  /** Changes with every content or metadata version; the HTTP ETag. */
  readonly etag: string;
  /** Set in a container layer when a lower layer had this path visible when the node was written. */
  readonly overLower?: boolean;
}

export interface FileNode extends NodeBase {
  readonly type: 'file';
  readonly size: number;
  readonly extents: readonly Extent[];
}

export interface DirNode extends NodeBase {
  readonly type: 'dir';
  /** Hides everything the lower layers have below this directory. */
  readonly opaque?: boolean;
  /** A renamed directory: lower layers are read at this path instead (overlayfs redirect_dir). */
  readonly redirect?: string;
  /** Set (ms since epoch) while the directory is being removed or renamed: nothing new may land below it. */
  readonly closing?: number;
}

export interface SymlinkNode extends NodeBase {
  readonly type: 'symlink';
  readonly target: string;
}

export interface WhiteoutNode {
  readonly type: 'whiteout';
  readonly overLower?: boolean;
}

export type Node = FileNode | DirNode | SymlinkNode | WhiteoutNode;
export type VisibleNode = FileNode | DirNode | SymlinkNode;

export const DEFAULT_DIR_META: FileMeta = { mode: 0o755, uid: 0, gid: 0, mtime: 0 };

export function newEtag(): string {
  return randomUUID().replace(/-/g, '').slice(0, 20);
}

export function rootNode(): DirNode {
  return { type: 'dir', ...DEFAULT_DIR_META, etag: 'root' };
}

/** Compact attribute names keep index items small (a 10,000-file layer is 10,000 items). */
export function nodeToAttrs(node: Node): Record<string, unknown> {
  switch (node.type) {
    case 'whiteout':
      return { t: 'w', lo: node.overLower || undefined };
    case 'file':
      return { t: 'f', ...metaAttrs(node), s: node.size, x: node.extents.map((e) => [...e]) };
    case 'dir':
      return { t: 'd', ...metaAttrs(node), o: node.opaque || undefined, r: node.redirect, cl: node.closing };
    case 'symlink':
      return { t: 'l', ...metaAttrs(node), ln: node.target };
  }
}

function metaAttrs(node: NodeBase) {
  return { m: node.mode, u: node.uid, g: node.gid, mt: node.mtime, e: node.etag, lo: node.overLower || undefined };
}

export function nodeFromAttrs(a: Record<string, unknown>): Node {
  const meta = {
    mode: a.m as number,
    uid: a.u as number,
    gid: a.g as number,
    mtime: a.mt as number,
    etag: a.e as string,
    overLower: (a.lo as boolean | undefined) || undefined,
  };
  switch (a.t) {
    case 'w':
      return { type: 'whiteout', overLower: meta.overLower };
    case 'f':
      return { type: 'file', ...meta, size: a.s as number, extents: (a.x as Extent[]) ?? [] };
    case 'd':
      return { type: 'dir', ...meta, opaque: (a.o as boolean | undefined) || undefined, redirect: a.r as string | undefined, closing: a.cl as number | undefined };
    case 'l':
      return { type: 'symlink', ...meta, target: a.ln as string };
    default:
      throw new Error(`unknown node type ${String(a.t)}`);
  }
}

/** Cuts a file's extent list to `size`, padding with zeros when it grows. */
export function truncateExtents(extents: readonly Extent[], oldSize: number, size: number): Extent[] {
  if (size >= oldSize) return size === oldSize ? [...extents] : [...extents, [ZERO_BLOB, 0, size - oldSize]];
  const out: Extent[] = [];
  let at = 0;
  for (const [key, offset, length] of extents) {
    if (at >= size) break;
    const take = Math.min(length, size - at);
    out.push([key, offset, take]);
    at += take;
  }
  return out;
}

/** The extent list after writing `insert` (length `length`) at `position`; a gap past the end reads as zeros. */
export function spliceExtents(extents: readonly Extent[], oldSize: number, position: number, insert: Extent): Extent[] {
  const length = insert[2];
  const head = truncateExtents(extents, oldSize, position);
  const out: Extent[] = [...head, insert];
  const tailStart = position + length;
  let at = 0;
  for (const [key, offset, len] of extents) {
    const end = at + len;
    if (end > tailStart) {
      const skip = Math.max(0, tailStart - at);
      out.push([key, offset + (key === ZERO_BLOB ? 0 : skip), len - skip]);
    }
    at = end;
  }
  return mergeAdjacent(out.filter((e) => e[2] > 0));
}

function mergeAdjacent(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last && last[0] === e[0] && (e[0] === ZERO_BLOB || last[1] + last[2] === e[1])) {
      out[out.length - 1] = [last[0], last[1], last[2] + e[2]];
    } else out.push(e);
  }
  return out;
}

/** The extents covering [start, end) of a file, cut to that range. */
export function sliceExtents(extents: readonly Extent[], start: number, end: number): Extent[] {
  const out: Extent[] = [];
  let at = 0;
  for (const [key, offset, length] of extents) {
    const s = Math.max(start, at);
    const e = Math.min(end, at + length);
    if (s < e) out.push([key, key === ZERO_BLOB ? 0 : offset + (s - at), e - s]);
    at += length;
    if (at >= end) break;
  }
  return out;
}
