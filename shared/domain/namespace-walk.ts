import { keys, isPacked, type NamespaceId } from '../keys.js';
import { joinPath } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type ItemKey, type MetadataStore } from '../ports/metadata-store.js';
import { nodeFromAttrs, type Node } from './nodes.js';
import { packFromAttrs } from './packs.js';

/** Walks that the sweep and fsck share: every item and node of a namespace, every blob under a prefix. */

/** Every node item of an unpacked namespace (a container's or volume's), found by walking from the root partition. */
export async function* namespaceNodes(meta: MetadataStore, tenant: string, ns: NamespaceId): AsyncGenerator<[ItemKey, Record<string, unknown>]> {
  const pending = ['/'];
  while (pending.length) {
    const dir = pending.pop()!;
    for (const item of await queryAll(meta, keys.nodePartition(tenant, ns, dir))) {
      yield [{ pk: item.pk, sk: item.sk }, item.attrs];
      if (item.attrs.t === 'd') pending.push(joinPath(dir, item.sk));
    }
  }
}

/**
 * The inode items of a namespace, with their attributes: a container's or volume's hard-linked
 * files, or an index's lists of hard-link names.
 */
export async function* namespaceInodes(meta: MetadataStore, tenant: string, ns: NamespaceId): AsyncGenerator<[ItemKey, Record<string, unknown>]> {
  for (const item of await queryAll(meta, keys.inodes(tenant, ns))) yield [{ pk: item.pk, sk: item.sk }, item.attrs];
}

/** Every item of a packed index (an image's): each directory's pack, and the child items of split ones. */
export async function* packItems(meta: MetadataStore, tenant: string, ns: NamespaceId): AsyncGenerator<ItemKey> {
  for await (const { key } of packedNodes(meta, tenant, ns)) yield key;
}

/** The items of a packed index with the nodes each holds. */
export async function* packedNodes(meta: MetadataStore, tenant: string, ns: NamespaceId): AsyncGenerator<{ key: ItemKey; nodes: [path: string, node: Node][] }> {
  const pending = ['/'];
  while (pending.length) {
    const dir = pending.pop()!;
    const key = keys.pack(tenant, ns, dir);
    const item = await meta.get(key);
    if (!item) continue;
    const pack = packFromAttrs(item.attrs);
    const children: [string, Node][] = pack.split ? (await queryAll(meta, keys.nodePartition(tenant, ns, dir))).map((i) => [i.sk, nodeFromAttrs(i.attrs)]) : [...pack.children];
    yield { key, nodes: pack.split ? [] : children.map(([name, node]) => [joinPath(dir, name), node]) };
    if (pack.split) for (const [name, node] of children) yield { key: keys.node(tenant, ns, joinPath(dir, name)), nodes: [[joinPath(dir, name), node]] };
    for (const [name, node] of children) if (node.type === 'dir') pending.push(joinPath(dir, name));
  }
}

/** Item keys of any namespace, packed or not. */
export async function* namespaceItems(meta: MetadataStore, tenant: string, ns: NamespaceId): AsyncGenerator<ItemKey> {
  if (isPacked(ns)) yield* packItems(meta, tenant, ns);
  else for await (const [key] of namespaceNodes(meta, tenant, ns)) yield key;
  for await (const [key] of namespaceInodes(meta, tenant, ns)) yield key;
}

export async function* keysUnder(blobs: BlobStore, prefix: string): AsyncGenerator<string> {
  let cursor: string | undefined;
  do {
    const page = await blobs.list(prefix, cursor);
    yield* page.keys;
    cursor = page.cursor;
  } while (cursor);
}
