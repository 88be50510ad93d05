import type { Readable } from 'node:stream';
import { joinPath, parentOf } from '../paths.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { TarWriter } from '../tar/tar-writer.js';
import type { FileNode, Node, VisibleNode } from './nodes.js';
import { resolveIfPresent, Resolver, seenFrom } from './resolver.js';
import { HoleBudget, MAX_WRITTEN_HOLE_BYTES, type TreeReader } from './tree-read.js';
import type { View } from './view.js';
import { MAX_BATCH_BYTES, type BatchedReadOptions } from './batched-reads.js';
import { type Change, ChangeKind, type TreeChange } from './tree-diff.js';

export { type Change, ChangeKind };

/** Entries written per window of batched reads. */
const WINDOW_ENTRIES = 4096;

/**
 * What a container changed, read from its own namespace only (cost follows the changes, not
 * the image). Volumes are not part of it, as in Docker.
 */
export class Changeset {
  constructor(
    private readonly meta: MetadataStore,
    private readonly reader: TreeReader,
    private readonly batching: BatchedReadOptions = {},
  ) {}

  /**
   * `docker diff`: the difference between the container's merged view and its image's, read
   * from the container's own namespace (plus one lookup in the image per deletion, opaque or
   * renamed directory), in path order, parents of changes as changed, a deleted directory as
   * one entry. A path is deleted only if the image had it; below a directory that hides what
   * the image had there (made again, or renamed over), what the image had and the container
   * no longer shows is deleted, and a path is changed or added by whether the image had it.
   */
  async changes(view: View): Promise<Change[]> {
    const image: View = { tenant: view.tenant, lowers: view.lowers, mounts: [], readOnly: true };
    const out: { path: string; kind: ChangeKind; node?: VisibleNode }[] = [];
    /** Directories that hide the image's contents: below them, overLower does not say what the image had. */
    const hiding: string[] = [];
    const kindOf = async (path: string, overLower: boolean | undefined) => {
      if (!hiding.some((dir) => isBelow(path, dir))) return overLower ? ChangeKind.Modified : ChangeKind.Added;
      return (await this.visible(image, path)) ? ChangeKind.Modified : ChangeKind.Added;
    };
    for await (const { path, node: raw } of this.topNodes(view, '/')) {
      if (raw.type === 'whiteout') {
        if (await this.visible(image, path)) out.push({ path, kind: ChangeKind.Deleted });
        continue;
      }
      const node = await this.throughInode(view, raw);
      out.push({ path, kind: await kindOf(path, node.overLower), node });
      if (node.type !== 'dir' || !(node.opaque || node.redirect)) continue;
      hiding.push(path);
      // What the image had here and the container no longer shows.
      for await (const lost of this.lostBelow(view, image, path)) out.push({ path: lost, kind: ChangeKind.Deleted });
      // A renamed directory's lower contents are at this path now.
      if (node.redirect) for await (const [child, childNode] of this.mergedBelow(view, path)) out.push({ path: child, kind: await kindOf(child, false), node: childNode });
    }
    return this.withoutUnchanged(image, dedupe(out));
  }

  /**
   * Drops what Docker would not call changed: a copied-up path whose type, mode and owner (and,
   * for a non-directory, size and mtime) equal the image's, unless it is a directory with a change below.
   */
  private async withoutUnchanged(image: View, changes: { path: string; kind: ChangeKind; node?: VisibleNode }[]): Promise<Change[]> {
    const kept: Change[] = [];
    const changedBelow = new Set<string>();
    for (const change of [...changes].reverse()) {
      const { path, kind, node } = change;
      if (kind === ChangeKind.Modified && node && !changedBelow.has(path)) {
        const old = await this.lookup(image, path);
        if (old && old.type !== 'whiteout' && sameStat(old, node)) continue;
      }
      kept.push({ path, kind });
      for (let p = parentOf(path); p !== '/'; p = parentOf(p)) changedBelow.add(p);
    }
    return kept.reverse();
  }

  private async visible(view: View, path: string): Promise<boolean> {
    return (await this.lookup(view, path)) !== undefined;
  }

  /** The node at `path`, or undefined when it or a parent is missing or not a directory. */
  private async lookup(view: View, path: string): Promise<Node | undefined> {
    return (await resolveIfPresent(this.meta, view, path, { physical: true }))?.node;
  }

  /** Paths the image has below `dir` that the container does not show; a lost directory is one entry. */
  private async *lostBelow(view: View, image: View, dir: string): AsyncGenerator<string> {
    const inImage = await resolveIfPresent(this.meta, image, dir, { physical: true });
    if (inImage?.node?.type !== 'dir') return;
    for await (const [name, node] of this.reader.children(inImage, undefined)) {
      const path = joinPath(dir, name);
      const now = await this.lookup(view, path);
      if (!now) yield path;
      else if (node.type === 'dir' && now.type === 'dir') yield* this.lostBelow(view, image, path);
    }
  }

