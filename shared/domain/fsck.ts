import { blobCreatedAt, blobKeys, keys, type NamespaceId } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type MetadataStore } from '../ports/metadata-store.js';
import { ownNamespaces } from './sealed-layers.js';
import { keysUnder, namespaceInodes, namespaceNodes, packedNodes } from './namespace-walk.js';
import { nodeFromAttrs, ZERO_BLOB, type Extent, type Node } from './nodes.js';
import type { ContainerRecord, ImageRecord, LayerRecord, VolumeRecord } from './records.js';
import { statsKeys, statsTotals } from './stats.js';
import { volumeNamespace } from './volumes.js';

export interface FsckProblem {
  readonly kind: 'dangling' | 'orphan' | 'counter';
  /** What is wrong, for a person: which item points at what, or which blob nothing points at. */
  readonly detail: string;
  /** True when fsck fixed it (`repair`). */
  readonly repaired: boolean;
}

export interface FsckReport {
  readonly tenant: string;
  readonly checked: { readonly items: number; readonly blobs: number };
  readonly problems: readonly FsckProblem[];
}

export interface FsckOptions {
  /** Remove orphan blobs, drop tags of missing images, and set counters to their recount. */
  readonly repair?: boolean;
  /** Blobs younger than this may belong to a write in flight and are never called orphans. @default 15 minutes */
  readonly graceMs?: number;
}

/**
 * A consistency check of one tenant, for operators and for the fault-injection tests: metadata
 * that points at a missing blob, record or index (dangling); blobs that nothing points at
 * (orphans); and size counters that differ from a recount of the nodes. Only what is safe is
 * repaired: orphans older than the grace period, tags of missing images, and counters of
 * namespaces that did not change while they were recounted.
 */
