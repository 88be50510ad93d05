import type { Readable } from 'node:stream';
import { ConcurrentChangeError, ConflictError, StrataError, ForbiddenError, FsError, InvalidInputError, NotFoundError, PreconditionFailedError, TransactionConditionError } from '../errors.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import { isWithin, joinPath, normalizePath, parentOf, rebase } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import { itemId, MAX_TRANSACTION_OPS, type Condition, type ItemKey, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import { openCheck, statsChange } from './stats.js';
import { quotaChange, quotaRefusal } from './quotas.js';
import type { ChangeFeed, FeedChange } from './change-feed.js';
import { inodeToAttrs, nameNode, newEtag, nodeToAttrs, spliceExtents, truncateExtents, type DirNode, type FileMeta, type FileNode, type Node, type VisibleNode } from './nodes.js';
import { type Proof, proofConditions, resolveIfPresent, Resolver, type Resolved } from './resolver.js';
import { type LandedWrite, WarmPaths } from './warm-paths.js';
import { statOf, type TreeReader, type FileStat } from './tree-read.js';
import { checkFileBytes, DEFAULT_MAX_FILE_BYTES } from './limits.js';
import { InodeLinks, NO_INODE_CHANGE, type ImageNames } from './inode-links.js';
import { ATTEMPTS, unchanged } from './write-conditions.js';
import type { View } from './view.js';

export interface WritePreconditions {
  /** The current ETag must equal this (HTTP If-Match). */
  readonly ifMatch?: string;
  /** '*': the path must not exist yet (HTTP If-None-Match: *). */
  readonly ifNoneMatch?: string;
}

export interface SetAttributes {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly mtime?: number;
}

/** How long a directory being removed or renamed refuses new children; an older mark is a crash's leftover. */
const CLOSING_MS = 60_000;

/** A file with more extents than this is rewritten into one object on its next write. */
export const MAX_EXTENTS = 256;
/** A cached view whose proof failed: the caller looks the container up afresh (nothing was written). */
export class StaleViewError extends Error {
  /** `afterUpload`: found by the transaction, once the body was read (a stream cannot be sent again). */
  constructor(readonly afterUpload = false) {
    super('the cached container record is stale');
  }
}

/** Appends retry until they land; 200 rounds bound the wait under a storm of writers. */
const APPEND_ATTEMPTS = 200;

/**
 * The write side of a file tree. Every change is one metadata transaction whose conditions
 * pin what the change was computed from (the node's ETag, or its absence), so concurrent
 * writers cannot lose each other's updates: the loser re-resolves and tries again.
 * New bytes go to fresh blob keys before the transaction, so a crash leaves only an orphan.
 */
