import { isWithin, parentOf, prefixes, rebase } from '../paths.js';
import type { DirNode, FileNode, Node, VisibleNode } from './nodes.js';
import { ChangeKind, same, type TreeChange } from './tree-diff.js';

/**
 * The three-way part of a merge, with no storage of its own: from what each side changed since
 * their common ancestor, which entries a layer placed above the target must hold so that the
 * target shows the source's changes as well as its own, and where the two collide.
 *
 * Per path: a change only the source made is taken; a change both made alike is already there;
 * two different changes of one path, a deletion against a change at or below it, and a change
 * below a path the other side turned into a non-directory are conflicts, settled by the
 * strategy (`fail` takes nothing, `ours` keeps the target's side, `theirs` takes the source's).
 * A directory one side renamed carries the other side's changes below it to its new path.
 */
export type MergeStrategy = 'fail' | 'ours' | 'theirs';

export type SideChange = 'added' | 'modified' | 'deleted' | 'renamed' | 'changed below' | 'deleted above';

export interface MergeConflict {
  /** In the target's coordinates. */
  readonly path: string;
  readonly ours: SideChange;
  readonly theirs: SideChange;
  /** How the strategy settled it; absent under `fail`. */
  readonly resolution?: 'ours' | 'theirs';
}

/** What the merge layer holds at a path: a node, or a whiteout hiding the target's. */
export type LayerEntry = VisibleNode | { readonly type: 'whiteout' };

/** The three trees, read without following a symlink at the end (undefined: nothing there). */
export interface MergeTrees {
  ours(path: string): Promise<VisibleNode | undefined>;
  theirs(path: string): Promise<VisibleNode | undefined>;
  base(path: string): Promise<VisibleNode | undefined>;
  /** Every path below `dir` in a tree, with its node (nothing when it is not a directory there). */
  below(tree: 'theirs' | 'base', dir: string): AsyncIterable<[string, VisibleNode]>;
  /** Whether two files hold the same bytes (they are compared only when their versions differ). */
  sameBytes(a: FileNode, b: FileNode): Promise<boolean>;
}

export interface MergePlan {
  /** What the merge layer must hold, ancestors not yet added. */
  readonly entries: Map<string, LayerEntry>;
  readonly conflicts: MergeConflict[];
  /** The source's changes taken, conflicts settled for the source included (a renamed directory counts once). */
  readonly taken: number;
}

/** A change that says more than "something below changed": directories whose own attributes did not change are not one. */
export function isOwnChange(change: TreeChange): boolean {
  if (change.kind !== ChangeKind.Modified || change.from?.type !== 'dir' || change.to?.type !== 'dir') return true;
  return !same(change.from, change.to, 'content');
}

/** Directories a side renamed, new path to old: a directory with a redirect to a base directory that side no longer shows. */
export async function renamesOf(changes: ReadonlyMap<string, TreeChange>, trees: MergeTrees): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const change of changes.values()) {
    const redirect = change.kind === ChangeKind.Added && change.to?.type === 'dir' ? change.to.redirect : undefined;
    if (!redirect || changes.get(redirect)?.kind !== ChangeKind.Deleted) continue;
    if ((await trees.base(redirect))?.type === 'dir') out.set(change.path, redirect);
  }
  return out;
}

