import { isPacked, keys } from '../keys.js';
import { isWithin, rebase } from '../paths.js';
import { TransactionConditionError } from '../errors.js';
import { queryAll, type Condition, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import { inodeToAttrs, nameNode, newEtag, nodeToAttrs, type FileNode, type Node } from './nodes.js';
import { linkNamesFromItems } from './packs.js';
import { resolveIfPresent, type Resolved } from './resolver.js';
import { statsChange } from './stats.js';
import { quotaChange } from './quotas.js';
import type { View } from './view.js';
import { ATTEMPTS, unchanged } from './write-conditions.js';

/** What a change to a file does to its inode item: the ops, the byte delta, the other names it touched, the new nlink. */
export interface InodeChange {
  readonly ops: WriteOp[];
  readonly sizeDelta: number;
  readonly others: Resolved[];
  readonly nlink: number;
}

/** What a change to a file that is not hard-linked does to inodes: nothing. */
export const NO_INODE_CHANGE: InodeChange = { ops: [], sizeDelta: 0, others: [], nlink: 0 };

/** An image's hard-linked file and how many of its names a removal takes. */
export interface ImageNames {
  readonly file: FileNode;
  count: number;
}

/**
 * The bookkeeping of hard links in a container or volume: the inode item every name of a file
 * shares (content, metadata, nlink, own names), its copy-up from an image, and the names a
 * removal takes. TreeWriter runs the returned ops in its own transactions.
 */
export class InodeLinks {
  constructor(
    private readonly meta: MetadataStore,
    private readonly topSubtree: (view: View, dir: string) => AsyncGenerator<[string, Node]>,
  ) {}

  /**
   * The ops that give the hard-linked file resolved at `r` the state `next` and a new name count
   * (`add` more; `dropSelf`: without the name at `r`), with their byte delta. A link of an image
   * is copied up on its first change, with every name the image gives it that still shows it
   * (overlayfs index=on), so that a write through one name is seen through all.
   */
  async change(r: Resolved, next: FileNode, options: { add: number; dropSelf: boolean }): Promise<InodeChange> {
    const file = r.node as FileNode;
    const tenant = r.view.tenant;
    const ns = r.view.top!;
    const key = keys.inode(tenant, ns, file.inode!);
    const delta = options.add - (options.dropSelf ? 1 : 0);
    const nlink = Math.max((file.nlink ?? 1) + delta, 0);
    // The file already has its item: reached through an own name, or through an image's name
    // the copy-up did not reach (only own names count in `ownNames`).
    // A link a fork sealed is copied up into the top on its first change there: its names in the
    // sealed layer read the copy from then on, as an image's names do.
    if (file.sealedInode) {
      const own = r.top?.type === 'file' && r.top.linkName === true;
      const linkUp = !own && !options.dropSelf;
      const ownNames = (own ? 1 : 0) + options.add + (linkUp ? 1 : 0) - (options.dropSelf && own ? 1 : 0);
      if (ownNames <= 0 && nlink <= 0) return { ops: [], sizeDelta: 0, others: [], nlink };
      const ops: WriteOp[] = [{ op: 'put', item: { ...key, attrs: inodeToAttrs(next, nlink, ownNames) }, conditions: [{ kind: 'absent' }] }];
      if (linkUp) ops.push({ op: 'put', item: { ...keys.node(tenant, ns, r.path), attrs: nodeToAttrs(nameNode(file.inode!, true)) }, conditions: unchanged(r) });
      return { ops, sizeDelta: next.size, others: [], nlink };
    }
    if (file.ownNames !== undefined) {
      const own = r.top?.type === 'file' && r.top.linkName;
      // A change through an image's name makes it the container's own (overlayfs links it up),
      // so that `changes` and a commit see it.
      const linkUp = !own && !options.dropSelf;
      const ownNames = file.ownNames + options.add + (linkUp ? 1 : 0) - (options.dropSelf && own ? 1 : 0);
      const conditions: Condition[] = [{ kind: 'equals', field: 'e', value: file.etag }];
      // It goes with its last name: an image's names the copy-up did not reach still show it.
      if (ownNames <= 0 && nlink <= 0) return { ops: [{ op: 'delete', key, conditions }], sizeDelta: -file.size, others: [], nlink: 0 };
      const ops: WriteOp[] = [{ op: 'put', item: { ...key, attrs: inodeToAttrs(next, nlink, ownNames) }, conditions }];
      if (linkUp) ops.push({ op: 'put', item: { ...keys.node(tenant, ns, r.path), attrs: nodeToAttrs(nameNode(file.inode!, true)) }, conditions: unchanged(r) });
      return { ops, sizeDelta: next.size - file.size, others: [], nlink };
    }
    const names: Resolved[] = options.dropSelf ? [] : [r];
    for (const name of file.names ?? []) {
      if (name === r.path) continue;
      const at = await resolveIfPresent(this.meta, r.view, name, { physical: true });
      if (at && !at.top && at.node?.type === 'file' && at.node.inode === file.inode) names.push(at);
    }
    const ownNames = names.length + options.add;
    // With no name of its own left, it is still kept while an image name may show it (nlink).
    if (ownNames <= 0 && nlink <= 0) return { ops: [], sizeDelta: 0, others: [], nlink };
    const ops: WriteOp[] = [
      { op: 'put', item: { ...key, attrs: inodeToAttrs(next, nlink, ownNames) }, conditions: [{ kind: 'absent' }] },
      ...names.map((at): WriteOp => ({ op: 'put', item: { ...keys.node(tenant, ns, at.path), attrs: nodeToAttrs(nameNode(file.inode!, true)) }, conditions: unchanged(at) })),
    ];
    return { ops, sizeDelta: next.size, others: names.filter((at) => at !== r), nlink };
  }

  /**
   * After names were dropped with their directory (`own`: the container's names, by inode;
   * `image`: the image's names that showed below it): each file has that many names fewer, and
   * goes with its last. An image's file that had no item yet gets one, so that its other names
   * show the new count.
   */
  async unlinkNames(view: View, own: ReadonlyMap<string, number>, image: ReadonlyMap<string, ImageNames> = new Map()): Promise<void> {
    const tenant = view.tenant;
    const ns = view.top!;
    for (const inode of new Set([...own.keys(), ...image.keys()])) {
      const ownDropped = own.get(inode) ?? 0;
      const dropped = ownDropped + (image.get(inode)?.count ?? 0);
      const key = keys.inode(tenant, ns, inode);
      for (let attempt = 1; ; attempt++) {
        const item = await this.meta.get(key);
        let op: WriteOp;
        let bytes: number;
        if (item) {
          const ownNames = (item.attrs.nn as number) - ownDropped;
          const nlink = Math.max((item.attrs.nl as number) - dropped, 0);
          const conditions: Condition[] = [{ kind: 'equals', field: 'e', value: item.attrs.e as string }];
          const last = ownNames <= 0 && nlink <= 0;
          op = last ? { op: 'delete', key, conditions } : { op: 'put', item: { ...key, attrs: { ...item.attrs, nl: nlink, nn: ownNames, e: newEtag() } }, conditions };
          bytes = last ? -(item.attrs.s as number) : 0;
        } else {
          const file = image.get(inode)?.file;
          const nlink = Math.max((file?.nlink ?? 0) - dropped, 0);
          if (!file || nlink <= 0) break;
          op = { op: 'put', item: { ...key, attrs: inodeToAttrs({ ...file, etag: newEtag() }, nlink, 0) }, conditions: [{ kind: 'absent' }] };
          bytes = file.size;
        }
        try {
          await this.meta.transact([op, ...(view.quota ? [quotaChange(view.quota, bytes, 0, { enforce: false })] : []), statsChange(tenant, ns, bytes)]);
          break;
        } catch (error) {
          if (!(error instanceof TransactionConditionError) || attempt >= ATTEMPTS) throw error;
        }
      }
    }
  }

  /**
   * The image's hard-linked names that directory `r` shows as the image has them (not the
   * container's own names), by inode. Found from the index's lists of link names, so an image
   * without hard links costs one query per layer index and no walk.
   */
  async imageNamesBelow(r: Resolved): Promise<Map<string, ImageNames>> {
    const found = new Map<string, ImageNames>();
    // Image layers list their link names; a sealed container layer's inode items are read through its names.
    const lists = await Promise.all(r.view.lowers.filter(isPacked).map((ns) => queryAll(this.meta, keys.inodes(r.view.tenant, ns))));
    const links = linkNamesFromItems(lists.flat());
    if (links.size === 0) return found;
    // Where the image's contents show below `r`: at its own lower path, and at each renamed directory's.
    const places: [at: string, lowerPath: string][] = r.children.lowerPath !== null ? [[r.path, r.children.lowerPath]] : [];
    for await (const [path, node] of this.topSubtree(r.view, r.path)) if (node.type === 'dir' && node.redirect) places.push([path, node.redirect]);
    const seen = new Set<string>();
    for (const [inode, names] of links) {
      for (const name of names) {
        for (const [at, lowerPath] of places) {
          if (name === lowerPath || !isWithin(name, lowerPath)) continue;
          const path = rebase(name, lowerPath, at);
          if (seen.has(path)) continue;
          seen.add(path);
          const shown = await resolveIfPresent(this.meta, r.view, path, { physical: true });
          if (!shown || shown.top || shown.node?.type !== 'file' || shown.node.inode !== inode) continue;
          const entry = found.get(inode);
          if (entry) entry.count++;
          else found.set(inode, { file: shown.node, count: 1 });
        }
      }
    }
    return found;
  }
}
