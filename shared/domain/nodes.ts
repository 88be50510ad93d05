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
  /**
   * Set on every name of a hard-linked file: the file's identity. In a container or volume a
   * name holds only this (`linkName`), and the content and metadata live in the namespace's
   * inode item, which every name shares. In an image layer each name carries a copy of the
   * (immutable) file and the layer's `names` for it, so reads stay one round trip.
   */
  readonly inode?: string;
  /** The number of names (stat's st_nlink); 1 when absent. */
  readonly nlink?: number;
  /** Image layers only: every path of the layer that names this inode. */
  readonly names?: readonly string[];
  /** A name in a container or volume: content and metadata are in the inode item. */
  readonly linkName?: true;
  /**
   * Read through an inode item: how many names the namespace holds. It can be below `nlink`:
   * like overlayfs, a link copied up from an image still counts the image's hidden names.
   */
  readonly ownNames?: number;
  /** Read through an inode item of a layer a fork sealed (not the top's own): a change copies it up. */
  readonly sealedInode?: true;
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
      // The name's own etag is what a change conditions on when it moves or removes the name.
      if (node.linkName) return { t: 'f', i: node.inode, e: node.etag, lo: node.overLower || undefined };
      return { t: 'f', ...metaAttrs(node), s: node.size, x: node.extents.map((e) => [...e]), i: node.inode, nl: node.nlink, nm: node.names && [...node.names] };
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
      if (a.s === undefined) return nameNode(a.i as string, meta.overLower, meta.etag);
      return {
        type: 'file',
        ...meta,
        size: a.s as number,
        extents: (a.x as Extent[]) ?? [],
        inode: a.i as string | undefined,
        nlink: a.nl as number | undefined,
        names: a.nm as string[] | undefined,
      };
    case 'd':
      return { type: 'dir', ...meta, opaque: (a.o as boolean | undefined) || undefined, redirect: a.r as string | undefined, closing: a.cl as number | undefined };
    case 'l':
      return { type: 'symlink', ...meta, target: a.ln as string };
    default:
      throw new Error(`unknown node type ${String(a.t)}`);
  }
}

/** A name of a hard-linked file in a container or volume; what it reads is its inode item's. */
export function nameNode(inode: string, overLower: boolean | undefined, etag = newEtag()): FileNode {
  return { type: 'file', inode, linkName: true, overLower: overLower || undefined, size: 0, extents: [], mode: 0, uid: 0, gid: 0, mtime: 0, etag };
}

/** The shared part of a hard-linked file in a container or volume: its content, metadata and name count. */
export function inodeToAttrs(file: FileNode, nlink: number, ownNames: number): Record<string, unknown> {
  return { m: file.mode, u: file.uid, g: file.gid, mt: file.mtime, e: file.etag, s: file.size, x: file.extents.map((e) => [...e]), nl: nlink, nn: ownNames };
}

/** A name read through its inode item: the file as every name shows it. */
export function fileThroughInode(name: FileNode, attrs: Record<string, unknown>): FileNode {
  return {
    type: 'file',
    mode: attrs.m as number,
    uid: attrs.u as number,
    gid: attrs.g as number,
    mtime: attrs.mt as number,
    etag: attrs.e as string,
    size: attrs.s as number,
    extents: (attrs.x as Extent[]) ?? [],
    inode: name.inode,
    nlink: attrs.nl as number,
    ownNames: attrs.nn as number,
    overLower: name.overLower,
  };
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
