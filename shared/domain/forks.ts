import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { MetadataStore, WriteOp } from '../ports/metadata-store.js';
import { type ContainerService, type ContainerSummary, checkContainerName, nameAttrs, topConditions } from './containers.js';
import type { EventLog } from './events.js';
import { checkLabels } from './limits.js';
import type { ContainerRecord } from './records.js';
import { holdOps, MAX_SEALED_LAYERS, newLayerNamespace, sealedOf, sealedRecordOp, topOf } from './sealed-layers.js';
import { sealOps, statsCreation } from './stats.js';
import { quotaCreationOp, quotaKeys, readQuota } from './quotas.js';
import { expiryItemOp, expiryOwner } from './expiry.js';

/**
 * Forks: a new container whose tree is the source's at that instant, in one transaction of a
 * fixed size. The source's writable layer is sealed (no change commits in it afterwards: every
 * change's transaction checks the seal on the counter it updates) and shared; each side gets a
 * fresh writable layer above it. No entry is copied, so the cost does not grow with what the
 * source changed. Volumes are not forked: the fork mounts the same volumes, as volumes outlive
 * and are shared between containers.
 */
export class ForkService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly containers: ContainerService,
    private readonly events: EventLog,
    private readonly clock: () => number,
    /** Compacts a chain too deep to take one more layer (compaction.ts); answers the layers it merged (0: none). */
    private readonly shorten: (tenant: string, id: string) => Promise<number> = async () => 0,
  ) {}

  /**
   * Throws NotFoundError (no such container), InvalidInputError (bad name or labels),
   * ConflictError (name taken, the chain of forks is MAX_SEALED_LAYERS deep and cannot be
   * compacted, or the source changed its top meanwhile: a concurrent fork).
   */
  async fork(tenant: string, ref: string, request: { name?: string; labels?: Record<string, string> } = {}): Promise<ContainerSummary> {
    if (request.name !== undefined) checkContainerName(request.name);
    const labels = request.labels === undefined ? undefined : checkLabels(request.labels);
    let source = await this.containers.record(tenant, ref);
    if (request.name === source.name) throw new ConflictError(`the container name ${source.name} is already in use (by the source)`);
    // A chain as deep as a chain may be is compacted first, then forked.
    if (sealedOf(source).length + 1 > MAX_SEALED_LAYERS && (await this.shorten(tenant, source.id)) > 0) source = await this.containers.record(tenant, source.id);
    const sealed = topOf(source);
    const below = sealedOf(source);
    if (below.length + 1 > MAX_SEALED_LAYERS) {
      throw new ConflictError(`the container is ${below.length} forks deep, the most a chain holds (${MAX_SEALED_LAYERS}); commit it and create a container from the image to start a new chain`);
    }
    const now = this.clock();
    const id = randomBytes(32).toString('hex');
    const name = request.name ?? `strata_${id.slice(0, 12)}`;
    const stack = [sealed, ...source.stack];
    const sourceTop = newLayerNamespace();
    const fork: ContainerRecord = {
      id,
      name,
      image: source.image,
      imageRef: source.imageRef,
      stack,
      top: newLayerNamespace(),
      forkedFrom: { container: source.id, layer: sealed, at: now },
      ...(source.quota ? { quota: true as const } : {}),
      mounts: source.mounts,
      created: now,
      labels: labels ?? source.labels,
      ...(source.process ? { process: source.process } : {}),
      // A fork lives as its source does: the same time to live from now, or the same instant.
      ...(source.expires !== undefined ? { expires: source.ttlSeconds ? now + source.ttlSeconds * 1000 : source.expires } : {}),
      ...(source.ttlSeconds ? { ttlSeconds: source.ttlSeconds } : {}),
      ...(source.extendOnWrite ? { extendOnWrite: true as const } : {}),
    };
    const sourceNow: ContainerRecord = { ...source, stack, top: sourceTop };
    // A fork holds what its source holds: it starts with the source's quota and usage, pinned.
    const quota = source.quota ? await readQuota(this.meta, quotaKeys.container(tenant, source.id)) : undefined;
    const quotaOps: WriteOp[] = quota
      ? [
          {
            op: 'check',
            key: quotaKeys.container(tenant, source.id),
            conditions: [
              { kind: 'equals', field: 'usedBytes', value: quota.usedBytes },
              { kind: 'equals', field: 'usedEntries', value: quota.usedEntries },
            ],
          },
          quotaCreationOp(quotaKeys.container(tenant, id), quota, { bytes: quota.usedBytes, entries: quota.usedEntries }),
        ]
      : [];
    // The source's record and name item move to the new top together: a cached record of the
    // source fails its proof, and a write already resolved on the old top fails on the seal.
    const ops: WriteOp[] = [
      {
        op: 'update',
        key: keys.container(tenant, source.id),
        set: { stack: [...stack], top: sourceTop },
        conditions: topConditions(source),
      },
      { op: 'put', item: { ...keys.containerName(tenant, source.name), attrs: nameAttrs(sourceNow) }, conditions: [{ kind: 'equals', field: 'id', value: source.id }] },
      ...sealOps(tenant, sealed, now),
      sealedRecordOp(tenant, sealed, now),
      ...holdOps(tenant, below),
      ...statsCreation(tenant, sourceTop),
      ...statsCreation(tenant, fork.top!),
      { op: 'put', item: { ...keys.container(tenant, id), attrs: { ...fork } }, conditions: [{ kind: 'absent' }] },
      { op: 'put', item: { ...keys.containerName(tenant, name), attrs: nameAttrs(fork) }, conditions: [{ kind: 'absent' }] },
      { op: 'update', key: keys.image(tenant, source.image), add: { containers: 1 }, conditions: [{ kind: 'present' }] },
      ...source.mounts.map((m): WriteOp => ({ op: 'update', key: keys.volume(tenant, m.volume), add: { refs: 1 }, conditions: [{ kind: 'equals', field: 'uid', value: m.volumeUid }] })),
      ...quotaOps,
      ...(fork.expires !== undefined ? [expiryItemOp(tenant, expiryOwner.container(id), fork.expires, name)] : []),
      this.events.op(tenant, 'container.forked', { container: id, name, image: source.image, source: source.id, layer: sealed }),
    ];
    try {
      await this.meta.transact(ops);
    } catch (error) {
      if (error instanceof TransactionConditionError) {
        const failed = error.failedIndexes.map((i) => ops[i]);
        if (failed.some((op) => op.op === 'put' && op.item.pk === keys.containerName(tenant, name).pk && op.item.sk === name)) throw new ConflictError(`the container name ${name} is already in use`);
        if (error.failedIndexes.includes(0) || error.failedIndexes.includes(1)) throw new ConflictError('the container was forked, renamed or removed at the same time; try again');
        if (failed.some((op) => op.op === 'check' && op.key.pk.endsWith('#quotas'))) throw new ConflictError('the container changed while it was forked; try again');
        throw new NotFoundError('a volume or the image of the container changed while it was forked; try again');
      }
      throw error;
    } finally {
      this.containers.forget(tenant, source);
    }
    return this.containers.inspect(tenant, id);
  }
}
