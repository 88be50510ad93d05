import { FsError, NotFoundError } from '../errors.js';
import { isPacked, keys, type NamespaceId } from '../keys.js';
import { isWithin, joinPath, parentOf, prefixes } from '../paths.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { queryAll } from '../ports/metadata-store.js';
import { nodeFromAttrs, type Node, type VisibleNode } from './nodes.js';
import { Resolver } from './resolver.js';
import type { TreeReader } from './tree-read.js';
import type { View } from './view.js';

/** Docker's change kinds: 0 changed, 1 added, 2 deleted. */
export const enum ChangeKind {
  Modified = 0,
  Added = 1,
  Deleted = 2,
}

export interface Change {
  readonly path: string;
  readonly kind: ChangeKind;
}

/** A change with the node on each side (`from`: the tree compared against; `to`: the tree that changed). */
export interface TreeChange extends Change {
  readonly from?: VisibleNode;
  readonly to?: VisibleNode;
}

/** How two nodes are compared: Docker's stat rule (`docker diff`), or by content too (merges). */
export type Sameness = 'stat' | 'content';

/**
 * The difference between two trees that share layers (a container and its image, two forks, a
 * fork and the layer it was forked from), read from the namespaces they do not share: the paths
 * those hold, plus what a renamed or opaque directory among them hides or brings. Its cost grows
 * with the changes since the common ancestor, not with the size of the image. Volumes are not
 * part of it, as in Docker. Only when two trees share no layer (two images) is every path read.
 */
export class TreeDiff {
  constructor(
    private readonly meta: MetadataStore,
    private readonly reader: TreeReader,
  ) {}

  /**
   * What `to` changed against `from`, in Docker's terms and order: a path only `to` has is added
   * (with everything below it), one only `from` has is deleted (a directory as one entry), one
   * both have and that differs (`sameness`) is changed, and so is each directory above a change.
   */
  async changes(to: View, from: View, sameness: Sameness = 'stat'): Promise<TreeChange[]> {
    const a = { ...from, mounts: [] };
    const b = { ...to, mounts: [] };
    const candidates = await this.candidates(b, a);
    const fromResolver = new Resolver(this.meta);
    const toResolver = new Resolver(this.meta);
    await Promise.all([fromResolver.prefetchPaths(a, candidates), toResolver.prefetchPaths(b, candidates)]);
    const at = async (resolver: Resolver, view: View, path: string) => {
      try {
        return (await resolver.resolve(view, path, { follow: false, physical: true })).node;
      } catch (error) {
        if (error instanceof NotFoundError || error instanceof FsError) return undefined;
        throw error;
      }
    };
    const found = new Map<string, TreeChange>();
    const sorted = [...candidates].sort(byteOrder);
    const nodes = new Map<string, { from?: VisibleNode; to?: VisibleNode }>();
    for (const path of sorted) nodes.set(path, { from: await at(fromResolver, a, path), to: await at(toResolver, b, path) });
    const toParent = async (path: string) => nodes.get(parentOf(path))?.to ?? (parentOf(path) === '/' ? { type: 'dir' } : await at(toResolver, b, parentOf(path)));
    for (const path of sorted) {
      const { from: old, to: now } = nodes.get(path)!;
      if (!old && !now) continue;
      if (!old) found.set(path, { path, kind: ChangeKind.Added, to: now });
      else if (!now) {
        // A deleted directory is one entry; below a path `to` made a non-directory nothing is listed.
        if ((await toParent(path))?.type === 'dir') found.set(path, { path, kind: ChangeKind.Deleted, from: old });
      } else if (!same(old, now, sameness)) found.set(path, { path, kind: ChangeKind.Modified, from: old, to: now });
    }
    const collapsed = [...found.values()].filter((c) => c.kind !== ChangeKind.Deleted || ![...prefixes(parentOf(c.path))].some((p) => found.get(p)?.kind === ChangeKind.Deleted));
    // Each directory above a change is changed, unless it is itself added or changed.
    const out = new Map(collapsed.map((c) => [c.path, c]));
    for (const change of collapsed) {
      for (const dir of prefixes(parentOf(change.path))) {
        if (out.has(dir)) continue;
        const both = nodes.get(dir) ?? { from: await at(fromResolver, a, dir), to: await at(toResolver, b, dir) };
        out.set(dir, { path: dir, kind: ChangeKind.Modified, from: both.from, to: both.to });
      }
    }
    return [...out.values()].sort((x, y) => byteOrder(x.path, y.path));
  }

