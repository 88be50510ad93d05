import { blobCreatedAt, blobKeys, keys, type NamespaceId } from '../keys.js';
import { keysUnder, namespaceInodes, namespaceItems, namespaceNodes } from './namespace-walk.js';
import { statsKeys, statsTotals } from './stats.js';
import { TransactionConditionError } from '../errors.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type Item, type MetadataStore } from '../ports/metadata-store.js';
import { nodeFromAttrs, type Extent } from './nodes.js';
import type { ContainerRecord, GarbageRecord, ImageRecord, LayerRecord, VolumeRecord } from './records.js';
import type { EventLog } from './events.js';
import { staleJournals, undoLoad } from './load-journal.js';
import { READ_COPY_LIFETIME_MS } from './read-copies.js';
import { JOB_RESULT_LIFETIME_MS } from './jobs.js';
import { volumeNamespace } from './volumes.js';
import { ownNamespaces, releaseOps } from './sealed-layers.js';
import { type ChangeFeed, feedOwner } from './change-feed.js';

/** What the sweep spares: objects and layers younger than this may belong to a request in flight. */
export const DEFAULT_GRACE_MS = 15 * 60_000;

const emptyReport = () => ({ namespaces: 0, nodes: 0, layers: 0, chains: 0, blobs: 0 });

function add(total: { -readonly [K in keyof SweepReport]: number }, part: SweepReport): void {
  for (const key of Object.keys(part) as (keyof SweepReport)[]) total[key] += part[key];
}

export interface SweepReport {
  readonly namespaces: number;
  readonly nodes: number;
  readonly layers: number;
  readonly chains: number;
  readonly blobs: number;
}

/**
 * Mark and sweep for one tenant: namespaces of removed containers and volumes, layers and chain
 * indexes no image uses, and objects nothing points at (orphans of crashes and overwrites).
 * Objects and layers younger than `graceMs` are spared, so in-flight writes and loads are safe.
 */
