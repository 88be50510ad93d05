import { BatchedReads, type BatchedReadOptions } from './batched-reads.js';
import { Readable } from 'node:stream';
import { FsError, InvalidInputError, NotFoundError, RangeNotSatisfiableError, TooLargeError } from '../errors.js';
import { isPacked, keys, type NamespaceId } from '../keys.js';
import { packEntries, packFromAttrs } from './packs.js';
import { baseName, compareNames, joinPath, normalizePath, parentOf } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { ItemKey, MetadataStore } from '../ports/metadata-store.js';
import { nodeFromAttrs, sliceExtents, ZERO_BLOB, type Extent, type Node, type VisibleNode } from './nodes.js';
import { Resolver, seenFromAll, sourcePath, type Resolved } from './resolver.js';

/** Zeros a copy-out for a 303 may write; past this a sparse file is read in smaller ranges. */
export const MAX_COPIED_HOLE_BYTES = 64 * 1024 * 1024;

/**
 * How many bytes of holes one export or commit may write out as zeros. A hole costs nothing to
 * keep, so without a bound one PATCH of a size and one export would fill the disk.
 */
export class HoleBudget {
  constructor(private remaining: number) {}

  /** Spends the holes of a file's extents before any of its bytes are written. */
  spend(extents: readonly Extent[]): void {
    this.remaining -= holeBytes(extents);
    if (this.remaining < 0) throw new TooLargeError('the tree holds more holes (bytes never written) than one export or commit writes out as zeros; remove or shrink the sparse files first');
  }
}

/** Bytes of a file's extents that are holes (never written, read as zeros). */
export function holeBytes(extents: readonly Extent[]): number {
  return extents.reduce((sum, [key, , length]) => sum + (key === ZERO_BLOB ? length : 0), 0);
}

/** Zeros one export or commit may write. */
export const MAX_WRITTEN_HOLE_BYTES = 1024 ** 3;
import type { View } from './view.js';

export interface FileStat {
  /** Absolute path as the caller addressed it, after following symlinks where the operation does. */
  readonly path: string;
  readonly name: string;
  readonly type: 'file' | 'dir' | 'symlink';
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Milliseconds since the epoch. */
  readonly mtime: number;
  readonly etag: string;
  /** For symlinks: the target as written. */
  readonly target?: string;
  /** For files: how many names it has (hard links). */
  readonly nlink?: number;
  /** For hard-linked files: the identity all its names share. */
  readonly inode?: string;
}

export interface DirPage {
  readonly entries: FileStat[];
  /** Pass back as `cursor` to continue; absent on the last page. */
  readonly cursor?: string;
}

export const DEFAULT_PAGE_SIZE = 1000;

export function statOf(path: string, node: VisibleNode): FileStat {
  return {
    path,
    name: path === '/' ? '' : baseName(path),
    type: node.type,
    size: node.type === 'file' ? node.size : 0,
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    mtime: node.mtime,
    etag: node.etag,
    target: node.type === 'symlink' ? node.target : undefined,
    nlink: node.type === 'file' ? (node.nlink ?? 1) : undefined,
    inode: node.type === 'file' ? node.inode : undefined,
  };
}

