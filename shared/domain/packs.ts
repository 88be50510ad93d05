import { keys, type NamespaceId } from '../keys.js';
import { baseName, compareNames, parentOf } from '../paths.js';
import type { Item } from '../ports/metadata-store.js';
import type { LayerTree } from './layer-tree.js';
import { nodeFromAttrs, nodeToAttrs, type Node } from './nodes.js';

/** DynamoDB items stop at 400 KB; past this much JSON a directory keeps one item per child. */
export const MAX_PACK_BYTES = 300_000;

/** A directory's children as stored in one pack item, or `split` when they did not fit. */
export interface Pack {
  readonly split: boolean;
  readonly children: ReadonlyMap<string, Node>;
}

export function packFromAttrs(attrs: Record<string, unknown>): Pack {
  if (attrs.split) return { split: true, children: new Map() };
  const raw = JSON.parse((attrs.c as string | undefined) ?? '{}') as Record<string, Record<string, unknown>>;
  return { split: false, children: new Map(Object.entries(raw).map(([name, a]) => [name, nodeFromAttrs(a)])) };
}

/** Sorted children of a pack after `after`, in the store's name order. */
export function packEntries(pack: Pack, after?: string): [string, Node][] {
  return [...pack.children].filter(([name]) => after === undefined || compareNames(name, after) > 0).sort((a, b) => compareNames(a[0], b[0]));
}

/** The items that store a tree as an immutable index: one pack per directory, split where too big. */
export function indexItems(tenant: string, ns: NamespaceId, tree: LayerTree): Item[] {
  const byDir = new Map<string, Record<string, Record<string, unknown>>>();
  for (const [path, node] of tree.nodes) {
    const dir = parentOf(path);
    let children = byDir.get(dir);
    // No prototype: a file named `__proto__` must be an entry like any other.
    if (!children) byDir.set(dir, (children = Object.create(null) as Record<string, Record<string, unknown>>));
    children[baseName(path)] = nodeToAttrs(node);
  }
  const items: Item[] = [];
  for (const [dir, children] of byDir) {
    const packKey = keys.pack(tenant, ns, dir);
    // One string rather than a nested map: far cheaper for the store to write and parse.
    const packed = JSON.stringify(children);
    if (Buffer.byteLength(packed) <= MAX_PACK_BYTES) {
      items.push({ ...packKey, attrs: { c: packed } });
      continue;
    }
    items.push({ ...packKey, attrs: { split: true } });
    for (const [name, attrs] of Object.entries(children)) items.push({ ...keys.node(tenant, ns, dir === '/' ? `/${name}` : `${dir}/${name}`), attrs });
  }
  return [...items, ...linkItems(tenant, ns, tree)];
}

/**
 * The names of each hard-linked file of an index, in its inode partition (`i`: the inode, `n`:
 * names, split over items when many): how a recursive remove finds the image's names it unlinks
 * without walking the tree.
 */
function linkItems(tenant: string, ns: NamespaceId, tree: LayerTree): Item[] {
  const names = new Map<string, string[]>();
  for (const [path, node] of tree.nodes) {
    if (node.type !== 'file' || !node.inode) continue;
    const list = names.get(node.inode);
    if (list) list.push(path);
    else names.set(node.inode, [path]);
  }
  const items: Item[] = [];
  for (const [inode, paths] of names) {
    let page: string[] = [];
    let bytes = 0;
    const flush = () => {
      items.push({ ...keys.inode(tenant, ns, `${inode}#${items.length}`), attrs: { i: inode, n: page } });
      page = [];
      bytes = 0;
    };
    for (const path of paths) {
      if (bytes + Buffer.byteLength(path) > MAX_PACK_BYTES) flush();
      page.push(path);
      bytes += Buffer.byteLength(path) + 3;
    }
    flush();
  }
  return items;
}

/** An index's hard-linked files, each with the names it has there. */
export function linkNamesFromItems(items: readonly Item[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const item of items) out.set(item.attrs.i as string, [...(out.get(item.attrs.i as string) ?? []), ...(item.attrs.n as string[])]);
  return out;
}
