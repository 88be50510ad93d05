import { FsError, NotFoundError } from '../errors.js';
import { isPacked, keys, type NamespaceId } from '../keys.js';
import { baseName, components, isWithin, joinPath, parentOf, prefixes, rebase, symlinkDestination } from '../paths.js';
import { itemId, type Condition, type ItemKey, type MetadataStore } from '../ports/metadata-store.js';
import { fileThroughInode, nodeFromAttrs, rootNode, DEFAULT_DIR_META, type DirNode, type FileNode, type Node, type VisibleNode } from './nodes.js';
import { packFromAttrs, type Pack } from './packs.js';
import type { Mount, View } from './view.js';

/** Linux's limit on symlinks followed while resolving one path. */
export const MAX_SYMLINK_HOPS = 40;

/**
 * An item fetched with a path's nodes that shows a cached record still holds: it exists, its
 * `id` is `id` and its `top` is `top` (absent for containers made before forks).
 */
export interface Proof {
  readonly key: ItemKey;
  readonly id: string;
  readonly top?: string;
}

/** The conditions a transaction puts on a proof's item. */
export function proofConditions(proof: Proof): Condition[] {
  return [{ kind: 'equals', field: 'id', value: proof.id }, proof.top ? { kind: 'equals', field: 'top', value: proof.top } : { kind: 'lacks', field: 'top' }];
}

/**
 * Where a directory's children are read from: the top namespace, then these lowers. `lowerPath`
 * is the directory's path in the merged lower tree (what a rename's redirect records); each lower
 * is read there too, unless a sealed container layer above it renamed the directory (`paths`).
 */
export interface ChildSources {
  readonly lowerPath: string | null;
  readonly activeLowers: readonly NamespaceId[];
  readonly paths?: ReadonlyMap<NamespaceId, string>;
}

/** The path at which `ns`, one of `children.activeLowers`, holds the directory. */
export function sourcePath(children: ChildSources, ns: NamespaceId): string {
  return children.paths?.get(ns) ?? (children.lowerPath as string);
}

const NO_SOURCES: ChildSources = { lowerPath: null, activeLowers: [] };

export interface Ancestor {
  readonly path: string;
  readonly node: DirNode;
  readonly top?: Node;
  readonly synthetic?: boolean;
}

export interface Resolved {
  /** The view the path landed in: the container's, or a mounted volume's. */
  readonly view: View;
  readonly mount?: Mount;
  /** Path inside `view` after following symlinks. */
  readonly path: string;
  /** The same path as the caller sees it (container coordinates). */
  readonly absolutePath: string;
  /** The merged node, or undefined when the last component does not exist. */
  readonly node?: VisibleNode;
  /** The top namespace's own node at `path` (possibly a whiteout). */
  readonly top?: Node;
  /** The first visible node of the lower layers at `path`. */
  readonly lower?: VisibleNode;
  /** For a directory: where its children come from. */
  readonly children: ChildSources;
  /** The directories above `path` inside `view`, outermost first (the root excluded). */
  readonly ancestors: readonly Ancestor[];
  /** A directory that exists only because a mount lies below it. */
  readonly synthetic?: boolean;
}

interface WalkState extends ChildSources {
  path: string;
}

/**
 * Resolves paths over a view with overlayfs rules (upper wins, directories merge, whiteouts and
 * opaque directories hide what is below). All nodes a walk can need are fetched in one batch
 * first, so reading a file costs one metadata round trip however deep the layer stack is;
 * only renamed directories and symlinks cost more.
 */
export class Resolver {
  /** Raw items by id (null: known to be absent). */
  private readonly cache = new Map<string, Record<string, unknown> | null>();
  private readonly packs = new Map<string, Pack | null>();

  constructor(private readonly meta: MetadataStore) {}

  /** `extra` items fetched in the same round trip as the first batch of nodes (null: absent). */
  private readonly extras = new Map<string, Record<string, unknown> | null>();

  /**
   * Whether a proof fetched as an `extra` item holds (the item is there and names `proof.id`):
   * undefined when the resolution never got as far as fetching it.
   */
  confirms(proof: Proof): boolean | undefined {
    const found = this.extras.get(itemId(proof.key));
    return found === undefined ? undefined : found !== null && found.id === proof.id && found.top === proof.top;
  }