  /**
   * The container layer as an OCI changeset tar: whiteouts as `.wh.<name>` written before their
   * siblings, opaque directories as `.wh..wh..opq`, and a renamed directory as an opaque
   * directory holding its full contents (OCI layers have no rename).
   */
  commitTar(view: View): Readable {
    const writer = new TarWriter();
    const holes = new HoleBudget(MAX_WRITTEN_HOLE_BYTES);
    const links = new Map<string, string>();
    const self = this;
    async function* entries(): AsyncGenerator<[string, Node]> {
      for await (const { path, node: raw } of self.topNodes(view, '/', true)) {
        const node = raw.type === 'whiteout' ? raw : await self.throughInode(view, raw);
        yield [path, node];
        if (node.type === 'dir' && node.redirect) yield* self.mergedBelow(view, path);
      }
    }
    this.writeAll(writer, entries(), { holes, links }).catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }

  /**
   * A layer tar of changes a diff found (a forked container's, whose changes lie in several
   * layers): each directory's deletions as whiteouts first, then what was added or changed, parents
   * before children. A diff lists every deletion, so no opaque marker is needed.
   */
  changesTar(changes: readonly TreeChange[]): Readable {
    const writer = new TarWriter();
    const rank = (c: TreeChange) => (c.kind === ChangeKind.Deleted ? 0 : 1);
    const ordered = [...changes].sort((a, b) => compareBytes(parentOf(a.path), parentOf(b.path)) || rank(a) - rank(b) || compareBytes(a.path, b.path));
    async function* entries(): AsyncGenerator<[string, Node]> {
      for (const change of ordered) {
        if (change.kind === ChangeKind.Deleted) yield [change.path, { type: 'whiteout' }];
        else if (change.to) yield [change.path, change.to];
      }
    }
    this.writeAll(writer, entries(), { holes: new HoleBudget(MAX_WRITTEN_HOLE_BYTES), links: new Map() }).catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }

  /** The merged file tree (what `docker export` writes), without volume contents. */
  exportTar(view: View): Readable {
    const writer = new TarWriter();
    const holes = new HoleBudget(MAX_WRITTEN_HOLE_BYTES);
    // The flattened tree: whiteouts and opaque markers belong in a layer, never in an export.
    this.writeAll(writer, inStorageOrder(this.mergedBelow(view, '/', true)), { markers: false, holes, links: new Map() }).catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }

  /**
   * Writes the entries in windows of up to 4,096 (and MAX_BATCH_BYTES of small files): each
   * window's small files are read ahead in a few batched GETs, larger ones stream as written.
   */
  private async writeAll(writer: TarWriter, entries: AsyncIterable<[string, Node]>, options: { markers?: boolean; holes: HoleBudget; links: Map<string, string> }): Promise<void> {
    const batched = this.reader.batchedReads(this.batching);
    let window: [string, Node][] = [];
    let bytes = 0;
    const flush = async () => {
      const bodies = batched.read(window.map(([, node]) => (node.type === 'file' ? node.extents : [])));
      for (let i = 0; i < window.length; i++) await this.writeNode(writer, window[i][0], window[i][1], { ...options, body: bodies[i] });
      window = [];
      bytes = 0;
    };
    for await (const entry of entries) {
      window.push(entry);
      const node = entry[1];
      if (node.type === 'file' && batched.batchable(node.extents)) bytes += node.size;
      if (window.length >= WINDOW_ENTRIES || bytes >= MAX_BATCH_BYTES) await flush();
    }
    await flush();
    await writer.finish();
  }

  /** A container's or volume's name of a hard-linked file, as the file its inode holds. */
  private throughInode(view: View, node: VisibleNode): Promise<VisibleNode> {
    return seenFrom(this.meta, view, node);
  }

