import { keys, type NamespaceId } from '../keys.js';
import { queryAll, type MetadataStore } from '../ports/metadata-store.js';
import { type ContainerService, nameAttrs, topConditions } from './containers.js';
import { quotaChange, quotaKeys } from './quotas.js';
import { type MergeTrees, planMerge, withAncestors } from './merge-plan.js';
import { nodeToAttrs } from './nodes.js';
import { namespaceNodes } from './namespace-walk.js';
import type { ContainerRecord } from './records.js';
import { physicalNode, Resolver } from './resolver.js';
import { isContainerLayer, newLayerNamespace, sealedOf, sealedRecordOp, topOf } from './sealed-layers.js';
import { sealedStatsCreation, sealOps, statsCreation, statsKeys, statsTotals } from './stats.js';
import type { TreeDiff } from './tree-diff.js';
import type { TreeReader } from './tree-read.js';
import type { View } from './view.js';
import { TransactionConditionError } from '../errors.js';

/** Chains longer than this are compacted by the sweep. */
export const COMPACT_AFTER = 8;

/**
 * Compaction: the sealed layers of a container's chain (what forks and merges left below its
 * writable layer) become one layer that shows the same tree over the image, so the chain is
 * short again. The new layer holds the old ones (their blobs are its files' bytes, and other
 * containers may still read through them); the container's writable layer and everything
 * written to it are untouched, and so is every other container. Like a merge, the layer is
 * written aside and put in place in one transaction, conditioned on the container's writable
 * layer being the one read (a fork or merge meanwhile makes it give up; the next sweep tries
 * again). Chains holding hard links are left as they are: the flat layer would part their names.
 */
export class Compactor {
  constructor(
    private readonly meta: MetadataStore,
    private readonly containers: ContainerService,
    private readonly diff: TreeDiff,
    private readonly reader: TreeReader,
    private readonly clock: () => number,
  ) {}

  /** Compacts the chain of `ref` if it has at least `atLeast` sealed layers. Answers how many layers became one (0: nothing done). */
  async compact(tenant: string, ref: string, atLeast = 2): Promise<number> {
    const record = await this.containers.record(tenant, ref);
    const sealed = sealedOf(record);
    if (sealed.length < Math.max(atLeast, 2)) return 0;
    for (const ns of sealed) if ((await this.meta.query(keys.inodes(tenant, ns), { limit: 1 })).items.length > 0) return 0;
    const image = record.stack.filter((ns) => !isContainerLayer(ns));
    const chain: View = { tenant, lowers: record.stack, mounts: [], readOnly: true };
    const base: View = { tenant, lowers: image, mounts: [], readOnly: true };
    const changes = await this.diff.changes(chain, base, 'content');
    const chainResolver = new Resolver(this.meta);
    await chainResolver.prefetchPaths(
      chain,
      changes.map((c) => c.path),
    );
    const at = (path: string) => physicalNode(chainResolver, chain, path);
    const imageAt = (path: string) => physicalNode(new Resolver(this.meta), base, path);
    const trees: MergeTrees = {
      ours: imageAt,
      theirs: at,
      base: imageAt,
      below: (tree, dir) => this.reader.descendants(tree === 'theirs' ? chain : base, dir),
      sameBytes: async () => false,
    };
    // The chain's changes over the image, taken as a merge into the untouched image takes them.
    const plan = await planMerge([], changes, trees, 'fail');
    if (plan.conflicts.length > 0) return 0;
    const layer = await withAncestors(plan.entries, { ours: at, theirs: at });
    const bytes = [...layer.values()].reduce((sum, node) => sum + (node.type === 'file' ? node.size : 0), 0);
    // What the quota counted for the old layers, for the flat one to take their place.
    const stats = await this.meta.getMany(sealed.flatMap((ns) => statsKeys(tenant, ns)));
    const oldBytes = sealed.reduce((sum, ns) => sum + statsTotals(tenant, ns, stats).size, 0);
    let oldEntries = 0;
    for (const ns of sealed) for await (const _ of namespaceNodes(this.meta, tenant, ns)) oldEntries++;

    const flat = newLayerNamespace();
    const top = topOf(record);
    const newTop = newLayerNamespace();
    const now = this.clock();
    const journal = keys.pendingMerge(tenant, flat);
    await this.meta.transact([{ op: 'put', item: { ...journal, attrs: { since: now, target: record.id } }, conditions: [{ kind: 'absent' }] }]);
    try {
      await this.meta.writeMany([...layer].map(([path, node]) => ({ op: 'put' as const, item: { ...keys.node(tenant, flat, path), attrs: nodeToAttrs(node) } })));
      // The writable layer is sealed above the flat one and the container gets a fresh top, as a
      // fork does: a fork, merge, removal or other compaction that read the old layers fails on
      // its condition on the top, and a write resolved on the old top on the seal.
      const stack: NamespaceId[] = [top, flat, ...image];
      await this.meta.transact([
        { op: 'delete', key: journal, conditions: [{ kind: 'present' }] },
        { op: 'update', key: keys.container(tenant, record.id), set: { stack, top: newTop }, conditions: topConditions(record) },
        { op: 'put', item: { ...keys.containerName(tenant, record.name), attrs: nameAttrs({ ...record, top: newTop }) }, conditions: [{ kind: 'equals', field: 'id', value: record.id }] },
        ...sealOps(tenant, top, now),
        sealedRecordOp(tenant, top, now, 1),
        ...statsCreation(tenant, newTop),
        // The old layers' holds pass from the container's stack to the flat layer: no count moves.
        sealedRecordOp(tenant, flat, now, 1, sealed, true),
        ...sealedStatsCreation(tenant, flat, bytes, now),
        ...(record.quota ? [quotaChange(quotaKeys.container(tenant, record.id), bytes - oldBytes, layer.size - oldEntries, { enforce: false })] : []),
      ]);
    } catch (error) {
      const doomed = [];
      for await (const [key] of namespaceNodes(this.meta, tenant, flat)) doomed.push(key);
      await this.meta.writeMany(doomed.map((key) => ({ op: 'delete' as const, key }))).catch(() => undefined);
      await this.meta.transact([{ op: 'delete', key: journal }]).catch(() => undefined);
      if (error instanceof TransactionConditionError) return 0;
      throw error;
    } finally {
      this.containers.forget(tenant, record);
    }
    return sealed.length;
  }

  /** Every container of the tenant whose chain is longer than COMPACT_AFTER. Answers how many were compacted. */
  async compactLong(tenant: string): Promise<number> {
    let done = 0;
    for (const item of await queryAll(this.meta, keys.containers(tenant))) {
      const record = item.attrs as unknown as ContainerRecord;
      if (sealedOf(record).length <= COMPACT_AFTER) continue;
      if ((await this.compact(tenant, record.id, COMPACT_AFTER + 1).catch(() => 0)) > 0) done++;
    }
    return done;
  }
}