  /**
   * `follow`: whether a symlink at the last component is followed (those before it always are,
   * unless `physical`: then a symlink before the last component ends the walk with ENOTDIR, as a
   * walk of the tree that never follows links sees it).
   */
  async resolve(view: View, rawPath: string, options: { follow: boolean; physical?: boolean; extra?: readonly ItemKey[] }): Promise<Resolved> {
    let absolute = rawPath;
    let extra = options.extra ?? [];
    for (let hops = 0; ; ) {
      const mount = mountFor(view, absolute);
      const sub = mount ? mount.view : view;
      const base = mount ? mount.target : '/';
      const path = mount ? rebase(absolute, mount.target, '/') : absolute;
      await this.prefetch(sub, path, extra);
      extra = [];
      const outcome = await this.walk(sub, path, base, view, options.follow, options.physical ?? false);
      if ('restart' in outcome) {
        if (++hops > MAX_SYMLINK_HOPS) throw new FsError('ELOOP', `too many levels of symbolic links resolving ${rawPath}`);
        absolute = outcome.restart;
        continue;
      }
      const node = outcome.node && (await seenFrom(this.meta, sub, outcome.node));
      return { ...outcome, node, view: sub, mount, absolutePath: base === '/' ? outcome.path : rebase(outcome.path, '/', base) };
    }
  }

  /**
   * A lookup of directory `dir` in `lowers` alone (a suffix of the view's lowers), for a redirect
   * target: where its children come from.
   */
  private async dirSourcesIn(view: View, lowers: readonly NamespaceId[], dir: string): Promise<ChildSources> {
    let state: ChildSources = { lowerPath: '/', activeLowers: lowers };
    await this.prefetchKeys(prefixes(dir).flatMap((p) => lowers.map((ns) => lookupKey(view.tenant, ns, p))));
    for (const name of components(dir)) {
      const found = await this.lowerLookup(view, state, name);
      if (!found.node || found.node.type !== 'dir') return NO_SOURCES;
      state = found.children;
    }
    return state;
  }

  private async walk(view: View, path: string, base: string, outer: View, follow: boolean, physical: boolean): Promise<Omit<Resolved, 'view' | 'mount' | 'absolutePath'> | { restart: string }> {
    const parts = components(path);
    let state: WalkState = { path: '/', lowerPath: '/', activeLowers: view.lowers };
    const ancestors: Ancestor[] = [];
    if (parts.length === 0) {
      return { path: '/', node: rootNode(), children: state, ancestors };
    }
    for (let i = 0; i < parts.length; i++) {
      const childPath = joinPath(state.path, parts[i]);
      const last = i === parts.length - 1;
      const top = view.top ? await this.node(view.tenant, view.top, childPath) : undefined;
      const lower = await this.lowerLookup(view, state, parts[i]);

      let node: VisibleNode | undefined;
      let next: ChildSources = NO_SOURCES;
      if (top) {
        if (top.type === 'dir') {
          node = top;
          if (top.redirect) next = await this.dirSourcesIn(view, view.lowers, top.redirect);
          else if (!top.opaque && lower.node?.type === 'dir') next = lower.children;
        } else if (top.type !== 'whiteout') node = top;
      } else if (lower.node) {
        node = lower.node;
        if (lower.node.type === 'dir') next = lower.children;
      }

      let synthetic = false;
      if (!node && view === outer && outer.mounts.some((m) => isWithin(m.target, rebase(childPath, '/', base)) && m.target !== childPath)) {
        node = { type: 'dir', ...DEFAULT_DIR_META, etag: 'mountpoint' };
        synthetic = true;
      }

      if (node?.type === 'symlink' && !last && physical) throw new FsError('ENOTDIR', `not a directory: ${rebase(childPath, '/', base)}`);
      if (node?.type === 'symlink' && (!last || follow)) {
        const linkAbsolute = base === '/' ? childPath : rebase(childPath, '/', base);
        const rest = parts.slice(i + 1).join('/');
        const destination = symlinkDestination(linkAbsolute, node.target);
        return { restart: rest ? joinPath(destination, rest) : destination };
      }
      if (last) {
        return { path: childPath, node, top, lower: lower.node, children: next, ancestors, synthetic };
      }
      if (!node) throw new NotFoundError(`no such file or directory: ${rebase(childPath, '/', base)}`);
      if (node.type !== 'dir') throw new FsError('ENOTDIR', `not a directory: ${rebase(childPath, '/', base)}`);
      ancestors.push({ path: childPath, node, top, synthetic });
      state = { path: childPath, ...next };
    }
    throw new Error('unreachable');
  }