  /**
   * One entry; with `markers` (a commit's layer), opaque and renamed directories carry their
   * opaque marker. The second and later names of a hard-linked file (`links`: inode to the first
   * name written) are tar hard links to the first.
   */
  private async writeNode(
    writer: TarWriter,
    path: string,
    node: Node,
    { markers = true, holes, links, body }: { markers?: boolean; holes: HoleBudget; links: Map<string, string>; body?: () => AsyncIterable<Buffer> },
  ): Promise<void> {
    const name = path.slice(1);
    if (node.type === 'whiteout') {
      const slash = name.lastIndexOf('/');
      const markerPath = slash < 0 ? `.wh.${name}` : `${name.slice(0, slash)}/.wh.${name.slice(slash + 1)}`;
      await writer.entry({ path: markerPath, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
      return;
    }
    const meta = { mode: node.mode, uid: node.uid, gid: node.gid, mtime: Math.floor(node.mtime / 1000) };
    switch (node.type) {
      case 'dir':
        await writer.entry({ path: `${name}/`, type: 'directory', ...meta, size: 0 });
        if (markers && (node.opaque || node.redirect)) await writer.entry({ path: `${name}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
        return;
      case 'symlink':
        await writer.entry({ path: name, type: 'symlink', ...meta, size: 0, linkname: node.target });
        return;
      case 'file': {
        const first = node.inode && links.get(node.inode);
        if (first) {
          await writer.entry({ path: name, type: 'hardlink', ...meta, size: 0, linkname: first });
          return;
        }
        if (node.inode) links.set(node.inode, name);
        holes.spend(node.extents);
        await writer.entry({ path: name, type: 'file', ...meta, size: node.size }, body ? body() : (this.reader.extentStream(node.extents) as AsyncIterable<Buffer>));
        return;
      }
    }
  }

  /**
   * The top namespace's own nodes, depth first in name order, each directory's whiteouts first
   * (writers put whiteouts before their siblings).
   */
  private async *topNodes(view: View, dir: string, skipRedirected = false): AsyncGenerator<{ path: string; node: Node }> {
    const entries: [string, Node][] = [];
    for await (const entry of this.reader.partition(view.tenant, view.top!, dir)) entries.push(entry);
    entries.sort((a, b) => Number(b[1].type === 'whiteout') - Number(a[1].type === 'whiteout') || (a[0] < b[0] ? -1 : 1));
    for (const [name, node] of entries) {
      const path = joinPath(dir, name);
      yield { path, node };
      // A renamed directory's contents are written from the merged view instead.
      if (node.type === 'dir' && !(node.redirect && skipRedirected)) yield* this.topNodes(view, path, skipRedirected);
    }
  }

  /** Every visible node below `dir` in the merged view, parents first; mount points are skipped. */
  async *mergedBelow(view: View, dir: string, skipMounts = false): AsyncGenerator<[string, VisibleNode]> {
    const resolved = await new Resolver(this.meta).resolve(view, dir, { follow: false });
    if (resolved.mount && skipMounts) return;
    const stored: [string, VisibleNode][] = [];
    for await (const child of this.reader.children(resolved, undefined)) stored.push(child);
    for (const [name, node] of await this.reader.linked(resolved, stored)) {
      const path = joinPath(dir, name);
      if (skipMounts && view.mounts.some((m) => m.target === path)) continue;
      yield [path, node];
      if (node.type === 'dir') yield* this.mergedBelow(view, path, skipMounts);
    }
  }
}

function isBelow(path: string, dir: string): boolean {
  return path.startsWith(dir === '/' ? '/' : `${dir}/`) && path !== dir;
}

/** moby's statDifferent: directories' sizes and mtimes say nothing. */
function sameStat(a: VisibleNode, b: VisibleNode): boolean {
  if (a.type !== b.type || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  return a.type === 'dir' || (sizeOf(a) === sizeOf(b) && a.mtime === b.mtime);
}

function sizeOf(node: VisibleNode): number {
  return node.type === 'file' ? node.size : node.type === 'symlink' ? Buffer.byteLength(node.target) : 0;
}

function dedupe<C extends Change>(changes: C[]): C[] {
  const seen = new Set<string>();
  return changes.filter((c) => (seen.has(c.path) ? false : (seen.add(c.path), true))).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Entries an export orders by where their bytes lie; a larger tree is written in name order. */
const MAX_SORTED_ENTRIES = 20_000;

/**
 * An export's entries with its files in storage order: directories, symlinks and empty files
 * first (in name order, so every directory precedes what it holds), then files by the blob and
 * offset of their first extent, so the batched reads meet neighbours in one GET however the
 * layer's tar ordered them. A tar may list its entries in any order. Past MAX_SORTED_ENTRIES
 * (their metadata is held to sort them) the rest follows in name order.
 */
async function* inStorageOrder(entries: AsyncIterable<[string, Node]>): AsyncGenerator<[string, Node]> {
  const iterator = entries[Symbol.asyncIterator]();
  const held: [string, Node][] = [];
  for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
    held.push(next.value);
    if (held.length > MAX_SORTED_ENTRIES) {
      yield* held;
      for (let rest = await iterator.next(); !rest.done; rest = await iterator.next()) yield rest.value;
      return;
    }
  }
  const stored = (node: Node) => node.type === 'file' && node.extents.length > 0;
  yield* held.filter(([, node]) => !stored(node));
  const files = held.filter(([, node]) => stored(node)) as [string, FileNode][];
  files.sort(([, a], [, b]) => {
    const [keyA, offsetA] = a.extents[0];
    const [keyB, offsetB] = b.extents[0];
    return keyA < keyB ? -1 : keyA > keyB ? 1 : offsetA - offsetB;
  });
  yield* files;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
