import { InvalidInputError } from '../errors.js';
import { baseName, joinPath, parentOf, prefixes } from '../paths.js';
import { DEFAULT_DIR_META, type DirNode, type FileNode, type Node, type VisibleNode } from './nodes.js';

/** One entry of a layer's table of contents: what the tar says, and where a file's bytes lie in it. */
export interface TocEntry {
  readonly path: string;
  readonly kind: 'file' | 'dir' | 'symlink' | 'hardlink' | 'whiteout' | 'opaque';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Milliseconds since the epoch. */
  readonly mtime: number;
  readonly size: number;
  /** Offset of the file's bytes in the uncompressed layer tar. */
  readonly offset: number;
  /** Symlink target as written, or the normalised hard-link target path. */
  readonly linkname?: string;
}

/**
 * A file tree in memory with a child index, so that deleting a directory costs its own subtree
 * rather than a scan of everything. Used to apply layers (OCI changeset rules) when a merged
 * chain index is built.
 */
export class LayerTree {
  readonly nodes = new Map<string, Node>();
  private readonly childNames = new Map<string, Set<string>>();

  get(path: string): Node | undefined {
    return this.nodes.get(path);
  }

  set(path: string, node: Node): void {
    if (!this.nodes.has(path)) {
      const parent = parentOf(path);
      let names = this.childNames.get(parent);
      if (!names) this.childNames.set(parent, (names = new Set()));
      names.add(baseName(path));
    }
    this.nodes.set(path, node);
  }

  /** Removes a path and everything below it. */
  removeTree(path: string): void {
    this.removeChildren(path);
    if (this.nodes.delete(path)) this.childNames.get(parentOf(path))?.delete(baseName(path));
  }

  removeChildren(dir: string): void {
    const names = this.childNames.get(dir);
    if (!names) return;
    for (const name of [...names]) this.removeTree(joinPath(dir, name));
    this.childNames.delete(dir);
  }

  /** True when nothing below `path` but whiteouts and the directories that hold them. */
  onlyMarkersBelow(path: string): boolean {
    for (const name of this.childNames.get(path) ?? []) {
      const child = joinPath(path, name);
      const node = this.nodes.get(child)!;
      if (node.type === 'whiteout') continue;
      if (node.type !== 'dir' || node.etag !== IMPLICIT) return false;
      if (!this.onlyMarkersBelow(child)) return false;
    }
    return true;
  }

  /** Makes sure every ancestor of `path` is a directory; a non-directory in the way is replaced (a lower one, when merging). */
  ensureParents(path: string): void {
    for (const p of prefixes(parentOf(path))) {
      const existing = this.nodes.get(p);
      if (existing?.type === 'dir') continue;
      if (existing) this.removeTree(p);
      this.set(p, implicitDir(p));
    }
  }

  /** Sorted paths, parents before children. */
  sortedPaths(): string[] {
    return [...this.nodes.keys()].sort(comparePaths);
  }
}

const IMPLICIT = 'implicit';

function implicitDir(_path: string): DirNode {
  return { type: 'dir', ...DEFAULT_DIR_META, etag: IMPLICIT };
}

function isImplicit(node: Node): boolean {
  return node.type === 'dir' && node.etag === IMPLICIT && !node.opaque;
}

/** The nearest of `path` and its ancestors that this layer holds as a file, symlink or link. */
function ownNonDirectory(tree: LayerTree, path: string): string | undefined {
  for (const p of prefixes(path)) {
    const node = tree.get(p);
    if (node && node.type !== 'dir' && node.type !== 'whiteout') return p;
  }
  return undefined;
}

/**
 * Makes the ancestors of a layer entry directories of the layer. A whiteout in the way becomes
 * an opaque directory, since it still hides the lower one; a file, symlink or link of the layer
 * in the way makes the layer invalid, as unpacking it fails with ENOTDIR.
 */
function ensureOwnParents(tree: LayerTree, path: string): void {
  for (const p of prefixes(parentOf(path))) {
    const existing = tree.get(p);
    if (existing?.type === 'dir') continue;
    if (existing && existing.type !== 'whiteout') throw new InvalidInputError(`layer holds ${path} under ${p}, which it holds as a ${existing.type}`);
    tree.set(p, existing ? { ...implicitDir(p), opaque: true } : implicitDir(p));
  }
}

/** Compares paths component by component, so '/a/b' sorts before '/a-b' and parents before children. */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * The nodes of one layer on its own: visible entries, whiteouts, and opaque directories, with
 * implicit parent directories added so that a lookup can walk it one level at a time.
 * `lowerFile` finds the target of a hard link that points into a lower layer.
 */