  /**
   * The first visible lower node named `name` in the directory `from` describes, and where a
   * directory there merges its children from: a whiteout hides everything below it, a
   * non-directory ends the merge, an opaque directory is the last one merged, and a directory a
   * sealed container layer renamed (redirect) merges the layers below it from its old path.
   */
  private async lowerLookup(view: View, from: ChildSources, name: string): Promise<{ node?: VisibleNode; children: ChildSources }> {
    if (from.lowerPath === null) return { children: NO_SOURCES };
    const lowerPath = joinPath(from.lowerPath, name);
    let found: VisibleNode | undefined;
    const active: NamespaceId[] = [];
    const paths = new Map<NamespaceId, string>();
    for (const ns of from.activeLowers) {
      const at = joinPath(sourcePath(from, ns), name);
      const node = await this.node(view.tenant, ns, at);
      if (!node) continue;
      if (!found) {
        if (node.type === 'whiteout') return { children: NO_SOURCES };
        found = node;
        if (node.type !== 'dir') return { node, children: NO_SOURCES };
      } else if (node.type !== 'dir') break;
      active.push(ns);
      if (at !== lowerPath) paths.set(ns, at);
      if (node.opaque) break;
      if (node.redirect) {
        const rest = await this.dirSourcesIn(view, view.lowers.slice(view.lowers.indexOf(ns) + 1), node.redirect);
        for (const below of rest.activeLowers) {
          active.push(below);
          paths.set(below, sourcePath(rest, below));
        }
        break;
      }
    }
    return { node: found, children: { lowerPath, activeLowers: active, ...(paths.size ? { paths } : {}) } };
  }

  /**
   * One batch (in chunks the store splits) for every node the walks of `paths` may touch, so a
   * diff or merge resolving thousands of paths costs a few round trips, not one per path.
   */
  async prefetchPaths(view: View, paths: Iterable<string>): Promise<void> {
    const nss = view.top ? [view.top, ...view.lowers] : [...view.lowers];
    const wanted = new Map<string, ItemKey>();
    for (const path of paths) for (const p of prefixes(path)) for (const ns of nss) wanted.set(itemId(lookupKey(view.tenant, ns, p)), lookupKey(view.tenant, ns, p));
    await this.prefetchKeys([...wanted.values()]);
  }

  /** One batch for every node the walk of `path` may touch, plus `extra` items. */
  private async prefetch(view: View, path: string, extra: readonly ItemKey[]): Promise<void> {
    const nss = view.top ? [view.top, ...view.lowers] : [...view.lowers];
    const wanted = prefixes(path).flatMap((p) => nss.map((ns) => lookupKey(view.tenant, ns, p)));
    await this.prefetchKeys(wanted, extra);
  }

  private async prefetchKeys(lookupKeys: readonly ItemKey[], extra: readonly ItemKey[] = []): Promise<void> {
    const missing = [...new Map(lookupKeys.filter((k) => !this.cache.has(itemId(k))).map((k) => [itemId(k), k])).values()];
    if (missing.length === 0 && extra.length === 0) return;
    const items = await this.meta.getMany([...missing, ...extra]);
    for (const k of missing) this.cache.set(itemId(k), items.get(itemId(k))?.attrs ?? null);
    for (const k of extra) {
      const attrs = items.get(itemId(k))?.attrs ?? null;
      this.extras.set(itemId(k), attrs);
      this.cache.set(itemId(k), attrs);
    }
  }

  /** An item's attributes, from this resolver's batches when they fetched it (a listing's packs). */
  async item(key: ItemKey): Promise<Record<string, unknown> | undefined> {
    const id = itemId(key);
    if (!this.cache.has(id)) this.cache.set(id, (await this.meta.get(key))?.attrs ?? null);
    return this.cache.get(id) ?? undefined;
  }

  /** A directory's pack, parsed once per resolver however many of its children are looked up. */
  private async pack(tenant: string, ns: NamespaceId, dir: string): Promise<Pack | undefined> {
    const key = keys.pack(tenant, ns, dir);
    const id = itemId(key);
    if (!this.packs.has(id)) {
      const attrs = await this.item(key);
      this.packs.set(id, attrs ? packFromAttrs(attrs) : null);
    }
    return this.packs.get(id) ?? undefined;
  }

