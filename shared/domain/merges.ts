import { ConflictError, InvalidInputError, NotFoundError, TransactionConditionError } from '../errors.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import type { ItemKey, MetadataStore, WriteOp } from '../ports/metadata-store.js';
import { type ChangeFeed, feedOwner } from './change-feed.js';
import { type ContainerService, type ContainerSummary, nameAttrs, topConditions } from './containers.js';
import type { EventLog } from './events.js';
import { type MergeConflict, type MergeStrategy, type MergeTrees, planMerge, withAncestors } from './merge-plan.js';
import { type FileNode, type Node, nodeToAttrs } from './nodes.js';
import { quotaChange, quotaKeys, quotaRefusal } from './quotas.js';
import { namespaceNodes } from './namespace-walk.js';
import type { ContainerRecord } from './records.js';
import { physicalNode, Resolver } from './resolver.js';
import { holdOps, MAX_SEALED_LAYERS, newLayerNamespace, sealedOf, sealedRecordOp, topOf } from './sealed-layers.js';
import { sealedStatsCreation, sealOps, statsCreation, statsGens, statsKeys } from './stats.js';
import type { TreeDiff } from './tree-diff.js';
import type { TreeReader } from './tree-read.js';
import type { View } from './view.js';

export interface MergeRequest {
  /** The container whose changes are merged in (name or ID). */
  readonly from: string;
  /** @default 'fail' */
  readonly strategy?: MergeStrategy;
  /** Plan only: report what would be taken and what conflicts, change nothing. */
  readonly dryRun?: boolean;
}

export interface MergeResult {
  readonly container: ContainerSummary;
  /** The source's changes taken (a renamed directory counts once). */
  readonly merged: number;
  readonly conflicts: readonly MergeConflict[];
  readonly strategy: MergeStrategy;
  /** False for a dry run, and when there was nothing to take. */
  readonly applied: boolean;
}

/** 409 under `fail`: the merge would have overwritten one side's change with the other's; nothing was changed. */
export class MergeConflictError extends ConflictError {
  constructor(readonly conflicts: readonly MergeConflict[]) {
    super(
      `${conflicts.length} path${conflicts.length === 1 ? '' : 's'} changed on both sides (first: ${conflicts[0].path}); nothing was merged. Merge with "strategy": "ours" or "theirs" to settle them`,
    );
  }

  override get details(): Record<string, unknown> {
    return { conflicts: this.conflicts };
  }
}

/** Files up to this size that differ only in version are compared byte for byte before they count as a conflict. */
const COMPARED_BYTES = 1 << 20;
/** Tries of a merge whose target or source changed while it was planned. */
const MERGE_ATTEMPTS = 3;

/**
 * Merges: a three-way merge of one container's changes into another's tree since their common
 * ancestor (the layers their stacks share), applied all or nothing. What the target must gain is
 * written into a new layer nobody reads yet (a crash leaves it to the sweep, never half a merge
 * in sight); then one transaction seals the target's writable layer, puts the new layer above
 * it, gives the target a fresh top, and seals the source's writable layer, which the new layer
 * holds (its files point at the source's blobs: a merge copies metadata, never bytes). Every
 * layer's counters are pinned, so a write to either side while the merge was planned makes it
 * plan again.
 */
