import type { FileNode } from './nodes.js';
import type { Resolved } from './resolver.js';
import type { View } from './view.js';
import type { WritePreconditions } from './tree-write.js';

/** Paths whose last write is remembered; past this the memory starts over. */
const MAX_WARM_PATHS = 10_000;

/** A write's resolution and the node it put there. */
export interface LandedWrite {
  readonly r: Resolved;
  readonly node: FileNode;
}

/**
 * The resolution a write of a path on a warm function starts from: what the last write of it
 * here left (its node, and parents that were already the container's own). It is only a guess:
 * the write's transaction pins every node it relied on (the file's ETag, every parent's, the
 * container record's proof), and a stale guess fails it and is resolved afresh, so a repeated
 * write costs its transaction alone. Anything decided before the transaction (preconditions, a
 * write of nothing) must resolve instead.
 */
export class WarmPaths {
  private readonly paths = new Map<string, Resolved>();

  guess(view: View, path: string, options: WritePreconditions): Resolved | undefined {
    // A precondition is decided before the transaction, so it needs the node as it is now.
    if (options.ifMatch !== undefined || options.ifNoneMatch !== undefined) return undefined;
    return this.paths.get(keyOf(view, path));
  }

  remember(view: View, path: string, landed: LandedWrite | undefined): void {
    if (!landed) return;
    const { r, node } = landed;
    // Only a plain file reached without a symlink, under parents the container already had
    // (none copied up, so their ETags are what the transaction checked).
    const plain = !node.inode && !(r.node?.type === 'file' && r.node.inode) && r.absolutePath === path;
    if (!plain || r.ancestors.some((a) => !a.synthetic && a.top?.type !== 'dir')) {
      this.forget(view, path);
      return;
    }
    if (this.paths.size >= MAX_WARM_PATHS) this.paths.clear();
    this.paths.set(keyOf(view, path), { ...r, node, top: node });
  }

  forget(view: View, path: string): void {
    this.paths.delete(keyOf(view, path));
  }
}

function keyOf(view: View, path: string): string {
  return `${view.tenant}\0${view.top ?? ''}\0${path}`;
}