export class TreeWriter {
  /** The last write of each path here: where the next write of it starts. */
  private readonly warm = new WarmPaths();

  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly reader: TreeReader,
    private readonly feed: ChangeFeed,
    private readonly clock: () => number = Date.now,
    private readonly maxFileBytes: number = DEFAULT_MAX_FILE_BYTES,
  ) {
    this.links = new InodeLinks(meta, (view, dir) => this.topSubtree(view, dir));
  }

  private readonly links: InodeLinks;

  /** Creates or replaces a file with `body`; follows a symlink at the path like open(2). */
  async writeFile(view: View, rawPath: string, body: Readable | Buffer | { readonly copyOf: string }, options: WritePreconditions & Partial<FileMeta> = {}, proof?: Proof): Promise<FileStat> {
    const path = normalizePath(rawPath);
    // Cheap checks first, so a doomed write does not upload anything.
    const first = this.warm.guess(view, path, options) ?? (await this.prepare(view, path, true, options, proof));
    // The object belongs to the namespace the node goes into (a volume's, below a mount), so
    // that namespace's sweep sees the node that points at it.
    const target = this.targetFor(first);
    const key = blobKeys.namespaceObject(view.tenant, target);
    // An upload finished elsewhere (a presigned PUT) is adopted by a server-side copy.
    const { size } = 'copyOf' in body ? await this.blobs.copy(body.copyOf, key) : await this.blobs.put(key, body);
    let landed: LandedWrite | undefined;
    try {
      const stat = await this.retry(
        view,
        path,
        true,
        async (r) => {
          this.checkPreconditions(r, options);
          this.checkSameTarget(r, target);
          if (r.node?.type === 'dir') throw new FsError('EISDIR', `is a directory: ${r.absolutePath}`);
          const previous = r.node?.type === 'file' ? r.node : undefined;
          const node: FileNode = {
            type: 'file',
            mode: options.mode ?? previous?.mode ?? 0o644,
            uid: options.uid ?? previous?.uid ?? 0,
            gid: options.gid ?? previous?.gid ?? groupFor(r),
            mtime: options.mtime ?? this.clock(),
            etag: newEtag(),
            overLower: r.lower !== undefined || undefined,
            size,
            extents: size > 0 ? [[key, 0, size]] : [],
          };
          landed = { r, node };
          return this.putFile(r, node, proof);
        },
        ATTEMPTS,
        first,
      );
      this.warm.remember(view, path, landed);
      return stat;
    } catch (error) {
      await this.writeFailed(view, path, key, error);
      throw error;
    }
  }

  /**
   * Writes `body` at `position` of an existing file ('end' appends). Only the new bytes are
   * stored: the rest of the file keeps pointing at the blobs it came from, lower layers included.
   */
  async writeRange(view: View, rawPath: string, position: number | 'end', body: Readable | Buffer, options: WritePreconditions = {}, proof?: Proof): Promise<FileStat> {
    const path = normalizePath(rawPath);
    if (position !== 'end' && (!Number.isSafeInteger(position) || position < 0)) throw new InvalidInputError('offset must be a non-negative integer');
    const first = this.warm.guess(view, path, options) ?? (await this.prepare(view, path, true, options, proof));
    if (!first.node) throw new NotFoundError(`no such file: ${first.absolutePath}`);
    const target = this.targetFor(first);
    const key = blobKeys.namespaceObject(view.tenant, target);
    const { size: length } = await this.blobs.put(key, body);
    let landed: LandedWrite | undefined;
    try {
      // An append without preconditions only needs its turn: it keeps trying while others land.
      const unconditional = position === 'end' && options.ifMatch === undefined && options.ifNoneMatch === undefined;
      const stat = await this.retry(
        view,
        path,
        true,
        async (r) => {
          this.checkPreconditions(r, options);
          this.checkSameTarget(r, target);
          const file = this.requireFile(r);
          // A write of nothing changes nothing, not even the mtime (as write(2) with 0 bytes).
          if (length === 0) return statOf(r.absolutePath, file);
          const at = position === 'end' ? file.size : position;
          const extents = spliceExtents(file.extents, file.size, at, [key, 0, length]);
          const size = Math.max(file.size, at + length);
          const node: FileNode = { ...file, size, extents, etag: newEtag(), mtime: this.clock(), overLower: r.lower !== undefined || undefined };
          const next = extents.length > MAX_EXTENTS ? await this.compact(r.view, node) : node;
          landed = { r, node: next };
          return this.putFile(r, next, proof);
        },
        unconditional ? APPEND_ATTEMPTS : ATTEMPTS,
        // A write of nothing commits nothing, so nothing would confirm a warm guess: resolve.
        length === 0 ? undefined : first,
      );
      if (length === 0) await this.blobs.delete([key]).catch(() => undefined);
      else this.warm.remember(view, path, landed);
      return stat;
    } catch (error) {
      await this.writeFailed(view, path, key, error);
      throw error;
    }
  }

  /** Truncates or extends (with zeros) a file; no bytes are copied. */
  async truncate(view: View, rawPath: string, size: number, options: WritePreconditions = {}): Promise<FileStat> {
    if (!Number.isSafeInteger(size) || size < 0) throw new InvalidInputError('size must be a non-negative integer');
    return this.retry(view, normalizePath(rawPath), true, async (r) => {
      this.checkPreconditions(r, options);
      const file = this.requireFile(r);
      const node: FileNode = {
        ...file,
        size,
        extents: truncateExtents(file.extents, file.size, size),
        etag: newEtag(),
        mtime: this.clock(),
        overLower: r.lower !== undefined || undefined,
      };
      return this.putFile(r, node);
    });
  }

  async mkdir(view: View, rawPath: string, options: Partial<FileMeta> & { parents?: boolean } = {}): Promise<FileStat> {
    const path = normalizePath(rawPath);
    if (options.parents) {
      for (const p of ancestorsOf(path)) {
        await this.mkdir(view, p, { ...options, parents: false }).catch((e) => {
          if (!(e instanceof FsError && e.code === 'EEXIST')) throw e;
        });
      }
    }
    return this.retry(view, path, false, async (r) => {
      if (r.node) {
        if (options.parents && r.node.type === 'dir') return statOf(r.absolutePath, r.node);
        throw new FsError('EEXIST', `already exists: ${r.absolutePath}`);
      }
      // Entries a crash left below a deleted directory must not come back with the new one.
      if (!r.top || r.top.type === 'whiteout') await this.dropTopSubtree(r.view, r.path, { countBytes: false, guard: unchanged(r) });
      // A directory made where a lower one was deleted must not show the old contents: opaque.
      const node: DirNode = {
        type: 'dir',
        mode: (options.mode ?? 0o755) | (setgidParent(r) ? 0o2000 : 0),
        uid: options.uid ?? 0,
        gid: options.gid ?? groupFor(r),
        mtime: options.mtime ?? this.clock(),
        etag: newEtag(),
        opaque: r.lower !== undefined || undefined,
        overLower: r.lower !== undefined || undefined,
      };
      return this.putNode(r, node);
    });
  }

  async symlink(view: View, rawPath: string, target: string, options: Partial<FileMeta> = {}): Promise<FileStat> {
    if (!target || target.includes('\0') || Buffer.byteLength(target) > 4096) throw new InvalidInputError('symlink target must be 1-4096 bytes without NUL');
    return this.retry(view, normalizePath(rawPath), false, async (r) => {
      if (r.node) throw new FsError('EEXIST', `already exists: ${r.absolutePath}`);
      return this.putNode(r, {
        type: 'symlink',
        target,
        mode: 0o777,
        uid: options.uid ?? 0,
        gid: options.gid ?? groupFor(r),
        mtime: options.mtime ?? this.clock(),
        etag: newEtag(),
        overLower: r.lower !== undefined || undefined,
      });
    });
  }

  /**
   * Hard link: both names then share one file, its content and metadata (as overlayfs with
   * index=on keeps them). A symlink is linked as a copy of itself (a symlink never changes, so
   * only its nlink tells them apart); a directory cannot be linked (EPERM).
   */
  async link(view: View, rawExisting: string, rawPath: string): Promise<FileStat> {
    const existing = normalizePath(rawExisting);
    const path = normalizePath(rawPath);
    return this.retry(view, path, false, async (r) => {
      const source = await new Resolver(this.meta).resolve(view, existing, { follow: false });
      if (!source.node) throw new NotFoundError(`no such file or directory: ${existing}`);
      if (r.node) throw new FsError('EEXIST', `already exists: ${r.absolutePath}`);
      if (source.node.type === 'dir') throw new FsError('EPERM', `directories cannot be hard-linked: ${existing}`);
      if (source.view.top !== r.view.top) throw new InvalidInputError('cannot hard-link across a volume mount');
      const tenant = view.tenant;
      const ns = r.view.top!;
      // A new symlink with the same target and owner (and so a new mtime).
      if (source.node.type === 'symlink') return this.putNode(r, { ...source.node, mtime: this.clock(), etag: newEtag(), overLower: r.lower !== undefined || undefined });
      const file = source.node;
      const name = (at: Resolved, inode: string): WriteOp => ({
        op: 'put',
        item: { ...keys.node(tenant, ns, at.path), attrs: nodeToAttrs(nameNode(inode, at.lower !== undefined)) },
        conditions: unchanged(at),
      });
      if (file.inode) {
        const change = await this.links.change(source, { ...file, etag: newEtag() }, { add: 1, dropSelf: false });
        await this.transact(r, [...change.ops, name(r, file.inode)], change.sizeDelta, { others: [source, ...change.others], change: feedChange(r, file) });
        return statOf(r.absolutePath, { ...file, nlink: change.nlink });
      }
      // A file's first link: its content moves into an inode item that both names then share.
      const inode = newInodeId();
      const shared: FileNode = { ...file, etag: newEtag() };
      const ops: WriteOp[] = [{ op: 'put', item: { ...keys.inode(tenant, ns, inode), attrs: inodeToAttrs(shared, 2, 2) }, conditions: [{ kind: 'absent' }] }, name(source, inode), name(r, inode)];
      const ownBytes = source.top?.type === 'file' ? source.top.size : 0;
      await this.transact(r, ops, file.size - ownBytes, { others: [source], change: feedChange(r, shared) });
      return statOf(r.absolutePath, { ...shared, inode, nlink: 2 });
    }).catch(async (error: unknown) => {
      // link(2) looks the existing name up before the new one: its error wins.
      if (error instanceof NotFoundError || error instanceof FsError) {
        const source = await resolveIfPresent(this.meta, view, existing);
        if (!source?.node) throw (await this.parentError(view, [parentOf(existing)])) ?? new NotFoundError(`no such file or directory: ${existing}`);
      }
      throw error;
    });
  }

  /** chmod, chown and utimes: metadata-only copy-up, the data is never copied. */
  async setAttributes(view: View, rawPath: string, attributes: SetAttributes, options: WritePreconditions = {}): Promise<FileStat> {
    for (const [name, value] of Object.entries(attributes)) {
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new InvalidInputError(`${name} must be a non-negative integer`);
    }
    if (attributes.mode !== undefined && attributes.mode > 0o7777) throw new InvalidInputError('mode must be at most 0o7777');
    return this.retry(view, normalizePath(rawPath), true, async (r) => {
      this.checkPreconditions(r, options);
      if (!r.node) throw new NotFoundError(`no such file or directory: ${r.absolutePath}`);
      if (r.path === '/') throw new InvalidInputError('the root directory keeps its attributes');
      if (this.isClosing(r.top)) throw new ConflictError(`${r.absolutePath} is being removed or renamed; try again shortly`);
      const changes = {
        mode: attributes.mode ?? (attributes.uid !== undefined || attributes.gid !== undefined ? modeAfterChown(r.node) : r.node.mode),
        uid: attributes.uid ?? r.node.uid,
        gid: attributes.gid ?? r.node.gid,
        mtime: attributes.mtime ?? r.node.mtime,
        etag: newEtag(),
      };
      // A hard link's names share their metadata: it changes in the inode.
      if (r.node.type === 'file' && r.node.inode) return this.putFile(r, { ...r.node, ...changes });
      const base: VisibleNode = r.top?.type === r.node.type ? (r.top as VisibleNode) : stripDirLinks(r.node);
      const node = { ...base, ...changes, overLower: r.lower !== undefined || undefined } as VisibleNode;
      return this.putNode(r, node);
    });
  }

  /**
   * Removes a file, symlink or empty directory (rmdir semantics), or a whole tree with
   * `recursive`. Lower content is hidden by a whiteout; the container's own copies are dropped.
   */
  async remove(view: View, rawPath: string, options: WritePreconditions & { recursive?: boolean } = {}): Promise<void> {
    const path = normalizePath(rawPath);
    if (path === '/') throw new InvalidInputError('the root directory cannot be removed');
    let vacated: Resolved | undefined;
    await this.retry(view, path, false, async (r) => {
      this.checkPreconditions(r, options);
      if (!r.node) throw new NotFoundError(`no such file or directory: ${r.absolutePath}`);
      if (r.mount && r.path === '/') throw new ConflictError(`${r.absolutePath} is a volume mount point`);
      if (r.node.type !== 'dir') {
        const sizeDelta = r.top?.type === 'file' ? -r.top.size : 0;
        // A hard link's other names keep the file; the last one takes it along.
        const unlinked = r.node.type === 'file' && r.node.inode ? await this.links.change(r, { ...r.node, etag: newEtag() }, { add: 0, dropSelf: true }) : NO_INODE_CHANGE;
        await this.transact(r, [this.vacate(r, unchanged(r)), ...unlinked.ops], sizeDelta + unlinked.sizeDelta, {
          others: unlinked.others,
          change: { kind: 'deleted', path: r.path, type: r.node.type },
          enforceQuota: false,
        });
        return;
      }
      // Checked before the freeze too, which copies up parents: a refused rmdir leaves no trace.
      if (!options.recursive && !(await this.reader.isEmpty(r))) throw new FsError('ENOTEMPTY', `directory not empty: ${r.absolutePath}`);
      // A directory is frozen first, so nothing lands below it between the emptiness check,
      // the removal of the container's own entries and the final whiteout.
      const closed = await this.close(r);
      try {
        if (!options.recursive && !(await this.reader.isEmpty(closed))) throw new FsError('ENOTEMPTY', `directory not empty: ${r.absolutePath}`);
        // The container's own files go while frozen; its whiteouts stay until the directory is
        // gone, so a failure here can never bring deleted lower files back.
        // Counted while they still show: rm -r unlinks the image's names below it one by one too.
        const imageNames = options.recursive ? await this.links.imageNamesBelow(closed) : new Map<string, ImageNames>();
        const names = await this.dropTopSubtree(closed.view, closed.path, { countBytes: true, guard: unchanged(closed), only: (node) => node.type !== 'whiteout' });
        await this.transact(closed, [this.vacate(closed, unchanged(closed))], 0, { change: { kind: 'deleted', path: closed.path, type: 'dir' }, enforceQuota: false });
        vacated = closed;
        await this.links.unlinkNames(closed.view, names, imageNames);
      } catch (error) {
        await this.reopen(closed);
        throw error;
      }
    });
    if (vacated) {
      const guard: Condition[] = vacated.lower ? [{ kind: 'equals', field: 't', value: 'w' }] : [{ kind: 'absent' }];
      await this.dropTopSubtree(vacated.view, vacated.path, { countBytes: false, guard }).catch(() => undefined);
    }
  }

  /**
   * Renames a file, symlink or directory. Directories never fail with EXDEV: the new path
   * redirects to where the lower layers keep the contents, and the container's own entries move.
   */
  async rename(view: View, rawFrom: string, rawTo: string): Promise<FileStat> {
    const from = normalizePath(rawFrom);
    const to = normalizePath(rawTo);
    if (from === '/' || to === '/') throw new InvalidInputError('the root directory cannot be renamed');
    let moved: { view: View; from: string; vacated: boolean } | undefined;
    const stat = await this.retry(view, to, false, async (target) => {
      const resolver = new Resolver(this.meta);
      const source = await resolver.resolve(view, from, { follow: false });
      if (!source.node) throw new NotFoundError(`no such file or directory: ${from}`);
      if (source.view.top !== target.view.top) throw new InvalidInputError('cannot rename across a volume mount');
      if (source.mount && source.path === '/') throw new ConflictError(`${from} is a volume mount point`);
      if (source.absolutePath === target.absolutePath) return statOf(target.absolutePath, source.node);
      // On resolved paths, after both exist (as rename(2) answers ENOENT first): through a symlink, `to` may lie inside `from`.
      if (isWithin(target.path, source.path)) throw new FsError('EINVAL', `cannot move ${from} into itself`);
      // A target above the source is never empty: it holds the source (rename(2) checks this before types).
      if (isWithin(source.path, target.path)) throw new FsError('ENOTEMPTY', `directory not empty: ${to}`);
      const node = source.node;
      if (target.node) {
        if (node.type === 'dir' && target.node.type !== 'dir') throw new FsError('ENOTDIR', `not a directory: ${to}`);
        if (node.type !== 'dir' && target.node.type === 'dir') throw new FsError('EISDIR', `is a directory: ${to}`);
        if (target.node.type === 'dir' && !(await this.reader.isEmpty(target))) throw new FsError('ENOTEMPTY', `directory not empty: ${to}`);
      }
      // Two names of one file: rename(2) does nothing and succeeds.
      if (node.type === 'file' && node.inode && target.node?.type === 'file' && target.node.inode === node.inode) return statOf(target.absolutePath, target.node);
      let placed: VisibleNode;
      if (node.type === 'file' && node.inode) {
        placed = nameNode(node.inode, target.lower !== undefined);
      } else if (node.type === 'dir') {
        const hasLowerContent = source.children.lowerPath !== null && source.children.activeLowers.length > 0;
        placed = {
          ...stripDirLinks(node),
          etag: newEtag(),
          overLower: target.lower !== undefined || undefined,
          opaque: !hasLowerContent && target.lower !== undefined ? true : undefined,
          redirect: hasLowerContent ? source.children.lowerPath! : undefined,
        } as DirNode;
      } else {
        placed = { ...node, etag: newEtag(), overLower: target.lower !== undefined || undefined };
      }
      const tenant = view.tenant;
      const ns = target.view.top!;
      const movedBytes = node.type === 'file' && !node.inode ? node.size : 0;
      const sizeDelta = movedBytes - (source.top?.type === 'file' ? source.top.size : 0) - (target.top?.type === 'file' ? target.top.size : 0);
      if (node.type !== 'dir') {
        // A linked name moves alone (an image's link is copied up with its other names first);
        // a linked name replaced at the target is one name fewer for its file.
        const moving = node.type === 'file' && node.inode ? await this.links.change(source, { ...node, etag: newEtag() }, { add: 1, dropSelf: true }) : NO_INODE_CHANGE;
        const replaced = target.node?.type === 'file' && target.node.inode ? await this.links.change(target, { ...target.node, etag: newEtag() }, { add: 0, dropSelf: true }) : NO_INODE_CHANGE;
        const ops: WriteOp[] = [
          { op: 'put', item: { ...keys.node(tenant, ns, target.path), attrs: nodeToAttrs(placed) }, conditions: unchanged(target) },
          this.vacate(source, unchanged(source)),
          ...moving.ops,
          ...replaced.ops,
        ];
        await this.transact(target, ops, sizeDelta + moving.sizeDelta + replaced.sizeDelta, {
          others: [source, ...moving.others, ...replaced.others],
          change: { ...feedChange(target, node.type === 'file' && node.inode ? node : placed), kind: 'renamed', from: source.path },
        });
        return statOf(target.absolutePath, node.type === 'file' && node.inode ? { ...node, nlink: moving.nlink } : placed);
      }
      // Both directories are frozen while the container's own entries are copied, so the copy is
      // complete and nothing is written below either of them until the rename commits.
      const closedSource = await this.close(source);
      let closedTarget: Resolved | undefined;
      let copied: number | undefined;
      try {
        if (target.node?.type === 'dir') {
          closedTarget = await this.close(target);
          if (!(await this.reader.isEmpty(closedTarget))) throw new FsError('ENOTEMPTY', `directory not empty: ${to}`);
        }
        // Freezing may have copied shared parents up: resolve the target again, and start over if it changed.
        const targetNow = closedTarget ?? (await this.unchangedSince(target));
        // Whiteouts of an empty target, or what a crash left, must not hide the moved contents.
        await this.dropTopSubtree(targetNow.view, target.path, { countBytes: false, guard: unchanged(targetNow) });
        copied = await this.copyTopSubtree(targetNow.view, source.path, target.path, unchanged(targetNow));
        const ops: WriteOp[] = [
          { op: 'put', item: { ...keys.node(tenant, ns, target.path), attrs: nodeToAttrs(placed) }, conditions: unchanged(targetNow) },
          this.vacate(closedSource, unchanged(closedSource)),
        ];
        await this.transact(targetNow, ops, sizeDelta, { others: [closedSource], change: { kind: 'renamed', path: target.path, type: 'dir', etag: placed.etag, from: source.path } });
      } catch (error) {
        // Undo: the copies go (only while the target is still as it was), the marks are lifted.
        if (copied !== undefined) await this.dropTopSubtree(target.view, target.path, { countBytes: false, guard: unchanged(closedTarget ?? target) }).catch(() => undefined);
        await this.reopen(closedSource);
        if (closedTarget) await this.reopen(closedTarget);
        throw error;
      }
      moved = { view: closedSource.view, from: source.path, vacated: source.lower !== undefined };
      return statOf(target.absolutePath, placed);
    }).catch(async (error: unknown) => {
      // rename(2) resolves both parents before anything else, `from`'s first: its error wins.
      if (error instanceof NotFoundError || error instanceof FsError) throw (await this.parentError(view, [parentOf(from), parentOf(to)])) ?? error;
      throw error;
    });
    // The old entries are hidden now; they go only while their old path is still vacated.
    if (moved) {
      const guard: Condition[] = moved.vacated ? [{ kind: 'equals', field: 't', value: 'w' }] : [{ kind: 'absent' }];
      await this.dropTopSubtree(moved.view, moved.from, { countBytes: false, guard }).catch(() => undefined);
    }
    return stat;
  }

  // --- helpers -------------------------------------------------------------------------------

  /** The first of `dirs` that is missing or not a directory, as the error resolving through it gives. */
  private async parentError(view: View, dirs: readonly string[]): Promise<StrataError | undefined> {
    for (const dir of dirs) {
      try {
        const r = await new Resolver(this.meta).resolve(view, dir, { follow: true });
        if (!r.node) return new NotFoundError(`no such file or directory: ${dir}`);
        if (r.node.type !== 'dir') return new FsError('ENOTDIR', `not a directory: ${dir}`);
      } catch (error) {
        if (error instanceof StrataError) return error;
        throw error;
      }
    }
    return undefined;
  }

  /**
   * Resolves for a change and refuses read-only views and mounts before any byte moves. A
   * `proof` of a cached view is fetched in the same round trip and must hold (StaleViewError).
   */
  private async prepare(view: View, path: string, follow: boolean, options: WritePreconditions, proof?: Proof): Promise<Resolved> {
    const resolver = new Resolver(this.meta);
    const outcome = await resolver.resolve(view, path, { follow, extra: proof ? [proof.key] : [] }).then(
      (resolved) => ({ resolved }),
      (error: unknown) => ({ error }),
    );
    // Checked even when the path failed: on the right container it might not.
    if (proof && resolver.confirms(proof) === false) throw new StaleViewError();
    if ('error' in outcome) throw outcome.error;
    const r = outcome.resolved;
    this.checkWritable(view, r);
    this.checkPreconditions(r, options);
    return r;
  }

  private checkWritable(view: View, r: Resolved) {
    if (view.readOnly || r.view.readOnly || r.mount?.readOnly || !r.view.top) throw new ForbiddenError(`${r.absolutePath} is read-only`);
    if (r.synthetic) throw new ConflictError(`${r.absolutePath} is a mount point`);
    const closing = r.ancestors.find((a) => this.isClosing(a.top));
    if (closing) throw new ConflictError(`${closing.path} is being removed or renamed; try again shortly`);
  }

  /** The namespace a resolved write lands in. */
  private targetFor(r: Resolved): NamespaceId {
    if (!r.view.top) throw new ForbiddenError(`${r.absolutePath} is read-only`);
    return r.view.top;
  }

  /** A retry that resolved into another namespace (a symlink changed meanwhile) would point across prefixes. */
  private checkSameTarget(r: Resolved, target: NamespaceId): void {
    if (r.view.top !== target) throw new ConflictError(`${r.absolutePath} moved to another tree during the write; try again`);
  }

  private checkPreconditions(r: Resolved, options: WritePreconditions) {
    if (options.ifNoneMatch === '*' && r.node) throw new PreconditionFailedError(`${r.absolutePath} already exists`);
    if (options.ifNoneMatch && options.ifNoneMatch !== '*' && r.node && r.node.etag === options.ifNoneMatch) {
      throw new PreconditionFailedError(`${r.absolutePath} matches If-None-Match`);
    }
    if (options.ifMatch !== undefined) {
      if (!r.node) throw new PreconditionFailedError(`${r.absolutePath} does not exist`);
      if (options.ifMatch !== '*' && options.ifMatch !== r.node.etag) throw new PreconditionFailedError(`${r.absolutePath} has changed (ETag ${r.node.etag})`);
    }
  }

  private requireFile(r: Resolved): FileNode {
    if (!r.node) throw new NotFoundError(`no such file: ${r.absolutePath}`);
    if (r.node.type !== 'file') throw new FsError('EISDIR', `not a file: ${r.absolutePath}`);
    return r.node;
  }

  /**
   * Runs `change` until its transaction is not beaten by a concurrent one, each time on a fresh
   * resolution, except the first when `first` is given: a write resolves its path before its
   * bytes move, as open(2) does, and its transaction's conditions catch any change since.
   */
  private async retry<T>(view: View, path: string, follow: boolean, change: (r: Resolved) => Promise<T>, attempts = ATTEMPTS, first?: Resolved): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const r = attempt === 1 && first ? first : await new Resolver(this.meta).resolve(view, path, { follow });
      this.checkWritable(view, r);
      try {
        return await change(r);
      } catch (error) {
        const raced = error instanceof TransactionConditionError || error instanceof ConcurrentChangeError;
        if (!raced || attempt >= attempts) {
          if (raced) throw new ConflictError(`${path} is being changed concurrently; try again`);
          throw error;
        }
        // Jittered, so that writers who collided do not collide again on the next round.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * Math.min(attempt, 10)));
      }
    }
  }

  /**
   * After a failed write of bytes stored under `key`: the path's warm guess goes, and the object
   * too, but only when the change surely did not commit; an unknown outcome (a timeout, a
   * cancelled call) may have committed, so its object is left for the sweep.
   */
  private async writeFailed(view: View, path: string, key: string, error: unknown): Promise<void> {
    this.warm.forget(view, path);
    if (error instanceof StrataError || error instanceof StaleViewError) await this.blobs.delete([key]).catch(() => undefined);
  }

  /** Writes a file's new state: its own node, or for a hard-linked file the inode its names share. */
  private async putFile(r: Resolved, next: FileNode, proof?: Proof): Promise<FileStat> {
    if (r.node?.type !== 'file' || !r.node.inode) return this.putNode(r, next, proof);
    checkFileBytes(next.size, 'file size', this.maxFileBytes);
    const change = await this.links.change(r, next, { add: 0, dropSelf: false });
    await this.transact(r, change.ops, change.sizeDelta, { others: change.others, proof, change: feedChange(r, next) });
    return statOf(r.absolutePath, { ...next, inode: r.node.inode, nlink: change.nlink });
  }

  private async putNode(r: Resolved, node: VisibleNode, proof?: Proof): Promise<FileStat> {
    if (node.type === 'file') checkFileBytes(node.size, 'file size', this.maxFileBytes);
    const previousBytes = r.top?.type === 'file' ? r.top.size : 0;
    const bytes = node.type === 'file' ? node.size : 0;
    await this.transact(r, [{ op: 'put', item: { ...keys.node(r.view.tenant, r.view.top!, r.path), attrs: nodeToAttrs(node) }, conditions: unchanged(r) }], bytes - previousBytes, {
      proof,
      change: feedChange(r, node),
    });
    return statOf(r.absolutePath, node);
  }

  /**
   * One transaction: the change; copy-up of parent directories the top layer lacks (keeping
   * their owner, mode and mtime, as overlayfs does); a check that the parents it has are
   * unchanged, so no write lands in a directory being renamed or deleted; the quota and the size
   * counter; and the change's entry in the tree's feed, whose number is taken again (the rest
   * as it is) when a concurrent change took it first.
   */
  private async transact(r: Resolved, ops: WriteOp[], sizeDelta: number, extra: ChangeExtras = {}): Promise<void> {
    const tenant = r.view.tenant;
    const ns = r.view.top!;
    const all: WriteOp[] = [...ops];
    const touched = new Set(ops.map((op) => itemId(op.op === 'put' ? op.item : op.key)));
    for (const resolved of [r, ...(extra.others ?? [])]) {
      for (const a of resolved.ancestors) {
        if (a.synthetic) continue;
        const key = keys.node(tenant, ns, a.path);
        if (touched.has(itemId(key))) continue;
        touched.add(itemId(key));
        if (a.top?.type === 'dir') {
          all.push({ op: 'check', key, conditions: [{ kind: 'equals', field: 'e', value: a.top.etag }] });
        } else {
          const copy: DirNode = { ...stripDirLinks(a.node), etag: newEtag(), overLower: true };
          all.push({ op: 'put', item: { ...key, attrs: nodeToAttrs(copy) }, conditions: [{ kind: 'absent' }] });
        }
      }
    }
    // The cached container record the write went by must still be the one its name gives.
    const proof = extra.proof;
    const proofAt = proof ? all.push({ op: 'check', key: proof.key, conditions: proofConditions(proof) }) - 1 : -1;
    const entries = entryDelta(all);
    const quota = r.view.quota;
    const quotaAt = quota ? all.push(quotaChange(quota, sizeDelta, entries, { enforce: extra.enforceQuota ?? true })) - 1 : -1;
    const counterAt = all.push(statsChange(tenant, ns, sizeDelta)) - 1;
    const owner = extra.change ? r.view.feed : undefined;
    if (all.length + (owner ? 1 : 0) > MAX_TRANSACTION_OPS) throw new InvalidInputError('path is too deep to change in one step');
    try {
      await (owner ? this.feed.commit(tenant, owner, all, { ...extra.change!, ...(r.view.volume ? { volume: r.view.volume } : {}) }) : this.meta.transact(all));
    } catch (error) {
      const failed = error instanceof TransactionConditionError ? error.failedIndexes : [];
      if (failed.includes(proofAt)) throw new StaleViewError(true);
      // If the counter is there, a fork or merge sealed the layer (the container has a new top to
      // look up); if it is gone, so is the container or volume (and its quota item with it).
      if (failed.includes(counterAt)) {
        const counter = all[counterAt] as Extract<WriteOp, { op: 'update' }>;
        if (await this.meta.get(counter.key)) throw new StaleViewError(true);
        throw new NotFoundError('the container or volume no longer exists');
      }
      if (failed.includes(quotaAt)) throw await quotaRefusal(this.meta, quota!, sizeDelta, entries);
      throw error;
    }
  }

  /** Rewrites a fragmented file into one object; the only path where file bytes pass through. */
  private async compact(view: View, node: FileNode): Promise<FileNode> {
    const key = blobKeys.namespaceObject(view.tenant, view.top!);
    const { size } = await this.blobs.put(key, this.reader.extentStream(node.extents));
    return { ...node, extents: size > 0 ? [[key, 0, size]] : [] };
  }

  /**
   * Deletes the top layer's own nodes below `dir` in transactions that each also check `guard`
   * on `dir` itself: they go only while the directory is still in the state the caller saw
   * (frozen, or vacated), so nothing written below a new directory of that name is ever lost.
   * `countBytes` takes their bytes off the size counter in the same transactions.
   */
  private async dropTopSubtree(view: View, dir: string, options: { countBytes: boolean; guard: Condition[]; only?: (node: Node) => boolean }): Promise<Map<string, number>> {
    const tenant = view.tenant;
    const ns = view.top!;
    const doomed: { key: ItemKey; bytes: number }[] = [];
    /** Hard-link names dropped, by inode. */
    const names = new Map<string, number>();
    for await (const [path, node] of this.topSubtree(view, dir)) {
      if (options.only && !options.only(node)) continue;
      doomed.push({ key: keys.node(tenant, ns, path), bytes: node.type === 'file' ? node.size : 0 });
      if (node.type === 'file' && node.linkName) names.set(node.inode!, (names.get(node.inode!) ?? 0) + 1);
    }
    const chunk = MAX_TRANSACTION_OPS - 3;
    for (let i = 0; i < doomed.length; i += chunk) {
      const part = doomed.slice(i, i + chunk);
      const bytes = options.countBytes ? part.reduce((sum, d) => sum + d.bytes, 0) : 0;
      await this.meta.transact([
        { op: 'check', key: keys.node(tenant, ns, dir), conditions: options.guard },
        ...part.map((d): WriteOp => ({ op: 'delete', key: d.key })),
        ...(view.quota ? [quotaChange(view.quota, -bytes, -part.length)] : []),
        // Every change bumps the generation, so a sweep walking meanwhile knows to look again.
        statsChange(tenant, ns, -bytes),
      ]);
    }
    return names;
  }

  /**
   * Copies the top layer's own nodes from below `from` to below `to`, in transactions that also
   * check `guard` on `to` and that each copy lands where nothing is: a write that reached `to`
   * meanwhile is never overwritten (the rename fails and is retried instead). Returns how many.
   */
  private async copyTopSubtree(view: View, from: string, to: string, guard: Condition[]): Promise<number> {
    const tenant = view.tenant;
    const ns = view.top!;
    const puts: WriteOp[] = [];
    for await (const [path, node] of this.topSubtree(view, from)) {
      puts.push({ op: 'put', item: { ...keys.node(tenant, ns, rebase(path, from, to)), attrs: nodeToAttrs(node) }, conditions: [{ kind: 'absent' }] });
    }
    const chunk = MAX_TRANSACTION_OPS - 3;
    for (let i = 0; i < puts.length; i += chunk) {
      const part = puts.slice(i, i + chunk);
      // Booked but not refused: the old entries go once the rename commits, so it adds none in the end.
      await this.meta.transact([
        { op: 'check', key: keys.node(tenant, ns, to), conditions: guard },
        openCheck(tenant, ns),
        ...part,
        ...(view.quota ? [quotaChange(view.quota, 0, part.length, { enforce: false })] : []),
      ]);
    }
    return puts.length;
  }

  /** The op that frees a path: a whiteout where a lower layer has it, else no node at all. */
  private vacate(r: Resolved, conditions: Condition[]): WriteOp {
    const key = keys.node(r.view.tenant, r.view.top!, r.path);
    return r.lower ? { op: 'put', item: { ...key, attrs: nodeToAttrs({ type: 'whiteout', overLower: true }) }, conditions } : { op: 'delete', key, conditions };
  }

  private isClosing(node: Node | undefined): boolean {
    return node?.type === 'dir' && node.closing !== undefined && this.clock() - node.closing < CLOSING_MS;
  }

  /**
   * Freezes a directory for a remove or rename: its top node (copied up if only lower layers
   * have it) is marked closing with a new ETag, which every write below it checks.
   */
  private async close(r: Resolved): Promise<Resolved> {
    if (this.isClosing(r.top)) throw new ConflictError(`${r.absolutePath} is being removed or renamed; try again shortly`);
    const base: DirNode = r.top?.type === 'dir' ? r.top : { ...stripDirLinks(r.node as DirNode), overLower: true };
    const marked: DirNode = { ...base, closing: this.clock(), etag: newEtag() };
    // Freezing copies a lower directory up: one entry more, which a removal must never be refused for.
    await this.transact(r, [{ op: 'put', item: { ...keys.node(r.view.tenant, r.view.top!, r.path), attrs: nodeToAttrs(marked) }, conditions: unchanged(r) }], 0, { enforceQuota: false });
    // Resolved again: the transaction may have copied parents up, and later checks must see them.
    const again = await new Resolver(this.meta).resolve(r.view, r.path, { follow: false });
    if (again.top?.type !== 'dir' || again.top.etag !== marked.etag) throw new TransactionConditionError(`${r.absolutePath} changed while it was being frozen`, [0]);
    return { ...again, absolutePath: r.absolutePath, mount: r.mount };
  }

  /** `r` resolved again (fresh parents), or a retryable conflict if its own node changed meanwhile. */
  private async unchangedSince(r: Resolved): Promise<Resolved> {
    const again = await new Resolver(this.meta).resolve(r.view, r.path, { follow: false });
    const version = (x: Resolved) => (x.top === undefined ? 'absent' : x.top.type === 'whiteout' ? 'whiteout' : x.top.etag);
    if (version(again) !== version(r)) throw new TransactionConditionError(`${r.absolutePath} changed meanwhile`, [0]);
    return { ...again, absolutePath: r.absolutePath, mount: r.mount };
  }

  /** Lifts a closing mark after a refused change; a mark that cannot be lifted expires by itself. */
  private async reopen(closed: Resolved): Promise<void> {
    const node = closed.top as DirNode;
    const { closing: _c, ...open } = node;
    await this.meta
      .transact([
        {
          op: 'put',
          item: { ...keys.node(closed.view.tenant, closed.view.top!, closed.path), attrs: nodeToAttrs({ ...open, etag: newEtag() }) },
          conditions: [{ kind: 'equals', field: 'e', value: node.etag }],
        },
      ])
      .catch(() => undefined);
  }

  /** Every node the top namespace itself holds below `dir`, parents before children. */
  async *topSubtree(view: View, dir: string): AsyncGenerator<[string, Node]> {
    const stack = [dir];
    while (stack.length) {
      const current = stack.pop()!;
      for await (const [name, node] of this.reader.partition(view.tenant, view.top!, current)) {
        const path = joinPath(current, name);
        yield [path, node];
        if (node.type === 'dir') stack.push(path);
      }
    }
  }
}