export class MergeService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly containers: ContainerService,
    private readonly diff: TreeDiff,
    private readonly reader: TreeReader,
    private readonly feed: ChangeFeed,
    private readonly events: EventLog,
    private readonly clock: () => number,
    /** Compacts a chain too deep to take the merge's layers (compaction.ts). */
    private readonly shorten: (tenant: string, id: string) => Promise<number> = async () => 0,
  ) {}

  /**
   * Throws NotFoundError, InvalidInputError (the container itself, containers of two images),
   * MergeConflictError (under `fail`), QuotaExceededError, and ConflictError (a chain too deep,
   * or both sides kept changing).
   */
  async merge(tenant: string, ref: string, request: MergeRequest): Promise<MergeResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt(tenant, ref, request);
      } catch (error) {
        if (!(error instanceof ChangedMeanwhile)) throw error;
        if (attempt >= MERGE_ATTEMPTS) throw new ConflictError('the containers kept changing while the merge was planned; try again');
      }
    }
  }

  private async attempt(tenant: string, ref: string, request: MergeRequest): Promise<MergeResult> {
    const strategy = request.strategy ?? 'fail';
    let target = await this.containers.record(tenant, ref);
    const source = await this.containers.record(tenant, request.from);
    // A merge adds up to two layers to the target's chain: one too deep is compacted first.
    if (!request.dryRun && sealedOf(target).length + 2 > MAX_SEALED_LAYERS && (await this.shorten(tenant, target.id)) > 0) target = await this.containers.record(tenant, target.id);
    if (source.id === target.id) throw new InvalidInputError('a container cannot be merged into itself');
    if (source.image !== target.image) throw new InvalidInputError(`only containers of one image merge: ${target.name} is of ${target.image}, ${source.name} of ${source.image}`);

    const ourChain = [topOf(target), ...target.stack];
    const theirChain = [topOf(source), ...source.stack];
    let shared = 0;
    while (shared < ourChain.length && shared < theirChain.length && ourChain[ourChain.length - 1 - shared] === theirChain[theirChain.length - 1 - shared]) shared++;
    const base: View = { tenant, lowers: theirChain.slice(theirChain.length - shared), mounts: [], readOnly: true };
    const ours: View = { ...this.containers.viewOf(tenant, target), mounts: [] };
    const theirs: View = { ...this.containers.viewOf(tenant, source), mounts: [] };

    // Read before the trees: anything written after this fails the merge's transaction.
    const counters = await this.meta.getMany([...statsKeys(tenant, topOf(target)), ...statsKeys(tenant, topOf(source))]);
    const ourGens = statsGens(tenant, topOf(target), counters);
    const theirGens = statsGens(tenant, topOf(source), counters);
    if (ourGens.includes(-1) || theirGens.includes(-1)) throw new NotFoundError('a container of the merge was removed meanwhile');

    const [ourChanges, theirChanges] = await Promise.all([this.diff.changes(ours, base, 'content'), this.diff.changes(theirs, base, 'content')]);
    const trees = this.trees(
      ours,
      theirs,
      base,
      [...ourChanges, ...theirChanges].map((c) => c.path),
    );
    const plan = await planMerge(ourChanges, theirChanges, trees, strategy);
    if (plan.conflicts.length > 0 && strategy === 'fail') throw new MergeConflictError(plan.conflicts);
    const outcome = { merged: plan.taken, conflicts: plan.conflicts, strategy };
    if (request.dryRun || plan.entries.size === 0) return { ...outcome, applied: false, container: await this.containers.inspect(tenant, target.id) };

    const layer = await withAncestors(plan.entries, trees);
    await this.place(tenant, target, source, layer, { ourGens, theirGens, shared: theirChain.slice(theirChain.length - shared), taken: plan.taken, conflicts: plan.conflicts.length });
    return { ...outcome, applied: true, container: await this.containers.inspect(tenant, target.id) };
  }

  /** Writes the merge layer, then puts it in the target's stack in one transaction (see the class comment). */
  private async place(
    tenant: string,
    target: ContainerRecord,
    source: ContainerRecord,
    layer: ReadonlyMap<string, Node>,
    pinned: { ourGens: number[]; theirGens: number[]; shared: readonly NamespaceId[]; taken: number; conflicts: number },
  ): Promise<void> {
    const now = this.clock();
    const ourTop = topOf(target);
    const theirTop = topOf(source);
    const ourTopUsed = pinned.ourGens.some((g) => g > 0);
    const theirTopUsed = pinned.theirGens.some((g) => g > 0);
    const merged = newLayerNamespace();
    const depth = sealedOf(target).length + 1 + (ourTopUsed ? 1 : 0);
    if (depth > MAX_SEALED_LAYERS)
      throw new ConflictError(
        `the merge would make ${target.name} ${depth} layers deep, past the most a chain holds (${MAX_SEALED_LAYERS}); commit it and create a container from the image to start a new chain`,
      );
    if (theirTopUsed && sealedOf(source).length + 1 > MAX_SEALED_LAYERS) throw new ConflictError(`${source.name} is as many layers deep as a chain holds (${MAX_SEALED_LAYERS}); commit it first`);

    // The source's layers the merge layer's files may point into: its own, above what the two share.
    const theirOwnSealed = sealedOf(source).filter((ns) => !pinned.shared.includes(ns));
    const holds = [...(theirTopUsed ? [theirTop] : []), ...theirOwnSealed];
    const bytes = [...layer.values()].reduce((sum, node) => sum + (node.type === 'file' ? node.size : 0), 0);

    // Nobody reads the layer until the transaction below; until then a crash leaves it to the sweep.
    const journal = keys.pendingMerge(tenant, merged);
    await this.meta.transact([{ op: 'put', item: { ...journal, attrs: { since: now, target: target.id } }, conditions: [{ kind: 'absent' }] }]);
    try {
      await this.meta.writeMany([...layer].map(([path, node]) => ({ op: 'put' as const, item: { ...keys.node(tenant, merged, path), attrs: nodeToAttrs(node) } })));

      const newOurTop = newLayerNamespace();
      const ourStack: NamespaceId[] = [merged, ...(ourTopUsed ? [ourTop] : []), ...target.stack];
      const targetNow: ContainerRecord = { ...target, stack: ourStack, top: newOurTop };
      const ops: WriteOp[] = [
        { op: 'delete', key: journal, conditions: [{ kind: 'present' }] },
        { op: 'update', key: keys.container(tenant, target.id), set: { stack: ourStack, top: newOurTop }, conditions: topConditions(target) },
        { op: 'put', item: { ...keys.containerName(tenant, target.name), attrs: nameAttrs(targetNow) }, conditions: [{ kind: 'equals', field: 'id', value: target.id }] },
        ...(ourTopUsed ? [...sealOps(tenant, ourTop, now, pinned.ourGens), sealedRecordOp(tenant, ourTop, now, 1)] : retireOps(tenant, ourTop, now)),
        ...statsCreation(tenant, newOurTop),
        sealedRecordOp(tenant, merged, now, 1, holds),
        ...sealedStatsCreation(tenant, merged, bytes, now),
        ...holdOps(tenant, theirOwnSealed),
      ];
      if (theirTopUsed) {
        const newTheirTop = newLayerNamespace();
        const theirStack = [theirTop, ...source.stack];
        ops.push(
          { op: 'update', key: keys.container(tenant, source.id), set: { stack: theirStack, top: newTheirTop }, conditions: topConditions(source) },
          { op: 'put', item: { ...keys.containerName(tenant, source.name), attrs: nameAttrs({ ...source, top: newTheirTop }) }, conditions: [{ kind: 'equals', field: 'id', value: source.id }] },
          ...sealOps(tenant, theirTop, now, pinned.theirGens),
          sealedRecordOp(tenant, theirTop, now, 2),
          ...statsCreation(tenant, newTheirTop),
        );
      } else {
        // Nothing of the source's top is used, but its record must still be the one planned from.
        ops.push({ op: 'check', key: keys.container(tenant, source.id), conditions: topConditions(source) });
      }
      const quotaAt = target.quota ? ops.push(quotaChange(quotaKeys.container(tenant, target.id), bytes, layer.size)) - 1 : -1;
      ops.push(this.events.op(tenant, 'container.merged', { container: target.id, name: target.name, source: source.id, paths: pinned.taken, conflicts: pinned.conflicts }));
      await this.commit(tenant, target, ops, quotaAt, bytes, layer.size, { from: source.id, paths: pinned.taken });
    } catch (error) {
      // Refused or beaten: the layer goes now (the sweep takes it if this fails too).
      await this.abandon(tenant, merged, journal).catch(() => undefined);
      throw error;
    } finally {
      this.containers.forget(tenant, target);
      this.containers.forget(tenant, source);
    }
  }

  /** The switch, with the target's feed entry. */
  private async commit(tenant: string, target: ContainerRecord, ops: WriteOp[], quotaAt: number, bytes: number, entries: number, merge: { from: string; paths: number }): Promise<void> {
    try {
      await this.feed.commit(tenant, feedOwner.container(target.id), ops, { kind: 'merged', path: '/', from: merge.from, paths: merge.paths });
    } catch (error) {
      if (!(error instanceof TransactionConditionError)) throw error;
      if (error.failedIndexes.includes(quotaAt)) throw await quotaRefusal(this.meta, quotaKeys.container(tenant, target.id), bytes, entries);
      throw new ChangedMeanwhile();
    }
  }

  private async abandon(tenant: string, merged: NamespaceId, journal: ItemKey): Promise<void> {
    const doomed: ItemKey[] = [];
    for await (const [key] of namespaceNodes(this.meta, tenant, merged)) doomed.push(key);
    await this.meta.writeMany(doomed.map((key) => ({ op: 'delete' as const, key })));
    await this.meta.transact([{ op: 'delete', key: journal }]);
  }

  /** The three trees as the plan reads them, each through one resolver that fetched every path the diffs named in a batch. */
  private trees(ours: View, theirs: View, base: View, paths: readonly string[]): MergeTrees {
    const resolvers = new Map<View, Promise<Resolver>>();
    const resolverOf = (view: View) => {
      if (!resolvers.has(view)) {
        const resolver = new Resolver(this.meta);
        resolvers.set(
          view,
          resolver.prefetchPaths(view, paths).then(() => resolver),
        );
      }
      return resolvers.get(view)!;
    };
    const at = async (view: View, path: string) => physicalNode(await resolverOf(view), view, path);
    return {
      ours: (path) => at(ours, path),
      theirs: (path) => at(theirs, path),
      base: (path) => at(base, path),
      below: (tree, dir) => this.reader.descendants(tree === 'theirs' ? theirs : base, dir),
      sameBytes: (a, b) => this.sameBytes(a, b),
    };
  }

  private async sameBytes(a: FileNode, b: FileNode): Promise<boolean> {
    if (a.size !== b.size || a.size > COMPARED_BYTES) return false;
    const [x, y] = await Promise.all([collect(this.reader.extentStream(a.extents)), collect(this.reader.extentStream(b.extents))]);
    return x.equals(y);
  }
}

/** The target or the source changed between the plan and its transaction: plan again. */
class ChangedMeanwhile extends Error {}

/**
 * An unused writable layer the merge replaces: sealed (only while still unused), so a write
 * resolved on it looks the container up again, and handed to the reclaim, which drops it.
 */
function retireOps(tenant: string, ns: NamespaceId, now: number): WriteOp[] {
  return [...sealOps(tenant, ns, now, [0, 0, 0, 0]), { op: 'put', item: { ...keys.garbage(tenant, ns), attrs: { namespace: ns, blobPrefix: blobKeys.namespacePrefix(tenant, ns), since: now } } }];
}

async function collect(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

export type { MergeConflict, MergeStrategy };