/** The read side of a file tree: stat, read (whole or a range) and merged, paginated listing. */
export class TreeReader {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
  ) {}

  /** Resolves and requires the path to exist. `extra` items ride along in the same round trip. */
  /** A fresh resolver, for callers that want to look at its `extra` items even when the lookup fails. */
  resolver(): Resolver {
    return new Resolver(this.meta);
  }

  async existing(view: View, rawPath: string, follow = true, extra: readonly ItemKey[] = [], resolver = this.resolver()): Promise<{ resolved: Resolved & { node: VisibleNode }; resolver: Resolver }> {
    const path = normalizePath(rawPath);
    const resolved = await resolver.resolve(view, path, { follow, extra });
    if (!resolved.node) throw new NotFoundError(`no such file or directory: ${path}`);
    return { resolved: resolved as Resolved & { node: VisibleNode }, resolver };
  }

  /**
   * Reads a file, or `range` of it (end exclusive, clamped to the size). An unchanged lower file
   * is one extent, so this is one ranged GET of the layer blob.
   */
  async read(
    view: View,
    rawPath: string,
    range?: { start: number; end?: number },
    extra: readonly ItemKey[] = [],
    resolver = this.resolver(),
  ): Promise<{ stat: FileStat; start: number; end: number; body: Readable; extents: Extent[] }> {
    const { resolved } = await this.existing(view, rawPath, true, extra, resolver);
    const node = resolved.node;
    if (node.type !== 'file') throw new FsError('EISDIR', `not a file: ${resolved.absolutePath}`);
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? node.size, node.size);
    // An empty file has no satisfiable range at all (RFC 9110).
    if (start < 0 || (range && start >= node.size) || end < start) {
      throw new RangeNotSatisfiableError(`range ${start}-${range?.end ?? ''} is outside a file of ${node.size} bytes`);
    }
    const extents = sliceExtents(node.extents, start, end);
    return { stat: statOf(resolved.absolutePath, node), start, end, body: this.extentStream(extents), extents };
  }

  /**
   * Copies the bytes of a read (its extents) to a fresh blob a client can be sent to:
   * server-side when they lie in one blob (S3 UploadPartCopy), streamed through otherwise.
   */
  async copyOut(extents: readonly Extent[], target: string): Promise<void> {
    // Holes are free to keep and dear to write out: a copy must not turn one PATCH into a full disk.
    const holes = holeBytes(extents);
    if (holes > MAX_COPIED_HOLE_BYTES) {
      throw new TooLargeError(`the range holds ${holes} bytes of holes (zeros never written); read it in Range requests of at most the inline limit, which stream the zeros`);
    }
    if (extents.length === 1 && extents[0][0] !== ZERO_BLOB) {
      const [key, offset, length] = extents[0];
      await this.blobs.copy(key, target, { start: offset, end: offset + length });
    } else await this.blobs.put(target, this.extentStream(extents));
  }

  /** Reads many small files' bytes in few ranged GETs (export, commit, save). */
  batchedReads(options?: BatchedReadOptions): BatchedReads {
    return new BatchedReads(this.blobs, (extents) => this.extentStream(extents), options);
  }

  /**
   * Streams extents one after another, opening each blob only when the previous one is done and
   * only once the stream is read: a body dropped unread (HEAD, 304, 303) costs no S3 request.
   */
  extentStream(extents: readonly Extent[]): Readable {
    const blobs = this.blobs;
    return Readable.from(
      (async function* () {
        for (const [key, offset, length] of extents) {
          if (key === ZERO_BLOB) {
            for (let left = length; left > 0; left -= 65536) yield Buffer.alloc(Math.min(65536, left));
            continue;
          }
          const stream = await blobs.get(key, { start: offset, end: offset + length });
          for await (const chunk of stream) yield chunk as Buffer;
        }
      })(),
      { objectMode: false },
    );
  }

  /** Lists a directory with overlayfs readdir rules, names in byte order, `limit` at a time. */
  /**
   * A page of a directory. Its lowers' packs of the directory are fetched in the batch that
   * resolves the path (with `extra`, a cached record's proof), and each source is queried once
   * for the whole page, so a page costs the resolution and one round of queries.
   */
  async list(view: View, rawPath: string, options: { cursor?: string; limit?: number } = {}, extra: readonly ItemKey[] = [], resolver = this.resolver()): Promise<DirPage> {
    const dir = normalizePath(rawPath);
    const packs = view.lowers.filter(isPacked).map((ns) => keys.pack(view.tenant, ns, dir));
    const { resolved } = await this.existing(view, dir, true, [...extra, ...packs], resolver);
    if (resolved.node.type !== 'dir') throw new FsError('ENOTDIR', `not a directory: ${resolved.absolutePath}`);
    const limit = Math.min(Math.max(options.limit ?? DEFAULT_PAGE_SIZE, 1), DEFAULT_PAGE_SIZE);
    const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    // One entry past the page says whether there is a next one, so a full last page has no cursor.
    const page: [string, VisibleNode][] = [];
    // The page, its lookahead entry, the next head the merge reads ahead, and a tenth more for
    // names the layers above hide or replace: one query per source, nearly always.
    for await (const child of this.children(resolved, after, { pageSize: limit + 2 + Math.ceil(limit / 10), resolver })) {
      page.push(child);
      if (page.length > limit) break;
    }
    const more = page.length > limit;
    const entries = (await this.linked(resolved, page.slice(0, limit))).map(([name, node]) => statOf(joinPath(resolved.absolutePath, name), node));
    return { entries, cursor: more ? encodeCursor(entries[entries.length - 1].name) : undefined };
  }

  /** True when the directory shows no entry at all. */
  async isEmpty(resolved: Resolved): Promise<boolean> {
    for await (const _ of this.children(resolved, undefined)) return false;
    return true;
  }

  /**
   * Every path below `dir` in `view` with its node as the view shows it (hard links read through
   * their inode), parents before children; nothing when `dir` is not a directory there.
   */
  async *descendants(view: View, dir: string): AsyncGenerator<[string, VisibleNode]> {
    let resolved: Resolved;
    try {
      resolved = await this.resolver().resolve(view, dir, { follow: false, physical: true });
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof FsError) return;
      throw error;
    }
    if (resolved.node?.type !== 'dir') return;
    const children: [string, VisibleNode][] = [];
    for await (const entry of this.children(resolved, undefined)) children.push(entry);
    for (const [name, node] of await this.linked(resolved, children)) {
      const path = joinPath(dir, name);
      yield [path, node];
      if (node.type === 'dir') yield* this.descendants(view, path);
    }
  }

  /**
   * Entries of `resolved` as its namespace shows them: hard-linked files through their inode
   * items, read in one batch (`children` yields the names as they are stored).
   */
  linked(resolved: Resolved, entries: readonly [string, VisibleNode][]): Promise<[string, VisibleNode][]> {
    return seenFromAll(this.meta, resolved.view, entries);
  }

  /**
   * The merged children of a resolved directory in name order: for each name the first source
   * that has it wins, and a whiteout there hides the name. Mount points show as directories.
   * A hard-linked file is yielded as its name is stored; `linked` reads it through its inode.
   */
  async *children(resolved: Resolved, after: string | undefined, reading: PartitionReading = {}): AsyncGenerator<[string, VisibleNode]> {
    const view = resolved.view;
    const sources: { ns: NamespaceId; dir: string }[] = [];
    if (view.top && (resolved.top?.type === 'dir' || resolved.path === '/')) sources.push({ ns: view.top, dir: resolved.path });
    if (resolved.children.lowerPath !== null) {
      for (const ns of resolved.children.activeLowers) sources.push({ ns, dir: sourcePath(resolved.children, ns) });
    }
    const mountNames = resolved.mount ? [] : view.mounts.filter((m) => parentOf(m.target) === resolved.path && m.target !== '/').map((m) => baseName(m.target));
    const iterators = sources.map((s) => this.partition(view.tenant, s.ns, s.dir, after, reading));
    const heads: ([string, Node] | undefined)[] = await Promise.all(iterators.map(async (it) => (await it.next()).value ?? undefined));
    const mounts = mountNames.filter((n) => after === undefined || compareNames(n, after) > 0).sort(compareNames);
    for (;;) {
      let name: string | undefined;
      for (const h of heads) if (h && (name === undefined || compareNames(h[0], name) < 0)) name = h[0];
      if (mounts.length && (name === undefined || compareNames(mounts[0], name) <= 0)) {
        const mountName = mounts.shift()!;
        if (name === mountName) await this.advancePast(heads, iterators, mountName);
        yield [mountName, { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, etag: 'mountpoint' }];
        continue;
      }
      if (name === undefined) return;
      let winner: Node | undefined;
      for (let i = 0; i < heads.length; i++) {
        if (heads[i]?.[0] === name && winner === undefined) winner = heads[i]![1];
      }
      await this.advancePast(heads, iterators, name);
      if (winner && winner.type !== 'whiteout') yield [name, winner];
    }
  }

  private async advancePast(heads: ([string, Node] | undefined)[], iterators: AsyncGenerator<[string, Node]>[], name: string) {
    for (let i = 0; i < heads.length; i++) {
      if (heads[i]?.[0] === name) heads[i] = (await iterators[i].next()).value ?? undefined;
    }
  }

  /** All nodes of one directory in one namespace after `after`, in name order, page by page. */
  async *partition(tenant: string, ns: NamespaceId, dir: string, after?: string, reading: PartitionReading = {}): AsyncGenerator<[string, Node]> {
    if (isPacked(ns)) {
      const key = keys.pack(tenant, ns, dir);
      const attrs = reading.resolver ? await reading.resolver.item(key) : (await this.meta.get(key))?.attrs;
      if (!attrs) return;
      const pack = packFromAttrs(attrs);
      if (!pack.split) {
        yield* packEntries(pack, after);
        return;
      }
    }
    const pk = keys.nodePartition(tenant, ns, dir);
    let from = after;
    for (;;) {
      const page = await this.meta.query(pk, { after: from, limit: reading.pageSize ?? DEFAULT_PAGE_SIZE });
      for (const item of page.items) yield [item.sk, nodeFromAttrs(item.attrs)];
      if (!page.last) return;
      from = page.last;
    }
  }
}

/** How a listing reads a directory's partitions: pages of `pageSize`, packs from `resolver`'s batches. */
interface PartitionReading {
  readonly pageSize?: number;
  readonly resolver?: Resolver;
}

export function encodeCursor(name: string): string {
  return Buffer.from(name).toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString();
  if (!name || encodeCursor(name) !== cursor) throw new InvalidInputError('cursor is not one this API handed out');
  return name;
}