/** What a transaction carries beside its ops. */
interface ChangeExtras {
  /** Further resolutions whose parents the change also touches (a rename's source). */
  readonly others?: readonly Resolved[];
  /** A cached container record's proof, checked in the transaction. */
  readonly proof?: Proof;
  /** The change as the tree's feed records it; absent for steps of a change that show nothing yet. */
  readonly change?: FeedChange;
  /** Whether the quota may refuse the change: removals never are (they are how a tree gets back under it). */
  readonly enforceQuota?: boolean;
}

/** A change that puts `node` at `r` (added where nothing showed, else modified). */
function feedChange(r: Resolved, node: VisibleNode): FeedChange {
  return { kind: r.node ? 'modified' : 'added', path: r.path, type: node.type, ...(node.type === 'file' ? { size: node.size } : {}), etag: node.etag };
}

function newInodeId(): string {
  return `i${newEtag()}`;
}

function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let p = parentOf(path); p !== '/'; p = parentOf(p)) out.unshift(p);
  return out;
}

/** A directory's copy keeps its metadata but not the opaque or redirect flags of another layer. */
function stripDirLinks<T extends VisibleNode>(node: T): T {
  if (node.type !== 'dir') return node;
  const { opaque: _o, redirect: _r, closing: _c, ...rest } = node as DirNode;
  return rest as T;
}

