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

/**
 * Directories a side renamed, new path to old: a directory with a redirect to a base directory.
 * `followed`: the side has no directory at the old path any more, so the other side's changes
 * there follow to the new path. `recreated`: it made a new directory there since; where the
 * other side's changes there belong is then a guess, and they are conflicts (git too reports
 * them, as rename/delete or file location conflicts).
 */
export async function renamesOf(
  changes: ReadonlyMap<string, TreeChange>,
  trees: MergeTrees,
  side: (path: string) => Promise<VisibleNode | undefined>,
): Promise<{ followed: Map<string, string>; recreated: Map<string, string> }> {
  const followed = new Map<string, string>();
  const recreated = new Map<string, string>();
  for (const change of changes.values()) {
    const redirect = change.kind === ChangeKind.Added && change.to?.type === 'dir' ? change.to.redirect : undefined;
    if (!redirect || (await trees.base(redirect))?.type !== 'dir') continue;
    if ((await side(redirect))?.type !== 'dir') followed.set(change.path, redirect);
    else recreated.set(change.path, redirect);
  }
  return { followed, recreated };
}

/** Whether a side still shows the base's contents of a directory at its path: a directory there that is not a new one. */
function shows(node: VisibleNode | undefined): boolean {
  return node?.type === 'dir' && !node.opaque;
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
  const { followed: oursRenames, recreated: oursRecreated } = await renamesOf(ours, trees, trees.ours);
  const { followed: theirsRenames, recreated: theirsRecreated } = await renamesOf(theirs, trees, trees.theirs);
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

  // What the source did at a path it renamed a directory away from (removed it, or made a new
  // directory or file there) is taken with the rename, never path by path.
  settled.push(...renamedFrom);
  const isSettled = (path: string) => settled.some((dir) => isWithin(path, dir));
  /** The target's path for a path of the source: moved along with the innermost directory the target renamed around it. */
  const toOurs = (path: string) => {
    const [to, from] = [...oursRenames].filter(([, f]) => isWithin(path, f)).sort(([, a], [, b]) => b.length - a.length)[0] ?? [];
    return to === undefined ? path : rebase(path, from!, to);
  };
  const toTheirs = (path: string) => {
    const [to, from] = [...oursRenames].filter(([t]) => isWithin(path, t)).sort(([a], [b]) => b.length - a.length)[0] ?? [];
    return to === undefined ? path : rebase(path, to, from!);
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

  // A directory the source renamed away and made anew, where the target changed something: one conflict.
  for (const [to, from] of theirsRecreated) {
    if (oursWithin(from).length === 0 && oursWithin(toOurs(to)).length === 0) continue;
    settled.push(from, to);
    conflict(toOurs(from), oursWithin(from).length > 0 ? 'modified' : 'added', 'renamed');
    if (strategy === 'theirs') {
      await replaceOld(from);
      await takeSubtree(to, await trees.theirs(to));
    }
  }

  for (const change of [...theirs.values()].sort((a, b) => compareBytes(a.path, b.path))) {
    const path = change.path;
    // Below a directory the target renamed away and made anew, nobody can say which one the change was meant for.
    if (!isSettled(path) && [...oursRecreated.values()].some((from) => isWithin(path, from))) {
      settled.push(path);
      conflict(path, 'renamed', sideOf(change, theirsRenames));
      if (strategy === 'theirs') put(path, change.to);
      continue;
    }
    const renamedAway = theirsRenames.get(path);
    if (renamedAway === undefined && isSettled(path)) continue;
    if (renamedAway !== undefined) {
      settled.push(path);
      // Where the moved directory lands in the target: inside a directory the target renamed, there.
      const dest = toOurs(path);
      // The target must still show the old directory's contents there, and nothing at the new path.
      const clash = !shows(await trees.ours(renamedAway)) || oursWithin(dest).length > 0 || oursGoneAbove(renamedAway) !== undefined || oursGoneAbove(dest) !== undefined;
      if (clash) {
        const oursSide = oursWithin(dest).length > 0 ? 'added' : [...oursRenames.values()].includes(renamedAway) ? 'renamed' : 'deleted';
        conflict(dest, oursSide, 'renamed');
        if (strategy === 'theirs') {
          await replaceOld(renamedAway);
          await takeSubtree(path, change.to);
        }
        continue;
      }
      taken++;
      await replaceOld(renamedAway);
      // The moved directory shows the target's own contents of the old path (its changes there included).
      entries.set(dest, { ...(layerNode(change.to!) as DirNode), redirect: renamedAway });
      await mergeInsideRename(path, renamedAway, dest);
      continue;
    }

    const at = toOurs(path);
    const removesDir = change.kind === ChangeKind.Deleted || change.to?.type !== 'dir';
    if (removesDir) settled.push(path);
    // A directory the target renamed away from where the source removed it: rename against deletion.
    const renamedOut = removesDir ? [...oursRenames].find(([, from]) => isWithin(from, at)) : undefined;
    if (renamedOut) {
      conflict(renamedOut[0], 'renamed', change.to ? 'modified' : 'deleted');
      if (strategy === 'theirs') {
        put(renamedOut[0], undefined);
        put(at, change.to);
      }
      continue;
    }
    // Moved along a rename of the target's, a path is the target's change when it differs from
    // the base at the source's path (a deletion there is listed nowhere else).
    let here = ours.get(at);
    if (!here && at !== path) {
      const moved = await trees.ours(at);
      if (!(await sameState(moved, await trees.base(path)))) here = { path: at, kind: moved ? ChangeKind.Modified : ChangeKind.Deleted, to: moved };
    }
    const above = oursGoneAbove(at);
    const below = removesDir ? oursWithin(at).filter((c) => c.path !== at) : [];
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
   * The old path of a directory the source renamed away, as the source left it: nothing there,
   * or a new directory (opaque, with all it holds) or file made there since.
   */
  async function replaceOld(from: string): Promise<void> {
    const now = await trees.theirs(from);
    if (now?.type !== 'dir') {
      put(from, now);
      return;
    }
    entries.set(from, { ...(layerNode(now) as DirNode), opaque: true });
    for await (const [path, node] of trees.below('theirs', from)) put(path, node);
  }

  /**
   * The source renamed `from` to `to` and the target did not touch `from` itself: the layer's
   * redirect already shows the target's contents (and changes) of `from` at `to`. What the
   * source changed inside since the rename is compared path by path with the base and the target.
   */
  async function mergeInsideRename(to: string, from: string, dest: string): Promise<void> {
    const seen = new Set<string>();
    const gone: string[] = [];
    const oursMoved = new Set(oursRenames.values());
    const visit = async (rel: string) => {
      if (seen.has(rel) || gone.some((g) => isWithin(rel, g))) return;
      seen.add(rel);
      const mine = await trees.theirs(rebase(rel, from, to));
      const original = await trees.base(rel);
      if (await sameState(original, mine)) return;
      const removed = !mine || mine.type !== 'dir';
      if (removed) gone.push(rel);
      // Where the path is in the target: moved along a rename of the target's, then along this one.
      const inOurs = toOurs(rel);
      const current = await trees.ours(inOurs);
      const target = isWithin(inOurs, from) ? rebase(inOurs, from, dest) : inOurs;
      // The source removed a directory the target renamed, or changed something in.
      const renamedByOurs = oursMoved.has(rel);
      if (removed && original?.type === 'dir' && (renamedByOurs || oursWithin(rel).some((c) => c.path !== rel))) {
        conflict(target, renamedByOurs ? 'renamed' : 'changed below', mine ? 'modified' : 'deleted');
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