export async function planMerge(oursChanges: readonly TreeChange[], theirsChanges: readonly TreeChange[], trees: MergeTrees, strategy: MergeStrategy): Promise<MergePlan> {
  /** Two states of a path alike: both absent, or the same node (small files that differ only in version by their bytes). */
  const sameState = async (a: VisibleNode | undefined, b: VisibleNode | undefined) => {
    if (!a || !b) return a === b;
    if (same(a, b, 'content')) return true;
    return a.type === 'file' && b.type === 'file' && a.size === b.size && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && (await trees.sameBytes(a, b));
  };
  const ours = new Map(oursChanges.filter(isOwnChange).map((c) => [c.path, c]));
  const theirs = new Map(theirsChanges.filter(isOwnChange).map((c) => [c.path, c]));
  const oursRenames = await renamesOf(ours, trees);
  const theirsRenames = await renamesOf(theirs, trees);
  // Below a directory the target renamed, every path shows as added: only those that differ from
  // the base at the old path are the target's own changes.
  for (const [to, from] of oursRenames) {
    for (const change of [...ours.values()]) {
      if (change.path === to || !isWithin(change.path, to)) continue;
      if (await sameState(await trees.base(rebase(change.path, to, from)), change.to)) ours.delete(change.path);
    }
  }
  const renamedFrom = new Set(theirsRenames.values());
  const entries = new Map<string, LayerEntry>();
  const conflicts: MergeConflict[] = [];
  /** Source paths whose whole subtree is settled: nothing below them is looked at again. */
  const settled: string[] = [];
  let taken = 0;

  const isSettled = (path: string) => settled.some((dir) => isWithin(path, dir));
  /** The target's path for a path of the source: moved along with a directory the target renamed. */
  const toOurs = (path: string) => {
    for (const [to, from] of oursRenames) if (isWithin(path, from)) return rebase(path, from, to);
    return path;
  };
  const toTheirs = (path: string) => {
    for (const [to, from] of oursRenames) if (isWithin(path, to)) return rebase(path, to, from);
    return path;
  };
  const conflict = (path: string, oursKind: SideChange, theirsKind: SideChange) => {
    conflicts.push({ path, ours: oursKind, theirs: theirsKind, ...(strategy === 'fail' ? {} : { resolution: strategy }) });
    if (strategy === 'theirs') taken++;
  };
  const put = (path: string, node: VisibleNode | undefined) => entries.set(path, node ? layerNode(node) : { type: 'whiteout' });
  /** Every change of the target at or below `path`. */
  const oursWithin = (path: string) => [...ours.values()].filter((c) => isWithin(c.path, path));
  /** The nearest directory above `path` that the target deleted or turned into a non-directory. */
  const oursGoneAbove = (path: string) =>
    prefixes(parentOf(path))
      .reverse()
      .find((dir) => {
        const c = ours.get(dir);
        return c !== undefined && (c.kind === ChangeKind.Deleted || c.to?.type !== 'dir');
      });
  /** Copies the source's whole subtree at `path` (a conflict settled for the source). */
  const takeSubtree = async (path: string, node: VisibleNode | undefined) => {
    put(toOurs(path), node);
    if (node?.type === 'dir') for await (const [below, child] of trees.below('theirs', path)) put(toOurs(below), child);
    settled.push(path);
  };

  for (const change of [...theirs.values()].sort((a, b) => compareBytes(a.path, b.path))) {
    const path = change.path;
    if (isSettled(path) || renamedFrom.has(path)) continue;

    const renamedAway = theirsRenames.get(path);
    if (renamedAway !== undefined) {
      settled.push(path, renamedAway);
      // The target must still have the old directory as the base had it, and nothing at the new path.
      const oursOld = ours.get(renamedAway);
      const clash = (oursOld !== undefined && (oursOld.kind === ChangeKind.Deleted || oursOld.to?.type !== 'dir')) || oursWithin(path).length > 0 || oursGoneAbove(renamedAway) !== undefined;
      if (clash) {
        const oursSide = oursWithin(path).length > 0 ? 'added' : [...oursRenames.values()].includes(renamedAway) ? 'renamed' : 'deleted';
        conflict(path, oursSide, 'renamed');
        if (strategy === 'theirs') {
          put(renamedAway, undefined);
          await takeSubtree(path, change.to);
        }
        continue;
      }
      taken++;
      put(renamedAway, undefined);
      // The moved directory shows the target's own contents of the old path (its changes there included).
      entries.set(path, { ...(layerNode(change.to!) as DirNode), redirect: renamedAway });
      await mergeInsideRename(path, renamedAway);
      continue;
    }

    const at = toOurs(path);
    const removesDir = change.kind === ChangeKind.Deleted || change.to?.type !== 'dir';
    // Moved along a rename of the target's, a path is the target's change when it differs from
    // the base at the source's path (a deletion there is listed nowhere else).
    let here = ours.get(at);
    if (!here && at !== path) {
      const moved = await trees.ours(at);
      if (!(await sameState(moved, await trees.base(path)))) here = { path: at, kind: moved ? ChangeKind.Modified : ChangeKind.Deleted, to: moved };
    }
    const above = oursGoneAbove(at);
    const below = removesDir ? oursWithin(at).filter((c) => c.path !== at) : [];
    if (removesDir) settled.push(path);
    if (!here && above === undefined && below.length === 0) {
      taken++;
      put(at, change.to);
      continue;
    }
    const mine = await trees.ours(at);
    if (below.length === 0 && above === undefined && (await sameState(mine, change.to))) continue;
    conflict(at, above !== undefined ? 'deleted above' : here ? sideOf(here, oursRenames) : 'changed below', sideOf(change, theirsRenames));
    if (above !== undefined) {
      // One conflict for the directory the target removed; under `theirs` the source's whole directory comes back.
      const theirsAbove = toTheirs(above);
      if (strategy === 'theirs') await takeSubtree(theirsAbove, await trees.theirs(theirsAbove));
      else settled.push(theirsAbove);
    } else if (strategy === 'theirs') put(at, change.to);
  }
  return { entries, conflicts, taken };

  /**
   * The source renamed `from` to `to` and the target did not touch `from` itself: the layer's
   * redirect already shows the target's contents (and changes) of `from` at `to`. What the
   * source changed inside since the rename is compared path by path with the base and the target.
   */
  async function mergeInsideRename(to: string, from: string): Promise<void> {
    const seen = new Set<string>();
    const gone: string[] = [];
    const visit = async (rel: string) => {
      if (seen.has(rel) || gone.some((g) => isWithin(rel, g))) return;
      seen.add(rel);
      const mine = await trees.theirs(rebase(rel, from, to));
      const original = await trees.base(rel);
      if (await sameState(original, mine)) return;
      const removed = !mine || mine.type !== 'dir';
      if (removed) gone.push(rel);
      const current = await trees.ours(rel);
      const target = rebase(rel, from, to);
      // The source removed a directory the target changed something in.
      if (removed && original?.type === 'dir' && oursWithin(rel).some((c) => c.path !== rel)) {
        conflict(target, 'changed below', mine ? 'modified' : 'deleted');
        if (strategy === 'theirs') put(target, mine);
        return;
      }
      if (await sameState(original, current)) {
        taken++;
        put(target, mine);
      } else if (!(await sameState(current, mine))) {
        conflict(target, current ? 'modified' : 'deleted', mine ? 'modified' : 'deleted');
        if (strategy === 'theirs') put(target, mine);
      }
    };
    for await (const [path] of trees.below('theirs', to)) await visit(rebase(path, to, from));
    for await (const [path] of trees.below('base', from)) await visit(path);
  }
}