/**
 * A change of owner drops setuid, and setgid where it means "run as the group" (group exec set),
 * from anything but a directory, as chown(2) does on Linux; a mode given with it is kept as given.
 */
function modeAfterChown(node: VisibleNode): number {
  if (node.type === 'dir') return node.mode;
  const setgid = (node.mode & 0o2000) !== 0 && (node.mode & 0o010) !== 0;
  return node.mode & ~0o4000 & ~(setgid ? 0o2000 : 0);
}

/** Whether the directory a new entry goes into has setgid: then the entry takes its group. */
function setgidParent(r: Resolved): DirNode | undefined {
  const parent = r.ancestors.at(-1)?.node;
  return parent && (parent.mode & 0o2000) !== 0 ? parent : undefined;
}

/** A new entry's group: the creator's (root) unless its directory has setgid, as on Linux. */
function groupFor(r: Resolved): number {
  return setgidParent(r)?.gid ?? 0;
}

/** Entries a change adds to its layer: node items it creates, less those it deletes (parents copied up count). */
function entryDelta(ops: readonly WriteOp[]): number {
  let delta = 0;
  for (const op of ops) {
    if (op.op === 'put' && op.item.pk.includes('#n#') && op.conditions?.some((c) => c.kind === 'absent')) delta++;
    else if (op.op === 'delete' && op.key.pk.includes('#n#')) delta--;
  }
  return delta;
}