  /** Every path where the two trees may differ. */
  private async candidates(to: View, from: View): Promise<Set<string>> {
    const chainTo = [...(to.top ? [to.top] : []), ...to.lowers];
    const chainFrom = [...(from.top ? [from.top] : []), ...from.lowers];
    let shared = 0;
    while (shared < chainTo.length && shared < chainFrom.length && chainTo[chainTo.length - 1 - shared] === chainFrom[chainFrom.length - 1 - shared]) shared++;
    const differing = [...new Set([...chainTo.slice(0, chainTo.length - shared), ...chainFrom.slice(0, chainFrom.length - shared)])];
    const paths = new Set<string>();
    const hiding: string[] = [];
    if (differing.some(isPacked)) {
      // Different images: every path of both.
      hiding.push('/');
    } else {
      const whiteouts = new Set<string>();
      const dirs = new Set<string>();
      for (const ns of differing) {
        for await (const [path, node] of this.nodesOf(to.tenant, ns)) {
          paths.add(path);
          if (node.type === 'dir' && (node.opaque || node.redirect)) hiding.push(path);
          if (node.type === 'whiteout') whiteouts.add(path);
          if (node.type === 'dir') dirs.add(path);
        }
      }
      // A directory made again above a layer that deleted it hides what was there before.
      for (const path of whiteouts) if (dirs.has(path)) hiding.push(path);
    }
    // Below a renamed, opaque or deleted-and-made-again directory the trees may differ at any path either one shows.
    for (const dir of hiding.filter((d, i) => !hiding.some((other, j) => j !== i && other !== d && isWithin(d, other)))) {
      for (const view of [to, from]) for await (const [path] of this.reader.descendants(view, dir)) paths.add(path);
    }
    return paths;
  }

  /** The nodes an unpacked namespace holds, parents before children. */
  private async *nodesOf(tenant: string, ns: NamespaceId): AsyncGenerator<[string, Node]> {
    const pending = ['/'];
    while (pending.length) {
      const dir = pending.pop()!;
      for (const item of await queryAll(this.meta, keys.nodePartition(tenant, ns, dir))) {
        const path = joinPath(dir, item.sk);
        const node = nodeFromAttrs(item.attrs);
        yield [path, node];
        if (node.type === 'dir') pending.push(path);
      }
    }
  }
}

/** moby's statDifferent (directories' sizes and mtimes say nothing), or that plus the bytes. */
export function same(a: VisibleNode | { type: 'dir' }, b: VisibleNode | { type: 'dir' }, sameness: Sameness): boolean {
  if (a.type !== b.type) return false;
  if (!('mode' in a) || !('mode' in b)) return true;
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid) return false;
  if (a.type === 'dir') return true;
  if (sizeOf(a) !== sizeOf(b) || a.mtime !== b.mtime) return false;
  if (sameness === 'stat') return true;
  if (a.type === 'symlink' && b.type === 'symlink') return a.target === b.target;
  if (a.type === 'file' && b.type === 'file') return a.etag === b.etag || JSON.stringify(a.extents) === JSON.stringify(b.extents);
  return true;
}

function sizeOf(node: VisibleNode): number {
  return node.type === 'file' ? node.size : node.type === 'symlink' ? Buffer.byteLength(node.target) : 0;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