export function layerNodes(toc: readonly TocEntry[], blobKey: string, etagPrefix: string, lowerFile: (path: string) => VisibleNode | undefined): LayerTree {
  const tree = new LayerTree();
  /** Hard links within the layer: each name's first name, and each first name's names. */
  const linkRoot = new Map<string, string>();
  const groups = new Map<string, string[]>();
  const lowerTargets = new Map<string, FileNode>();
  for (const e of toc) {
    if (e.path === '/') continue;
    if (e.kind === 'opaque' || e.kind === 'whiteout') {
      // Under a file, symlink or link of this layer a marker hides nothing: that entry already
      // replaces whatever lies below (umoci writes `old` then `old/.wh.o`; its unpack agrees).
      const markerDir = e.kind === 'opaque' ? e.path : parentOf(e.path);
      if (ownNonDirectory(tree, markerDir)) continue;
    }
    if (e.kind === 'opaque') {
      const dir = e.path;
      ensureOwnParents(tree, joinPath(dir, 'x'));
      const existing = tree.get(dir);
      tree.set(dir, existing?.type === 'dir' ? { ...existing, opaque: true } : { ...implicitDir(dir), opaque: true });
      continue;
    }
    ensureOwnParents(tree, e.path);
    if (e.kind === 'whiteout') {
      // A whiteout never hides an entry of its own layer, but it still hides the lower one:
      // a directory of the same name in this layer must not merge with what is below.
      const own = tree.get(e.path);
      if (!own) tree.set(e.path, { type: 'whiteout' });
      else if (own.type === 'dir') tree.set(e.path, { ...own, opaque: true });
      continue;
    }
    const meta = { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: e.mtime, etag: `${etagPrefix}-${e.offset}` };
    let existing = tree.get(e.path);
    if (existing?.type === 'dir' && e.kind !== 'dir' && existing.etag === IMPLICIT && tree.onlyMarkersBelow(e.path)) {
      // Whiteouts under a name this layer then makes a file: the file hides all they would.
      tree.removeTree(e.path);
      existing = undefined;
    }
    if (existing && existing.type !== 'whiteout' && !(existing.type === 'dir' && e.kind === 'dir')) {
      throw new InvalidInputError(existing.type === 'dir' && e.kind !== 'dir' ? `layer holds ${e.path} as a ${e.kind} after entries under it` : `layer holds ${e.path} twice`);
    }
    switch (e.kind) {
      case 'dir':
        tree.set(e.path, { type: 'dir', ...meta, opaque: existing?.type === 'whiteout' || (existing?.type === 'dir' && existing.opaque) || undefined });
        break;
      case 'file':
        tree.set(e.path, { type: 'file', ...meta, size: e.size, extents: e.size > 0 ? [[blobKey, e.offset, e.size]] : [] });
        break;
      case 'symlink':
        tree.set(e.path, { type: 'symlink', ...meta, target: e.linkname ?? '' });
        break;
      case 'hardlink': {
        const own = tree.get(e.linkname!);
        if (own && own.type !== 'whiteout' && own.type !== 'file') throw new InvalidInputError(`hard link ${e.path} points to ${e.linkname}, which is not a file`);
        const root = linkRoot.get(e.linkname!) ?? e.linkname!;
        let names = groups.get(root);
        if (!names) {
          // A link into a lower layer joins the lower file's names (as unpacking into one tree does).
          const target = own?.type === 'file' ? own : lowerFile(root);
          if (!target || target.type !== 'file') throw new InvalidInputError(`hard link ${e.path} points to ${e.linkname}, which is not a file in this or a lower layer`);
          if (own?.type !== 'file') lowerTargets.set(root, target);
          names =
            own?.type === 'file' || !target.names
              ? [root]
              : target.names.filter((n) => {
                  const lower = lowerFile(n);
                  return lower?.type === 'file' && lower.inode === target.inode;
                });
          groups.set(root, names);
        }
        names.push(e.path);
        linkRoot.set(e.path, root);
        tree.set(e.path, { type: 'file', ...meta, size: 0, extents: [] });
        break;
      }
    }
  }
  // Names of one file: each a copy of it that knows the file's identity and names. Lower names
  // are written into this layer too, so the merged tree shows them linked.
  for (const [root, names] of groups) {
    const file = lowerTargets.get(root) ?? tree.get(root);
    if (file?.type !== 'file') continue;
    const linked: FileNode = { ...file, inode: file.inode ?? file.etag, nlink: names.length, names };
    for (const name of names) {
      tree.ensureParents(name);
      tree.set(name, linked);
    }
  }
  return tree;
}

/**
 * Applies one layer onto the merged tree of the layers below it: opaque directories and
 * whiteouts first (they only ever hide lower entries), then the layer's entries, where two
 * directories merge with the upper's attributes and anything else replaces what was there.
 */
export function applyLayer(merged: LayerTree, layer: LayerTree): void {
  const paths = layer.sortedPaths();
  for (const path of paths) {
    const node = layer.get(path)!;
    if (node.type === 'whiteout') merged.removeTree(path);
    else if (node.type === 'dir' && node.opaque) merged.removeChildren(path);
  }
  for (const path of paths) {
    const node = layer.get(path)!;
    if (node.type === 'whiteout') continue;
    merged.ensureParents(path);
    const below = merged.get(path);
    // A parent the tar never listed keeps the attributes of the directory below it.
    if (below?.type === 'dir' && isImplicit(node)) continue;
    if (below && (below.type !== 'dir' || node.type !== 'dir')) merged.removeTree(path);
    merged.set(path, node.type === 'dir' ? { ...node, opaque: undefined } : node);
  }
}