  /** The node at `path` in one namespace; in a packed index it is read from its parent's pack. */
  async node(tenant: string, ns: NamespaceId, path: string): Promise<Node | undefined> {
    if (isPacked(ns)) {
      const pack = await this.pack(tenant, ns, parentOf(path));
      if (!pack) return undefined;
      if (!pack.split) return pack.children.get(baseName(path));
    }
    const attrs = await this.item(keys.node(tenant, ns, path));
    return attrs ? nodeFromAttrs(attrs) : undefined;
  }
}

/**
 * The node a walk that never follows a symlink finds at `path`, or undefined when it or a parent
 * is not there or not a directory (through `resolver`, whose batches may hold it already).
 */
export async function physicalNode(resolver: Resolver, view: View, path: string): Promise<VisibleNode | undefined> {
  try {
    return (await resolver.resolve(view, path, { follow: false, physical: true })).node;
  } catch (error) {
    if (error instanceof NotFoundError || error instanceof FsError) return undefined;
    throw error;
  }
}

/**
 * `path` resolved without following a symlink at its end (nor any, with `physical`), or
 * undefined when it or a parent is not there or not a directory.
 */
export async function resolveIfPresent(meta: MetadataStore, view: View, path: string, options: { physical?: boolean } = {}): Promise<Resolved | undefined> {
  try {
    return await new Resolver(meta).resolve(view, path, { follow: false, physical: options.physical });
  } catch (error) {
    if (error instanceof NotFoundError || error instanceof FsError) return undefined;
    throw error;
  }
}

/**
 * A node as the view shows it. A name of a container's or volume's own hard link is read
 * through the inode item all its names share; a name of an image's hard link through the
 * container's copy of it once a change through any of its names made one (overlayfs's index), so
 * that names the copy-up did not reach (below a renamed directory) show it too. The copy is
 * looked for in the top, then in the layers forks sealed below it, newest first. Each costs one
 * more read, and only hard-linked files pay it. Anything else is shown as it is.
 */
export async function seenFrom<T extends Node>(meta: MetadataStore, view: View, node: T): Promise<T | FileNode> {
  return (await seenFromAll(meta, view, [['', node]]))[0][1];
}

/** `seenFrom` for the entries of a listing: one batch read for all the hard-linked files among them. */
export async function seenFromAll<T extends Node>(meta: MetadataStore, view: View, entries: readonly [string, T][]): Promise<[string, T | FileNode][]> {
  const owners = [...(view.top ? [view.top] : []), ...view.lowers.filter((ns) => ns.startsWith('c:'))];
  const inodeKeys = (node: Node) => (node.type === 'file' && node.inode ? owners.map((ns) => keys.inode(view.tenant, ns, node.inode!)) : []);
  const wanted = entries.flatMap(([, node]) => inodeKeys(node));
  if (wanted.length === 0) return [...entries];
  const items = wanted.length === 1 ? new Map([[itemId(wanted[0]), await meta.get(wanted[0])]]) : await meta.getMany(wanted);
  return entries.map(([name, node]) => {
    const candidates = inodeKeys(node);
    if (candidates.length === 0) return [name, node];
    const at = candidates.findIndex((key) => items.get(itemId(key)) !== undefined);
    if (at >= 0) {
      const file = fileThroughInode(node as FileNode, items.get(itemId(candidates[at]))!.attrs);
      return [name, owners[at] === view.top ? file : { ...file, sealedInode: true }];
    }
    if ((node as FileNode).linkName) throw new Error(`hard link ${(node as FileNode).inode} in ${view.top} has no inode item`);
    return [name, node];
  });
}

/** The item a lookup of `path` reads first: its parent's pack in an index, its own item elsewhere. */
function lookupKey(tenant: string, ns: NamespaceId, path: string): ItemKey {
  return isPacked(ns) ? keys.pack(tenant, ns, parentOf(path)) : keys.node(tenant, ns, path);
}

/** The innermost mount containing `path`, if any. */
export function mountFor(view: View, path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const m of view.mounts) {
    if (isWithin(path, m.target) && (!best || m.target.length > best.target.length)) best = m;
  }
  return best;
}