export class Sweeper {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly events: EventLog,
    private readonly feed: ChangeFeed,
    private readonly clock: () => number = Date.now,
    /** Fails jobs whose runner died; the sweep is what notices them. */
    private readonly jobs?: { failAbandoned(tenant: string): Promise<number> },
    /** Removes what has expired, whether or not TTL told the reclaimer yet. */
    private readonly expirations?: { expireDue(tenant: string): Promise<number> },
    /** Shortens long chains of forks and merges (compaction.ts). */
    private readonly compactor?: { compactLong(tenant: string): Promise<number> },
  ) {}

  async tenants(): Promise<string[]> {
    return (await this.all(keys.tenants())).map((i) => i.sk);
  }

  async sweep(tenant: string, options: { graceMs?: number } = {}): Promise<SweepReport> {
    const cutoff = this.clock() - (options.graceMs ?? DEFAULT_GRACE_MS);
    const report = emptyReport();

    // 0. Expired containers and volumes go, so their storage is reclaimed below; and archive loads
    // a crash stopped part-way are undone, so their images count as unused below.
    await this.expirations?.expireDue(tenant);
    await this.compactor?.compactLong(tenant);
    for (const { id, journal } of await staleJournals(this.meta, tenant, cutoff)) await undoLoad(this.meta, this.blobs, this.events, tenant, id, journal);

    // 1. Namespaces of removed containers and volumes, and merge layers a crash left unplaced.
    for (const item of await this.all(keys.garbageList(tenant))) add(report, await this.reclaimGarbage(tenant, item.sk));
    for (const item of await this.all(keys.pendingMerges(tenant))) {
      if ((item.attrs.since as number) >= cutoff) continue;
      report.nodes += await this.dropNamespace(tenant, item.sk as NamespaceId);
      await this.meta.writeMany(statsKeys(tenant, item.sk as NamespaceId).map((key) => ({ op: 'delete', key })));
      await this.deleteIfUnchanged({ pk: item.pk, sk: item.sk }, 'since', item.attrs.since as number);
      report.namespaces++;
    }

    // 2. Layers and chain indexes no image uses.
    const images = (await this.all(keys.images(tenant))).map((i) => i.attrs as unknown as ImageRecord);
    const usedConfigs = new Set(images.map((i) => i.configKey));
    const layerRecords = (await this.all(keys.layers(tenant))).map((i) => i.attrs as unknown as LayerRecord);
    const { report: unused, liveLayerBlobs } = await this.reclaimUnused(tenant, images, layerRecords, await this.all(keys.chains(tenant)), cutoff);
    add(report, unused);
    report.blobs += await this.dropUnlisted(blobKeys.layers(tenant), liveLayerBlobs, cutoff);
    report.blobs += await this.dropUnlisted(blobKeys.configs(tenant), usedConfigs, cutoff);

    // 3. Objects of live containers and volumes that no node points at any more.
    const live = new Map<string, NamespaceId>();
    // A container's own layers: its top and the layers forks sealed below it (shared, so seen once).
    const feeds: string[] = [];
    for (const c of await this.all(keys.containers(tenant))) {
      const record = c.attrs as unknown as ContainerRecord;
      for (const ns of ownNamespaces(record)) live.set(blobKeys.namespacePrefix(tenant, ns), ns);
      feeds.push(feedOwner.container(record.id));
    }
    for (const v of await this.all(keys.volumes(tenant))) {
      const record = v.attrs as unknown as VolumeRecord;
      const ns = volumeNamespace(record);
      live.set(blobKeys.namespacePrefix(tenant, ns), ns);
      feeds.push(feedOwner.volume(record.uid));
    }
    // Sealed layers whose last container is gone live on while a merge layer holds them.
    for (const sealed of await this.all(keys.sealedLayers(tenant))) live.set(blobKeys.namespacePrefix(tenant, sealed.sk as NamespaceId), sealed.sk as NamespaceId);
    // Change feeds keep a week of entries.
    for (const owner of feeds) await this.feed.trim(tenant, owner);
    const nsRoot = blobKeys.namespacesRoot(tenant);
    const byPrefix = new Map<string, string[]>();
    for await (const key of keysUnder(this.blobs, nsRoot)) {
      const prefix = key.slice(0, key.indexOf('/', nsRoot.length) + 1);
      byPrefix.set(prefix, [...(byPrefix.get(prefix) ?? []), key]);
    }
    for (const [prefix, objectKeys] of byPrefix) {
      const ns = live.get(prefix);
      const referenced = ns ? await this.referencedBlobs(tenant, ns) : new Set<string>();
      // A namespace that changed during the walk may have moved a reference past it: next time.
      if (!referenced) continue;
      const doomed = objectKeys.filter((k) => !referenced.has(k) && (blobCreatedAt(k) ?? 0) < cutoff);
      await this.blobs.delete(doomed);
      report.blobs += doomed.length;
    }
    report.blobs += await this.dropPrefix(blobKeys.uploads(tenant), cutoff - 24 * 3600_000);
    report.blobs += await this.dropPrefix(blobKeys.exportArchives(tenant), cutoff);
    report.blobs += await this.dropPrefix(blobKeys.jobResults(tenant), Math.min(cutoff, this.clock() - JOB_RESULT_LIFETIME_MS));
    // Read copies are reused for an hour (read-copies.ts); their records expire by TTL.
    report.blobs += await this.dropPrefix(blobKeys.readCopies(tenant), Math.min(cutoff, this.clock() - READ_COPY_LIFETIME_MS));
    // 4. Writes a crash left unfinished (partial files, multipart uploads), invisible to `list`.
    report.blobs += await this.blobs.abortIncomplete(blobKeys.tenantPrefix(tenant), cutoff);
    // 5. Jobs whose runner died mid-way: failed, so a client polling them stops waiting.
    await this.jobs?.failAbandoned(tenant);
    return report;
  }

  /**
   * Drops one removed container's or volume's namespace: its nodes, its objects, then the
   * garbage item. Does nothing if the item is gone (another reclaim got there first).
   */
  async reclaimGarbage(tenant: string, id: string): Promise<SweepReport> {
    const report = emptyReport();
    const item = await this.meta.get(keys.garbage(tenant, id));
    if (!item) return report;
    const garbage = item.attrs as unknown as GarbageRecord;
    report.nodes += await this.dropNamespace(tenant, garbage.namespace);
    report.blobs += await this.dropPrefix(garbage.blobPrefix, Infinity);
    if (garbage.feed) await this.feed.drop(tenant, garbage.feed);
    // A sealed layer's counters outlive its last container's removal; a removed top's are gone already.
    await this.meta.writeMany(statsKeys(tenant, garbage.namespace).map((key) => ({ op: 'delete', key })));
    // A merge layer lets go of the layers it held in the transaction that ends its garbage, so each goes once.
    let released: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const release = garbage.holds?.length ? await releaseOps(this.meta, tenant, garbage.holds, this.clock()) : [];
      try {
        await this.meta.transact([{ op: 'delete', key: { pk: item.pk, sk: item.sk }, conditions: [{ kind: 'present' }] }, ...release]);
        released = release.flatMap((op) => (op.op === 'put' && op.item.pk === keys.garbageList(tenant) ? [op.item.sk] : []));
        break;
      } catch (error) {
        if (!(error instanceof TransactionConditionError)) throw error;
        // Gone already: another reclaim finished it. Otherwise a count moved meanwhile: read again.
        if (error.failedIndexes.includes(0) || attempt >= 10) break;
      }
    }
    report.namespaces++;
    // Held layers whose last holder this was go now too.
    for (const next of released) add(report, await this.reclaimGarbage(tenant, next));
    return report;
  }

  /**
   * After an image was removed: its layers and chain indexes that no image uses any more, unless
   * a load used them within `graceMs` (such a load may be about to record an image on them; the
   * sweep takes those later).
   */
  async reclaimImageParts(tenant: string, removed: Pick<ImageRecord, 'diffIds' | 'stack'>, options: { graceMs?: number } = {}): Promise<SweepReport> {
    const cutoff = this.clock() - (options.graceMs ?? DEFAULT_GRACE_MS);
    const images = (await this.all(keys.images(tenant))).map((i) => i.attrs as unknown as ImageRecord);
    const layers = [...(await this.meta.getMany(removed.diffIds.map((d) => keys.layer(tenant, d)))).values()].map((i) => i.attrs as unknown as LayerRecord);
    const chains = await this.meta.getMany(removed.stack.filter((ns) => ns.startsWith('k:')).map((ns) => keys.chain(tenant, ns.slice(2))));
    return (await this.reclaimUnused(tenant, images, layers, [...chains.values()], cutoff)).report;
  }

  /** Of the given layers and chains, drops those no image in `images` uses and nothing touched after `cutoff`. */
  private async reclaimUnused(
    tenant: string,
    images: readonly ImageRecord[],
    layers: readonly LayerRecord[],
    chains: readonly Item[],
    cutoff: number,
  ): Promise<{ report: SweepReport; liveLayerBlobs: Set<string> }> {
    const report = emptyReport();
    const usedLayers = new Set(images.flatMap((i) => i.diffIds));
    const usedNamespaces = new Set<string>(images.flatMap((i) => i.stack));
    const liveLayerBlobs = new Set<string>();
    for (const layer of layers) {
      if (usedLayers.has(layer.diffId) || layer.lastUsed > cutoff) {
        liveLayerBlobs.add(layer.blobKey);
        continue;
      }
      // Conditional: a load that reuses the layer right now refreshes lastUsed and keeps it.
      if (!(await this.deleteIfUnchanged(keys.layer(tenant, layer.diffId), 'lastUsed', layer.lastUsed))) continue;
      if (layer.indexed) report.nodes += await this.dropNamespace(tenant, `l:${layer.diffId}`);
      await this.blobs.delete([layer.blobKey]);
      report.layers++;
      report.blobs++;
    }
    for (const chain of chains) {
      if (usedNamespaces.has(`k:${chain.sk}`) || (chain.attrs.built as number) > cutoff) continue;
      // The marker goes first (and only if no load reused it meanwhile): a crash midway leaves
      // stray nodes, never a marker over a partial index.
      if (!(await this.deleteIfUnchanged({ pk: chain.pk, sk: chain.sk }, 'built', chain.attrs.built as number))) continue;
      report.nodes += await this.dropNamespace(tenant, `k:${chain.sk}`);
      report.chains++;
    }
    return { report, liveLayerBlobs };
  }

  /** The blobs a namespace's nodes point at, or undefined if it changed while it was walked. */
  private async referencedBlobs(tenant: string, ns: NamespaceId): Promise<Set<string> | undefined> {
    const before = statsTotals(tenant, ns, await this.meta.getMany(statsKeys(tenant, ns)));
    const out = new Set<string>();
    for await (const [, attrs] of namespaceNodes(this.meta, tenant, ns)) {
      const node = nodeFromAttrs(attrs);
      if (node.type === 'file') for (const [key] of node.extents) out.add(key);
    }
    for await (const [, attrs] of namespaceInodes(this.meta, tenant, ns)) for (const [key] of (attrs.x as Extent[]) ?? []) out.add(key);
    const after = statsTotals(tenant, ns, await this.meta.getMany(statsKeys(tenant, ns)));
    return before.present && after.present && before.gen === after.gen ? out : undefined;
  }

  private async deleteIfUnchanged(key: { pk: string; sk: string }, field: string, value: number): Promise<boolean> {
    try {
      await this.meta.transact([{ op: 'delete', key, conditions: [{ kind: 'equals', field, value }] }]);
      return true;
    } catch (error) {
      if (error instanceof TransactionConditionError) return false;
      throw error;
    }
  }

  private async dropNamespace(tenant: string, ns: NamespaceId): Promise<number> {
    const doomed: { pk: string; sk: string }[] = [];
    for await (const key of namespaceItems(this.meta, tenant, ns)) doomed.push(key);
    await this.meta.writeMany(doomed.map((key) => ({ op: 'delete' as const, key })));
    return doomed.length;
  }

  private async dropPrefix(prefix: string, cutoff: number): Promise<number> {
    let count = 0;
    const batch: string[] = [];
    for await (const key of keysUnder(this.blobs, prefix)) if ((blobCreatedAt(key) ?? 0) < cutoff) batch.push(key);
    await this.blobs.delete(batch);
    count += batch.length;
    return count;
  }

  private async dropUnlisted(prefix: string, keep: Set<string>, cutoff: number): Promise<number> {
    const doomed: string[] = [];
    for await (const key of keysUnder(this.blobs, prefix)) if (!keep.has(key) && (blobCreatedAt(key) ?? 0) < cutoff) doomed.push(key);
    await this.blobs.delete(doomed);
    return doomed.length;
  }

  private all(pk: string) {
    return queryAll(this.meta, pk);
  }
}
