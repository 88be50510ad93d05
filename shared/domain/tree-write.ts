import type { Readable } from 'node:stream';
import {
  ConflictError,
  StrataError,
  ForbiddenError,
  FsError,
  InvalidInputError,
  NotFoundError,
  PreconditionFailedError,
  TransactionConditionError,
} from '../errors.js';
import { blobKeys, keys } from '../keys.js';
import { isWithin, joinPath, normalizePath, parentOf, rebase } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import { itemId, MAX_TRANSACTION_OPS, type Condition, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import { statsChange } from './stats.js';
import {
  newEtag,
  nodeToAttrs,
  spliceExtents,
  truncateExtents,
  type DirNode,
  type FileMeta,
  type FileNode,
  type Node,
  type VisibleNode,
} from './nodes.js';
import { Resolver, type Resolved } from './resolver.js';
import { statOf, TreeReader, type FileStat } from './tree-read.js';
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

/** A file with more extents than this is rewritten into one object on its next write. */
export const MAX_EXTENTS = 256;
const ATTEMPTS = 5;

/**
 * The write side of a file tree. Every change is one metadata transaction whose conditions
 * pin what the change was computed from (the node's ETag, or its absence), so concurrent
 * writers cannot lose each other's updates: the loser re-resolves and tries again.
 * New bytes go to fresh blob keys before the transaction, so a crash leaves only an orphan.
 */
export class TreeWriter {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly reader: TreeReader,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Creates or replaces a file with `body`; follows a symlink at the path like open(2). */
  async writeFile(view: View, rawPath: string, body: Readable | Buffer | { readonly copyOf: string }, options: WritePreconditions & Partial<FileMeta> = {}): Promise<FileStat> {
    const path = normalizePath(rawPath);
    // Cheap checks first, so a doomed write does not upload anything.
    await this.prepare(view, path, true, options);
    const target = await this.targetFor(view);
    const key = blobKeys.namespaceObject(view.tenant, target);
    // An upload finished elsewhere (a presigned PUT) is adopted by a server-side copy.
    const { size } = 'copyOf' in body ? await this.blobs.copy(body.copyOf, key) : await this.blobs.put(key, body);
    try {
      return await this.retry(view, path, true, async (r) => {
        this.checkPreconditions(r, options);
        if (r.node?.type === 'dir') throw new FsError('EISDIR', `is a directory: ${r.absolutePath}`);
        const previous = r.node?.type === 'file' ? r.node : undefined;
        const node: FileNode = {
          type: 'file',
          mode: options.mode ?? previous?.mode ?? 0o644,
          uid: options.uid ?? previous?.uid ?? 0,
          gid: options.gid ?? previous?.gid ?? 0,
          mtime: options.mtime ?? this.clock(),
          etag: newEtag(),
          overLower: r.lower !== undefined || undefined,
          size,
          extents: size > 0 ? [[key, 0, size]] : [],
        };
        return this.putNode(r, node);
      });
    } catch (error) {
      // Only when the change surely did not commit; an unknown outcome (a timeout) may have
      // committed, so its object is left for the sweep.
      if (error instanceof StrataError) await this.blobs.delete([key]).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Writes `body` at `position` of an existing file ('end' appends). Only the new bytes are
   * stored: the rest of the file keeps pointing at the blobs it came from, lower layers included.
   */
  async writeRange(view: View, rawPath: string, position: number | 'end', body: Readable | Buffer, options: WritePreconditions = {}): Promise<FileStat> {
    const path = normalizePath(rawPath);
    if (position !== 'end' && (!Number.isSafeInteger(position) || position < 0)) throw new InvalidInputError('offset must be a non-negative integer');
    const first = await this.prepare(view, path, true, options);
    if (!first.node) throw new NotFoundError(`no such file: ${first.absolutePath}`);
    const key = blobKeys.namespaceObject(view.tenant, await this.targetFor(view));
    const { size: length } = await this.blobs.put(key, body);
    try {
      return await this.retry(view, path, true, async (r) => {
        this.checkPreconditions(r, options);
        const file = this.requireFile(r);
        const at = position === 'end' ? file.size : position;
        const extents = length === 0 ? [...file.extents] : spliceExtents(file.extents, file.size, at, [key, 0, length]);
        // A write of nothing changes nothing, even past the end (as write(2) with 0 bytes).
        const size = length === 0 ? file.size : Math.max(file.size, at + length);
        const node: FileNode = { ...file, size, extents, etag: newEtag(), mtime: this.clock(), overLower: r.lower !== undefined || undefined };
        return this.putNode(r, extents.length > MAX_EXTENTS ? await this.compact(view, node) : node);
      });
    } catch (error) {
      // Only when the change surely did not commit; an unknown outcome (a timeout) may have
      // committed, so its object is left for the sweep.
      if (error instanceof StrataError) await this.blobs.delete([key]).catch(() => undefined);
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
      return this.putNode(r, node);
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
      if (!r.top || r.top.type === 'whiteout') await this.dropTopSubtree(r.view, r.path);
      // A directory made where a lower one was deleted must not show the old contents: opaque.
      const node: DirNode = {
        type: 'dir',
        mode: options.mode ?? 0o755,
        uid: options.uid ?? 0,
        gid: options.gid ?? 0,
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
        gid: options.gid ?? 0,
        mtime: options.mtime ?? this.clock(),
        etag: newEtag(),
        overLower: r.lower !== undefined || undefined,
      });
    });
  }

  /**
   * Hard link. The new name gets the file's content and metadata as they are now; the two names
   * are not kept linked afterwards (as overlayfs without index=on breaks links on copy-up).
   */
  async link(view: View, rawExisting: string, rawPath: string): Promise<FileStat> {
    const existing = normalizePath(rawExisting);
    const path = normalizePath(rawPath);
    return this.retry(view, path, false, async (r) => {
      const source = await new Resolver(this.meta).resolve(view, existing, { follow: false });
      if (!source.node) throw new NotFoundError(`no such file or directory: ${existing}`);
      if (source.node.type !== 'file') throw new FsError('EINVAL', `only files can be hard-linked: ${existing}`);
      if (source.view.top !== r.view.top) throw new InvalidInputError('cannot hard-link across a volume mount');
      if (r.node) throw new FsError('EEXIST', `already exists: ${r.absolutePath}`);
      return this.putNode(r, { ...source.node, etag: newEtag(), overLower: r.lower !== undefined || undefined });
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
      const base: VisibleNode = r.top?.type === r.node.type ? (r.top as VisibleNode) : stripDirLinks(r.node);
      const node = {
        ...base,
        mode: attributes.mode ?? r.node.mode,
        uid: attributes.uid ?? r.node.uid,
        gid: attributes.gid ?? r.node.gid,
        mtime: attributes.mtime ?? r.node.mtime,
        etag: newEtag(),
        overLower: r.lower !== undefined || undefined,
      } as VisibleNode;
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
    let removedDir: Resolved | undefined;
    await this.retry(view, path, false, async (r) => {
      this.checkPreconditions(r, options);
      if (!r.node) throw new NotFoundError(`no such file or directory: ${r.absolutePath}`);
      if (r.mount && r.path === '/') throw new ConflictError(`${r.absolutePath} is a volume mount point`);
      if (r.node.type === 'dir' && !options.recursive && !(await this.reader.isEmpty(r))) {
        throw new FsError('ENOTEMPTY', `directory not empty: ${r.absolutePath}`);
      }
      removedDir = r.node.type === 'dir' ? r : undefined;
      const sizeDelta = r.top?.type === 'file' ? -r.top.size : 0;
      const op: WriteOp = r.lower
        ? { op: 'put', item: { ...keys.node(view.tenant, r.view.top!, r.path), attrs: nodeToAttrs({ type: 'whiteout', overLower: true }) }, conditions: this.unchanged(r) }
        : { op: 'delete', key: keys.node(view.tenant, r.view.top!, r.path), conditions: this.unchanged(r) };
      await this.transact(r, [op], sizeDelta);
      return undefined;
    });
    if (removedDir?.top?.type === 'dir') await this.dropTopSubtree(removedDir.view, removedDir.path);
  }

  /**
   * Renames a file, symlink or directory. Directories never fail with EXDEV: the new path
   * redirects to where the lower layers keep the contents, and the container's own entries move.
   */
  async rename(view: View, rawFrom: string, rawTo: string): Promise<FileStat> {
    const from = normalizePath(rawFrom);
    const to = normalizePath(rawTo);
    if (from === '/' || to === '/') throw new InvalidInputError('the root directory cannot be renamed');
    if (isWithin(to, from) && to !== from) throw new FsError('EINVAL', `cannot move ${from} into itself`);
    let moved: { view: View; from: string; to: string; copied: Map<string, string> } | undefined;
    const stat = await this.retry(view, to, false, async (target) => {
      const resolver = new Resolver(this.meta);
      const source = await resolver.resolve(view, from, { follow: false });
      if (!source.node) throw new NotFoundError(`no such file or directory: ${from}`);
      if (source.view.top !== target.view.top) throw new InvalidInputError('cannot rename across a volume mount');
      if (source.mount && source.path === '/') throw new ConflictError(`${from} is a volume mount point`);
      if (source.absolutePath === target.absolutePath) return statOf(target.absolutePath, source.node);
      // Checked again on resolved paths: through a symlink, `to` may still lie inside `from`.
      if (isWithin(target.path, source.path)) throw new FsError('EINVAL', `cannot move ${from} into itself`);
      const node = source.node;
      if (target.node) {
        if (node.type === 'dir' && target.node.type !== 'dir') throw new FsError('ENOTDIR', `not a directory: ${to}`);
        if (node.type !== 'dir' && target.node.type === 'dir') throw new FsError('EISDIR', `is a directory: ${to}`);
        if (target.node.type === 'dir' && !(await this.reader.isEmpty(target))) throw new FsError('ENOTEMPTY', `directory not empty: ${to}`);
      }
      let placed: VisibleNode;
      if (node.type === 'dir') {
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
      const ops: WriteOp[] = [
        { op: 'put', item: { ...keys.node(tenant, ns, target.path), attrs: nodeToAttrs(placed) }, conditions: this.unchanged(target) },
        source.lower
          ? { op: 'put', item: { ...keys.node(tenant, ns, source.path), attrs: nodeToAttrs({ type: 'whiteout', overLower: true }) }, conditions: this.unchanged(source) }
          : { op: 'delete', key: keys.node(tenant, ns, source.path), conditions: this.unchanged(source) },
      ];
      const movedBytes = node.type === 'file' ? node.size : 0;
      const sizeDelta = movedBytes - (source.top?.type === 'file' ? source.top.size : 0) - (target.top?.type === 'file' ? target.top.size : 0);
      let copied: Map<string, string> | undefined;
      if (node.type === 'dir') {
        // Copy the container's own entries first: until the transaction they sit under a path
        // that is absent or empty, and a crash leaves the source intact.
        await this.dropTopSubtree(target.view, target.path);
        copied = await this.copyTopSubtree(source.view, source.path, target.path);
      }
      await this.transact(target, ops, sizeDelta, [source]);
      moved = copied ? { view: source.view, from: source.path, to: target.path, copied } : undefined;
      return statOf(target.absolutePath, placed);
    });
    if (moved) await this.settleMove(moved.view, moved.from, moved.to, moved.copied);
    return stat;
  }

  // --- helpers -------------------------------------------------------------------------------

  /** Resolves for a change and refuses read-only views and mounts before any byte moves. */
  private async prepare(view: View, path: string, follow: boolean, options: WritePreconditions): Promise<Resolved> {
    const r = await new Resolver(this.meta).resolve(view, path, { follow });
    this.checkWritable(view, r);
    this.checkPreconditions(r, options);
    return r;
  }

  private checkWritable(view: View, r: Resolved) {
    if (view.readOnly || r.view.readOnly || r.mount?.readOnly || !r.view.top) throw new ForbiddenError(`${r.absolutePath} is read-only`);
    if (r.synthetic) throw new ConflictError(`${r.absolutePath} is a mount point`);
  }

  private async targetFor(view: View) {
    if (!view.top) throw new ForbiddenError('this tree is read-only');
    return view.top;
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

  /** Runs `change` on a fresh resolution until its transaction is not beaten by a concurrent one. */
  private async retry<T>(view: View, path: string, follow: boolean, change: (r: Resolved) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const r = await new Resolver(this.meta).resolve(view, path, { follow });
      this.checkWritable(view, r);
      try {
        return await change(r);
      } catch (error) {
        const raced = error instanceof TransactionConditionError || (error instanceof ConflictError && error.message.includes('retry'));
        if (!raced || attempt >= ATTEMPTS) {
          if (raced) throw new ConflictError(`${path} is being changed concurrently; try again`);
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 5 * attempt));
      }
    }
  }

  private async putNode(r: Resolved, node: VisibleNode): Promise<FileStat> {
    const previousBytes = r.top?.type === 'file' ? r.top.size : 0;
    const bytes = node.type === 'file' ? node.size : 0;
    await this.transact(r, [{ op: 'put', item: { ...keys.node(r.view.tenant, r.view.top!, r.path), attrs: nodeToAttrs(node) }, conditions: this.unchanged(r) }], bytes - previousBytes);
    return statOf(r.absolutePath, node);
  }

  /** The transaction fails if the node changed since it was resolved. */
  private unchanged(r: Resolved): Condition[] {
    if (!r.top) return [{ kind: 'absent' }];
    if (r.top.type === 'whiteout') return [{ kind: 'equals', field: 't', value: 'w' }];
    return [{ kind: 'equals', field: 'e', value: r.top.etag }];
  }

  /**
   * One transaction: the change; copy-up of parent directories the top layer lacks (keeping
   * their owner, mode and mtime, as overlayfs does); a check that the parents it has are
   * unchanged, so no write lands in a directory being renamed or deleted; the size counter.
   * `others` are further resolutions whose parents the change also touches (a rename's source).
   */
  private async transact(r: Resolved, ops: WriteOp[], sizeDelta: number, others: readonly Resolved[] = []): Promise<void> {
    const tenant = r.view.tenant;
    const ns = r.view.top!;
    const all: WriteOp[] = [...ops];
    const touched = new Set(ops.map((op) => itemId(op.op === 'put' ? op.item : op.key)));
    for (const resolved of [r, ...others]) {
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
    all.push(statsChange(tenant, ns, sizeDelta));
    if (all.length > MAX_TRANSACTION_OPS) throw new InvalidInputError('path is too deep to change in one step');
    try {
      await this.meta.transact(all);
    } catch (error) {
      // The counter is the last op: if it is gone, so is the container or volume.
      if (error instanceof TransactionConditionError && error.failedIndexes.includes(all.length - 1)) {
        throw new NotFoundError('the container or volume no longer exists');
      }
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
   * Deletes the top layer's own nodes below `dir` (hidden already, or left behind by a crash),
   * fixing the size counter unless the bytes were moved elsewhere.
   */
  private async dropTopSubtree(view: View, dir: string, countBytes = true): Promise<void> {
    let bytes = 0;
    const doomed: { pk: string; sk: string }[] = [];
    for await (const [path, node] of this.topSubtree(view, dir)) {
      if (node.type === 'file') bytes += node.size;
      doomed.push(keys.node(view.tenant, view.top!, path));
    }
    if (doomed.length === 0) return;
    await this.meta.writeMany(doomed.map((key) => ({ op: 'delete' as const, key })));
    if (bytes && countBytes) await this.meta.transact([statsChange(view.tenant, view.top!, -bytes)]).catch(() => undefined);
  }

  /** Copies the top layer's own nodes from below `from` to below `to`; returns what it copied (path -> fingerprint). */
  private async copyTopSubtree(view: View, from: string, to: string): Promise<Map<string, string>> {
    const copied = new Map<string, string>();
    const puts: Extract<WriteOp, { op: 'put' }>[] = [];
    for await (const [path, node] of this.topSubtree(view, from)) {
      copied.set(path, fingerprint(node));
      puts.push({ op: 'put', item: { ...keys.node(view.tenant, view.top!, rebase(path, from, to)), attrs: nodeToAttrs(node) } });
    }
    await this.meta.writeMany(puts);
    return copied;
  }

  /**
   * After a directory rename commits, no write can land below the old path any more (every write
   * checks its parents), so what changed there since the copy is carried over, then the old
   * entries go.
   */
  private async settleMove(view: View, from: string, to: string, copied: Map<string, string>): Promise<void> {
    const tenant = view.tenant;
    const ns = view.top!;
    const now = new Map<string, Node>();
    for await (const [path, node] of this.topSubtree(view, from)) now.set(path, node);
    const fixes: Extract<WriteOp, { op: 'put' | 'delete' }>[] = [];
    for (const [path, node] of now) {
      if (copied.get(path) !== fingerprint(node)) fixes.push({ op: 'put', item: { ...keys.node(tenant, ns, rebase(path, from, to)), attrs: nodeToAttrs(node) } });
    }
    for (const path of copied.keys()) if (!now.has(path)) fixes.push({ op: 'delete', key: keys.node(tenant, ns, rebase(path, from, to)) });
    await this.meta.writeMany(fixes);
    await this.meta.writeMany([...now.keys()].map((path) => ({ op: 'delete' as const, key: keys.node(tenant, ns, path) })));
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

/** What identifies a node's version: its ETag, or that it is a whiteout. */
function fingerprint(node: Node): string {
  return node.type === 'whiteout' ? 'whiteout' : node.etag;
}

function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let p = parentOf(path); p !== '/'; p = parentOf(p)) out.unshift(p);
  return out;
}

/** A directory's copy keeps its metadata but not the opaque or redirect flags of another layer. */
function stripDirLinks<T extends VisibleNode>(node: T): T {
  if (node.type !== 'dir') return node;
  const { opaque: _o, redirect: _r, ...rest } = node as DirNode;
  return rest as T;
}
