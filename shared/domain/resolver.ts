import { FsError, NotFoundError } from '../errors.js';
import { isPacked, keys, type NamespaceId } from '../keys.js';
import { baseName, components, isWithin, joinPath, parentOf, prefixes, rebase, symlinkDestination } from '../paths.js';
import { itemId, type ItemKey, type MetadataStore } from '../ports/metadata-store.js';
import { fileThroughInode, nodeFromAttrs, rootNode, DEFAULT_DIR_META, type DirNode, type FileNode, type Node, type VisibleNode } from './nodes.js';
import { packFromAttrs, type Pack } from './packs.js';
import type { Mount, View } from './view.js';

/** Linux's limit on symlinks followed while resolving one path. */
export const MAX_SYMLINK_HOPS = 40;

/** An item fetched with a path's nodes that shows a cached record still holds: it exists and its `id` is `id`. */
export interface Proof {
  readonly key: ItemKey;
  readonly id: string;
}

/** Where a directory's children are read from: the top namespace, then these lowers at `lowerPath`. */
export interface ChildSources {
  readonly lowerPath: string | null;
  readonly activeLowers: readonly NamespaceId[];
}

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

interface WalkState {
  path: string;
  lowerPath: string | null;
  activeLowers: readonly NamespaceId[];
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
    return found === undefined ? undefined : found !== null && found.id === proof.id;
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
      const node = outcome.node && (await seenFrom(this.meta, view.tenant, sub.top, outcome.node));
      return { ...outcome, node, view: sub, mount, absolutePath: base === '/' ? outcome.path : rebase(outcome.path, '/', base) };
    }
  }

  /** A lower-only lookup of a directory (for a redirect target): where its children come from. */
  private async lowerDirSources(view: View, dir: string): Promise<ChildSources> {
    let state: ChildSources = { lowerPath: '/', activeLowers: view.lowers };
    await this.prefetchKeys(prefixes(dir).flatMap((p) => view.lowers.map((ns) => lookupKey(view.tenant, ns, p))));
    for (const p of prefixes(dir)) {
      const found = await this.lowerLookup(view, state.activeLowers, p);
      if (!found.node || found.node.type !== 'dir') return { lowerPath: null, activeLowers: [] };
      state = { lowerPath: p, activeLowers: found.active };
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
      const lowerChild = state.lowerPath === null ? null : joinPath(state.lowerPath, parts[i]);
      const lower = lowerChild === null ? { node: undefined, active: [] as NamespaceId[] } : await this.lowerLookup(view, state.activeLowers, lowerChild);

      let node: VisibleNode | undefined;
      let next: ChildSources = { lowerPath: null, activeLowers: [] };
      if (top) {
        if (top.type === 'dir') {
          node = top;
          if (top.redirect) next = await this.lowerDirSources(view, top.redirect);
          else if (!top.opaque && lower.node?.type === 'dir') next = { lowerPath: lowerChild, activeLowers: lower.active };
        } else if (top.type !== 'whiteout') node = top;
      } else if (lower.node) {
        node = lower.node;
        if (lower.node.type === 'dir') next = { lowerPath: lowerChild, activeLowers: lower.active };
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
   * The first visible lower node at `path`, and which lowers a directory there merges from:
   * a whiteout hides everything below it, a non-directory ends the merge, an opaque directory
   * is the last one merged.
   */
  private async lowerLookup(view: View, lowers: readonly NamespaceId[], path: string): Promise<{ node?: VisibleNode; active: NamespaceId[] }> {
    let found: VisibleNode | undefined;
    const active: NamespaceId[] = [];
    for (const ns of lowers) {
      const node = await this.node(view.tenant, ns, path);
      if (!node) continue;
      if (!found) {
        if (node.type === 'whiteout') return { node: undefined, active };
        found = node;
        if (node.type !== 'dir') return { node, active };
        active.push(ns);
        if (node.opaque) break;
        continue;
      }
      if (node.type !== 'dir') break;
      active.push(ns);
      if (node.opaque) break;
    }
    return { node: found, active };
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
 * A node as the namespace `top` shows it. A name of the namespace's own hard link is read
 * through the inode item all its names share; a name of an image's hard link through the
 * container's copy of it once a change through any of its names made one (overlayfs's index), so
 * that names the copy-up did not reach (below a renamed directory) show it too. Each costs one
 * more read, and only hard-linked files pay it. Anything else is shown as it is.
 */
export async function seenFrom<T extends Node>(meta: MetadataStore, tenant: string, top: NamespaceId | undefined, node: T): Promise<T | FileNode> {
  return (await seenFromAll(meta, tenant, top, [['', node]]))[0][1];
}

/** `seenFrom` for the entries of a listing: one batch read for all the hard-linked files among them. */
export async function seenFromAll<T extends Node>(meta: MetadataStore, tenant: string, top: NamespaceId | undefined, entries: readonly [string, T][]): Promise<[string, T | FileNode][]> {
  const inodeKey = (node: Node) => (top && node.type === 'file' && node.inode ? keys.inode(tenant, top, node.inode) : undefined);
  const wanted = entries.flatMap(([, node]) => inodeKey(node) ?? []);
  if (wanted.length === 0) return [...entries];
  const items = wanted.length === 1 ? new Map([[itemId(wanted[0]), await meta.get(wanted[0])]]) : await meta.getMany(wanted);
  return entries.map(([name, node]) => {
    const key = inodeKey(node);
    if (!key) return [name, node];
    const item = items.get(itemId(key));
    if (item) return [name, fileThroughInode(node as FileNode, item.attrs)];
    if ((node as FileNode).linkName) throw new Error(`hard link ${(node as FileNode).inode} in ${top} has no inode item`);
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