function sideOf(change: TreeChange, renames: ReadonlyMap<string, string>): SideChange {
  if (renames.has(change.path)) return 'renamed';
  return change.kind === ChangeKind.Added ? 'added' : change.kind === ChangeKind.Deleted ? 'deleted' : 'modified';
}

/** A node as a merge layer stores it: a plain copy, without another layer's flags or a hard link's identity. */
export function layerNode(node: VisibleNode): VisibleNode {
  switch (node.type) {
    case 'dir': {
      const { opaque: _o, redirect: _r, closing: _c, ...dir } = node;
      return dir;
    }
    case 'file': {
      const { inode: _i, nlink: _n, names: _m, linkName: _l, ownNames: _w, sealedInode: _s, ...file } = node;
      return file;
    }
    default:
      return node;
  }
}

/** The layer's entries plus a directory for every ancestor it lacks (a layer below shows nothing under a directory it does not have). */
export async function withAncestors(entries: ReadonlyMap<string, LayerEntry>, trees: Pick<MergeTrees, 'ours' | 'theirs'>): Promise<Map<string, Node>> {
  const out = new Map<string, Node>();
  for (const [path, entry] of [...entries].sort(([a], [b]) => compareBytes(a, b))) {
    // An entry below one the layer already holds as a non-directory would never show: a leftover of a settled subtree.
    if (prefixes(parentOf(path)).some((dir) => out.has(dir) && out.get(dir)!.type !== 'dir')) continue;
    for (const dir of prefixes(parentOf(path))) {
      if (out.has(dir)) continue;
      const mine = await trees.ours(dir);
      const shown = mine?.type === 'dir' ? mine : await trees.theirs(dir);
      out.set(dir, shown?.type === 'dir' ? layerNode(shown) : { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, etag: 'merge' });
    }
    out.set(path, entry as Node);
  }
  return out;
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