export class Fsck {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly clock: () => number = Date.now,
  ) {}

  async check(tenant: string, options: FsckOptions = {}): Promise<FsckReport> {
    const repair = options.repair ?? false;
    const cutoff = this.clock() - (options.graceMs ?? 15 * 60_000);
    const problems: FsckProblem[] = [];
    let items = 0;
    const stored = new Set<string>();
    for (const prefix of [blobKeys.layers(tenant), blobKeys.configs(tenant), blobKeys.namespacesRoot(tenant)]) {
      for await (const key of keysUnder(this.blobs, prefix)) stored.add(key);
    }
    const referenced = new Set<string>();
    const dangling = (detail: string) => problems.push({ kind: 'dangling', detail, repaired: false });
    const refer = (key: string, from: string) => {
      if (key === ZERO_BLOB) return;
      referenced.add(key);
      if (!stored.has(key)) dangling(`${from} points at missing blob ${key}`);
    };
    const referExtents = (node: Node, from: string) => {
      if (node.type === 'file') for (const [key] of node.extents) refer(key, from);
    };

    const layers = new Map((await queryAll(this.meta, keys.layers(tenant))).map((i) => [i.sk, i.attrs as unknown as LayerRecord]));
    items += layers.size;
    for (const layer of layers.values()) {
      refer(layer.blobKey, `layer ${layer.diffId}`);
      if (layer.indexed) items += await this.checkIndex(tenant, `l:${layer.diffId}`, referExtents);
    }
    const chains = new Set((await queryAll(this.meta, keys.chains(tenant))).map((i) => i.sk));
    items += chains.size;
    for (const chain of chains) items += await this.checkIndex(tenant, `k:${chain}`, referExtents);

    const images = new Map((await queryAll(this.meta, keys.images(tenant))).map((i) => [i.sk, i.attrs as unknown as ImageRecord]));
    items += images.size;
    for (const image of images.values()) {
      refer(image.configKey, `image ${image.id}`);
      for (const diffId of image.diffIds) if (!layers.has(diffId)) dangling(`image ${image.id} uses missing layer record ${diffId}`);
      for (const ns of image.stack) {
        const present = ns.startsWith('k:') ? chains.has(ns.slice(2)) : layers.get(ns.slice(2))?.indexed === true;
        if (!present) dangling(`image ${image.id} reads through missing index ${ns}`);
      }
    }
    for (const tag of await queryAll(this.meta, keys.tags(tenant))) {
      items++;
      if (images.has(tag.attrs.image as string)) continue;
      if (repair) await this.meta.transact([{ op: 'delete', key: { pk: tag.pk, sk: tag.sk }, conditions: [{ kind: 'equals', field: 'image', value: tag.attrs.image as string }] }]);
      problems.push({ kind: 'dangling', detail: `tag ${tag.sk} names missing image ${tag.attrs.image as string}`, repaired: repair });
    }

    const namespaces: { ns: NamespaceId; owner: string }[] = [];
    for (const item of await queryAll(this.meta, keys.containers(tenant))) {
      items++;
      const container = item.attrs as unknown as ContainerRecord;
      if (!images.has(container.image)) dangling(`container ${container.id} uses missing image ${container.image}`);
      for (const ns of ownNamespaces(container)) if (!namespaces.some((n) => n.ns === ns)) namespaces.push({ ns, owner: `container ${container.name}` });
    }
    for (const item of await queryAll(this.meta, keys.volumes(tenant))) {
      items++;
      const volume = item.attrs as unknown as VolumeRecord;
      namespaces.push({ ns: volumeNamespace(volume), owner: `volume ${volume.name}` });
    }
    // A sealed layer outlives its containers while a merge layer holds it.
    for (const item of await queryAll(this.meta, keys.sealedLayers(tenant))) {
      items++;
      const ns = item.sk as NamespaceId;
      if (!namespaces.some((n) => n.ns === ns)) namespaces.push({ ns, owner: `sealed layer ${ns}` });
    }
    for (const { ns, owner } of namespaces) {
      const before = statsTotals(tenant, ns, await this.meta.getMany(statsKeys(tenant, ns)));
      if (!before.present) dangling(`${owner} has no size counters`);
      let counted = 0;
      /** One name per inode, to report names whose inode item is missing (a hard link pointing nowhere). */
      const names = new Map<string, string>();
      for await (const [key, attrs] of namespaceNodes(this.meta, tenant, ns)) {
        items++;
        const node = nodeFromAttrs(attrs);
        referExtents(node, `${owner} node ${key.pk}/${key.sk}`);
        if (node.type === 'file') counted += node.size;
        if (node.type === 'file' && node.linkName) names.set(node.inode!, `${key.pk}/${key.sk}`);
      }
      const inodes = new Set<string>();
      for await (const [key, attrs] of namespaceInodes(this.meta, tenant, ns)) {
        items++;
        inodes.add(key.sk);
        const extents = (attrs.x as Extent[]) ?? [];
        for (const [blob] of extents) refer(blob, `${owner} inode ${key.sk}`);
        counted += attrs.s as number;
      }
      for (const [inode, name] of names) if (!inodes.has(inode)) dangling(`${owner} name ${name} links to missing inode ${inode}`);
      if (!before.present || counted === before.size) continue;
      const after = statsTotals(tenant, ns, await this.meta.getMany(statsKeys(tenant, ns)));
      if (after.gen !== before.gen) continue; // it changed while it was counted: not a finding
      let fixed = false;
      if (repair) {
        await this.meta.transact([{ op: 'update', key: statsKeys(tenant, ns)[0], add: { size: counted - before.size, gen: 1 }, conditions: [{ kind: 'present' }] }]);
        fixed = true;
      }
      problems.push({ kind: 'counter', detail: `${owner} counts ${before.size} bytes but holds ${counted}`, repaired: fixed });
    }

    const orphans = [...stored].filter((key) => !referenced.has(key) && (blobCreatedAt(key) ?? 0) < cutoff);
    if (repair) await this.blobs.delete(orphans);
    for (const key of orphans) problems.push({ kind: 'orphan', detail: `blob ${key} is not used by anything`, repaired: repair });
    return { tenant, checked: { items, blobs: stored.size }, problems };
  }

  /** Every node of an image index; returns the items it read. */
  private async checkIndex(tenant: string, ns: NamespaceId, referExtents: (node: Node, from: string) => void): Promise<number> {
    let items = 0;
    for await (const { nodes } of packedNodes(this.meta, tenant, ns)) {
      items++;
      for (const [path, node] of nodes) referExtents(node, `index ${ns} ${path}`);
    }
    return items;
  }
}
