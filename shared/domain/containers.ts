import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidInputError, NotFoundError, TransactionConditionError } from '../errors.js';
import { EventLog } from './events.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import { normalizePath } from '../paths.js';
import { itemId, queryAll, type Condition, type Item, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import type { ImageService } from './images.js';
import type { ContainerRecord, ImageRecord, MountRecord, ProcessSettings, VolumeRecord } from './records.js';
import type { View } from './view.js';
import { statsCreation, statsKeys, statsRemoval, statsTotals } from './stats.js';
import { checkLabels } from './limits.js';
import { volumeNamespace, type VolumeService } from './volumes.js';
import type { Proof } from './resolver.js';
import { ownNamespaces, releaseOps, sealedOf, topOf } from './sealed-layers.js';
import { checkQuotaLimits, type QuotaLimits, type QuotaState, type QuotaUpdate, quotaCreationOp, quotaFromItem, quotaKeys, quotaView, setQuotaLimits } from './quotas.js';
import { feedOwner } from './change-feed.js';
import { expiryAttrs, expiryFrom, expiryItemOp, expiryItemRemoval, expiryOwner, type ExpiryRequest, type ExpirySettings, expiryView, extension, isExpired } from './expiry.js';

const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function checkContainerName(name: string): void {
  if (!CONTAINER_NAME.test(name)) throw new InvalidInputError(`invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  // A name that reads as a full ID would make `ref` ambiguous.
  if (/^[0-9a-f]{64}$/.test(name)) throw new InvalidInputError('a container name cannot be 64 hex characters (that is what IDs look like)');
}
/** Creating and removing a container are single transactions (100 ops at most); each mount costs up to 2 + 2 x stats shards. */
export const MAX_MOUNTS = 8;

export interface MountRequest {
  /** Absolute path in the container. */
  readonly target: string;
  /** A volume name; created if missing. Omitted: a new anonymous volume. */
  readonly volume?: string;
  readonly readOnly?: boolean;
}

export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly imageRef?: string;
  readonly created: number;
  readonly mounts: readonly { target: string; volume: string; readOnly: boolean; anonymous: boolean }[];
  readonly labels: Readonly<Record<string, string>>;
  readonly process: ProcessSettings;
  /** Set on a fork: its source and the tree both started from (`changes?against=<forkPoint>`). */
  readonly forkedFrom?: { readonly container: string; readonly forkPoint: string; readonly at: number };
  /** Bytes of files the container created or changed (Docker's SizeRw). */
  readonly size?: number;
  /** Image size plus `size` (Docker's SizeRootFs). */
  readonly virtualSize?: number;
  /** Its limits and what counts against them, when it was made with a quota. */
  readonly quota?: ReturnType<typeof quotaView>;
  /** When it expires (ms since the epoch), and how: see expiry.ts. */
  readonly expiresAt?: number;
  readonly ttlSeconds?: number;
  readonly extendOnWrite?: boolean;
}

/** IDs and names live apart in the cache, whatever they look like. */
function cacheKey(tenant: string, ref: string): string {
  return /^[0-9a-f]{64}$/.test(ref) ? `${tenant}/id/${ref}` : `${tenant}/name/${ref}`;
}

/** The writable namespace of a container made before forks existed, and of every new one. */
export function containerNamespace(id: string): NamespaceId {
  return `c:${id}`;
}

/**
 * Containers: a writable namespace on top of an image's stack. Creating one copies nothing
 * (a fixed handful of items whatever the image's size); sizes come from a counter, not a walk.
 */
export class ContainerService {
  /** Container records never change after creation, so a warm function can keep them. */
  private readonly records = new Map<string, ContainerRecord>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly images: ImageService,
    private readonly volumes: VolumeService,
    private readonly clock: () => number = Date.now,
    private readonly events: EventLog = new EventLog(meta, clock),
  ) {}

  async create(
    tenant: string,
    request: { image: string; name?: string; mounts?: readonly MountRequest[]; labels?: Record<string, string>; process?: ProcessSettings; quota?: QuotaLimits; expiry?: ExpiryRequest },
  ): Promise<ContainerSummary> {
    const image = await this.images.resolve(tenant, request.image);
    if (request.name !== undefined) checkContainerName(request.name);
    const expiry = request.expiry ? expiryFrom(request.expiry, this.clock()) : undefined;
    const id = randomBytes(32).toString('hex');
    const name = request.name ?? `strata_${id.slice(0, 12)}`;
    const ops: WriteOp[] = [];
    const mounts: MountRecord[] = [];
    const targets = new Set<string>();
    const volumes = new Set<string>();
    if ((request.mounts ?? []).length > MAX_MOUNTS) throw new InvalidInputError(`at most ${MAX_MOUNTS} mounts per container`);
    for (const m of request.mounts ?? []) {
      // One volume twice would be two updates of one item in one transaction, and two views of one namespace.
      if (m.volume !== undefined && volumes.has(m.volume)) throw new InvalidInputError(`volume ${m.volume} is mounted twice`);
      if (m.volume !== undefined) volumes.add(m.volume);
      const target = normalizePath(m.target);
      if (target === '/') throw new InvalidInputError('a volume cannot be mounted at /');
      if (targets.has(target)) throw new InvalidInputError(`two mounts at ${target}`);
      targets.add(target);
      let volume: VolumeRecord;
      let existing = m.volume === undefined ? undefined : await this.meta.get(keys.volume(tenant, m.volume));
      // An expired volume nobody uses is gone: it goes now, and the name makes a new one.
      if (existing && this.volumes.isGone(existing.attrs as unknown as VolumeRecord)) {
        await this.volumes.expire(tenant, existing.attrs as unknown as VolumeRecord);
        existing = undefined;
      }
      if (existing) {
        volume = existing.attrs as unknown as VolumeRecord;
        ops.push({ op: 'update', key: keys.volume(tenant, volume.name), add: { refs: 1 }, conditions: [{ kind: 'equals', field: 'uid', value: volume.uid }] });
      } else {
        // Docker creates a named volume on first use, and an anonymous one for a bare path.
        volume = { ...this.volumes.newRecord(m.volume), refs: 1 };
        ops.push(...this.volumes.creationOps(tenant, volume));
      }
      mounts.push({ target, volume: volume.name, volumeUid: volume.uid, readOnly: m.readOnly ?? false, ...(volume.quota ? { quota: true as const } : {}) });
    }
    const record: ContainerRecord = {
      id,
      name,
      image: image.id,
      imageRef: request.image,
      stack: image.stack,
      top: containerNamespace(id),
      mounts,
      created: this.clock(),
      labels: checkLabels(request.labels ?? {}),
      ...(request.process && Object.keys(request.process).length ? { process: request.process } : {}),
      ...(request.quota ? { quota: true as const } : {}),
      ...expiry,
    };
    if (request.quota) ops.push(quotaCreationOp(quotaKeys.container(tenant, id), checkQuotaLimits(request.quota)));
    if (expiry) ops.push(expiryItemOp(tenant, expiryOwner.container(id), expiry.expires, name));
    ops.push(
      { op: 'put', item: { ...keys.container(tenant, id), attrs: { ...record } }, conditions: [{ kind: 'absent' }] },
      { op: 'put', item: { ...keys.containerName(tenant, name), attrs: nameAttrs(record) }, conditions: [{ kind: 'absent' }] },
      ...statsCreation(tenant, containerNamespace(id)),
      { op: 'update', key: keys.image(tenant, image.id), add: { containers: 1 }, conditions: [{ kind: 'present' }] },
      { op: 'put', item: { ...keys.tenant(tenant), attrs: { tenant } } },
      this.events.op(tenant, 'container.created', { container: id, name, image: image.id, volumes: mounts.map((m) => m.volume) }),
    );
    for (let attempt = 1; ; attempt++) {
      try {
        await this.meta.transact(ops);
        break;
      } catch (error) {
        if (!(error instanceof TransactionConditionError)) throw error;
        const failed = error.failedIndexes.map((i) => ops[i]);
        if (failed.some((op) => op.op === 'put' && op.item.pk === keys.containerName(tenant, name).pk)) {
          // An expired container's name is free: it goes now, and the name is taken again.
          if (attempt === 1 && (await this.expireNamed(tenant, name))) continue;
          throw new ConflictError(`the container name ${name} is already in use`);
        }
        if (failed.some((op) => op.op === 'update' && op.key.pk === keys.images(tenant))) throw new NotFoundError(`image ${request.image} was just removed`);
        throw new ConflictError('a volume changed while the container was being created; try again');
      }
    }
    return this.summarize(record, 0, image);
  }

  /**
   * Gives a container a new name in one transaction (the old name item, the new one, the record).
   * Throws NotFoundError, InvalidInputError (bad or unchanged name) and ConflictError (name taken).
   */
  async rename(tenant: string, ref: string, newName: string): Promise<void> {
    checkContainerName(newName);
    const record = await this.record(tenant, ref);
    if (newName === record.name) throw new InvalidInputError(`the container is already called ${newName}`);
    try {
      await this.meta.transact([
        { op: 'delete', key: keys.containerName(tenant, record.name), conditions: [{ kind: 'equals', field: 'id', value: record.id }] },
        { op: 'put', item: { ...keys.containerName(tenant, newName), attrs: nameAttrs(record) }, conditions: [{ kind: 'absent' }] },
        { op: 'update', key: keys.container(tenant, record.id), set: { name: newName }, conditions: [{ kind: 'equals', field: 'name', value: record.name }] },
        this.events.op(tenant, 'container.renamed', { container: record.id, name: newName, previousName: record.name }),
      ]);
    } catch (error) {
      if (error instanceof TransactionConditionError) {
        if (error.failedIndexes.includes(1)) throw new ConflictError(`the container name ${newName} is already in use`);
        throw new ConflictError('the container was renamed or removed at the same time; try again');
      }
      throw error;
    }
    this.forget(tenant, record);
  }

  /** Finds a container by ID, unique ID prefix or name. Throws NotFoundError. */
  async record(tenant: string, ref: string): Promise<ContainerRecord> {
    return (await this.lookup(tenant, ref)).record;
  }

  /**
   * Like `record`; with `cache`, a record this process saw before may be returned (by ID or by
   * name), and `cached` says so: the caller must then confirm it against the store, as reads do
   * by fetching the record in the same round trip as the path.
   */
  async lookup(tenant: string, ref: string, options: { cache?: boolean } = {}): Promise<{ record: ContainerRecord; cached: boolean }> {
    // A cached record past its expiry may have been extended since: only the store can say.
    const cached = options.cache ? this.records.get(cacheKey(tenant, ref)) : undefined;
    if (cached && !isExpired(cached, this.clock())) return { record: cached, cached: true };
    let id: string | undefined;
    if (/^[0-9a-f]{64}$/.test(ref)) id = ref;
    else {
      const named = await this.meta.get(keys.containerName(tenant, ref));
      if (named) id = named.attrs.id as string;
      else if (/^[0-9a-f]{4,63}$/.test(ref)) {
        const page = await this.meta.query(keys.containers(tenant), { prefix: ref, limit: 2 });
        if (page.items.length > 1) throw new ConflictError(`container ID prefix ${ref} is ambiguous`);
        id = page.items[0]?.sk;
      }
    }
    const item = id && (await this.meta.get(keys.container(tenant, id)));
    const record = item ? (item.attrs as unknown as ContainerRecord) : undefined;
    // An expired container is gone for every caller at once, before its storage is reclaimed.
    if (!record || isExpired(record, this.clock())) throw new NotFoundError(`no such container: ${ref}`);
    if (ref === record.id || ref === record.name) this.remember(tenant, record);
    return { record, cached: false };
  }

  private remember(tenant: string, record: ContainerRecord) {
    if (this.records.size > 10_000) this.records.clear();
    this.records.set(cacheKey(tenant, record.id), record);
    this.records.set(cacheKey(tenant, record.name), record);
  }

  /** Drops a record from the cache (it was removed, or its name now belongs to another container). */
  forget(tenant: string, record: ContainerRecord): void {
    this.records.delete(cacheKey(tenant, record.id));
    if (this.records.get(cacheKey(tenant, record.name))?.id === record.id) this.records.delete(cacheKey(tenant, record.name));
  }

  /**
   * The view of a container for a file operation, plus the proof that it is still the container
   * `ref` names: the caller fetches it in the same round trip as the path's nodes.
   */
  async view(tenant: string, ref: string, options: { cache?: boolean } = {}): Promise<{ view: View; record: ContainerRecord; proof: Proof; cached: boolean }> {
    const { record, cached } = await this.lookup(tenant, ref, options);
    // A name is proved by its name item (another process may have given the name to another
    // container since), anything else by the record.
    const key = ref === record.name && ref !== record.id ? keys.containerName(tenant, ref) : keys.container(tenant, record.id);
    return { view: this.viewOf(tenant, record), record, proof: { key, id: record.id, top: record.top }, cached };
  }

  viewOf(tenant: string, record: ContainerRecord): View {
    return {
      tenant,
      top: topOf(record),
      lowers: record.stack,
      readOnly: false,
      feed: feedOwner.container(record.id),
      ...(record.quota ? { quota: quotaKeys.container(tenant, record.id) } : {}),
      mounts: record.mounts.map((m) => ({
        target: m.target,
        volume: m.volume,
        readOnly: m.readOnly,
        view: {
          tenant,
          top: volumeNamespace({ uid: m.volumeUid }),
          lowers: [],
          mounts: [],
          readOnly: m.readOnly,
          feed: feedOwner.volume(m.volumeUid),
          volume: m.volume,
          ...(m.quota ? { quota: quotaKeys.volume(tenant, m.volumeUid) } : {}),
        },
      })),
    };
  }

  async list(tenant: string, options: { size?: boolean } = {}): Promise<ContainerSummary[]> {
    if (!options.size) return (await this.live(tenant)).sort((a, b) => b.created - a.created).map((r) => this.summarize(r));
    return (await this.listWithSizes(tenant)).items;
  }

  /**
   * Every container with its sizes, and the bytes of all their layers with each layer counted
   * once (forks share the layers they were forked from): `docker system df`'s total.
   */
  async listWithSizes(tenant: string): Promise<{ items: ContainerSummary[]; layerBytes: number }> {
    const records = await this.live(tenant);
    const layers = [...new Set(records.flatMap((r) => ownNamespaces(r)))];
    const imageKeys = [...new Set(records.map((r) => r.image))].map((id) => keys.image(tenant, id));
    const quotas = records.filter((r) => r.quota).map((r) => quotaKeys.container(tenant, r.id));
    const items = await this.meta.getMany([...layers.flatMap((ns) => statsKeys(tenant, ns)), ...imageKeys, ...quotas]);
    const summaries = records
      .sort((a, b) => b.created - a.created)
      .map((r) => this.summarize(r, sizeOf(tenant, r, items), items.get(itemId(keys.image(tenant, r.image)))?.attrs as unknown as ImageRecord | undefined, quotaOf(tenant, r, items)));
    return { items: summaries, layerBytes: layers.reduce((sum, ns) => sum + statsTotals(tenant, ns, items).size, 0) };
  }

  /** Every container not expired. */
  private async live(tenant: string): Promise<ContainerRecord[]> {
    const now = this.clock();
    return (await queryAll(this.meta, keys.containers(tenant))).map((i) => i.attrs as unknown as ContainerRecord).filter((r) => !isExpired(r, now));
  }

  /**
   * New expiry settings (expiry.ts `expiryFrom`): the record and the expiry item change together.
   * Throws NotFoundError and InvalidInputError.
   */
  async setExpiry(tenant: string, ref: string, request: ExpiryRequest): Promise<ContainerSummary> {
    const record = await this.record(tenant, ref);
    const settings = expiryFrom(request, this.clock(), record.expires === undefined ? undefined : (record as ExpirySettings));
    const { set, remove } = expiryAttrs(settings);
    const owner = expiryOwner.container(record.id);
    try {
      await this.meta.transact([
        { op: 'update', key: keys.container(tenant, record.id), ...(Object.keys(set).length ? { set } : {}), remove, conditions: [{ kind: 'present' }] },
        settings ? expiryItemOp(tenant, owner, settings.expires, record.name) : expiryItemRemoval(tenant, owner),
      ]);
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new NotFoundError(`no such container: ${ref}`);
      throw error;
    } finally {
      this.forget(tenant, record);
    }
    return this.inspect(tenant, record.id);
  }

  /**
   * After a write: pushes the expiry of a container that asks for it back to its time to live
   * from now, once a tenth of that has passed (one update, not one per write). Best effort: a
   * container changed or removed meanwhile keeps what it has.
   */
  async touch(tenant: string, record: ContainerRecord): Promise<void> {
    const pushed = extension(keys.container(tenant, record.id), record, this.clock());
    if (!pushed) return;
    try {
      await this.meta.transact([pushed.op]);
      this.remember(tenant, { ...record, expires: pushed.expires });
    } catch (error) {
      if (!(error instanceof TransactionConditionError)) throw error;
      this.forget(tenant, record);
    }
  }

  /** One container with its sizes: its record, then its counters and image in one round trip, whatever it holds. */
  async inspect(tenant: string, ref: string): Promise<ContainerSummary> {
    const record = await this.record(tenant, ref);
    const quota = record.quota ? [quotaKeys.container(tenant, record.id)] : [];
    const items = await this.meta.getMany([...ownNamespaces(record).flatMap((ns) => statsKeys(tenant, ns)), keys.image(tenant, record.image), ...quota]);
    const size = sizeOf(tenant, record, items);
    return this.summarize(record, size, items.get(itemId(keys.image(tenant, record.image)))?.attrs as unknown as ImageRecord | undefined, quotaOf(tenant, record, items));
  }

  /**
   * A PATCH: new quota limits and expiry settings, each checked before either is written
   * (InvalidInputError, ConflictError for a quota on a container made without one).
   */
  async update(tenant: string, ref: string, changes: { quota?: QuotaUpdate; expiry?: ExpiryRequest }): Promise<ContainerSummary> {
    const record = await this.record(tenant, ref);
    if (changes.quota && !record.quota) throw new ConflictError(`container ${record.name} was made without a quota, and one can only be set when a container is created`);
    if (changes.expiry) expiryFrom(changes.expiry, this.clock(), record.expires === undefined ? undefined : (record as ExpirySettings));
    if (changes.quota) await setQuotaLimits(this.meta, quotaKeys.container(tenant, record.id), changes.quota);
    return changes.expiry ? this.setExpiry(tenant, record.id, changes.expiry) : this.inspect(tenant, record.id);
  }

  /** New limits for a container made with a quota (ConflictError for one made without). */
  async setQuota(tenant: string, ref: string, update: QuotaUpdate): Promise<ContainerSummary> {
    const record = await this.record(tenant, ref);
    if (!record.quota) throw new ConflictError(`container ${record.name} was made without a quota, and one can only be set when a container is created`);
    await setQuotaLimits(this.meta, quotaKeys.container(tenant, record.id), update);
    return this.inspect(tenant, record.id);
  }

  private summarize(record: ContainerRecord, size?: number, image?: ImageRecord, quota?: QuotaState): ContainerSummary {
    return {
      id: record.id,
      name: record.name,
      image: record.image,
      imageRef: record.imageRef,
      created: record.created,
      labels: record.labels ?? {},
      process: record.process ?? {},
      mounts: record.mounts.map((m) => ({ target: m.target, volume: m.volume, readOnly: m.readOnly, anonymous: /^[0-9a-f]{64}$/.test(m.volume) })),
      ...(record.forkedFrom ? { forkedFrom: { container: record.forkedFrom.container, forkPoint: `fork:${record.forkedFrom.layer.slice(2)}`, at: record.forkedFrom.at } } : {}),
      size,
      virtualSize: size === undefined ? undefined : (image?.size ?? 0) + size,
      ...(quota ? { quota: quotaView(quota) } : {}),
      ...expiryView(record),
    };
  }

  /**
   * Removes a container in one transaction: its record, name, size counter, the image's and the
   * volumes' reference counts, and (with `volumes`) its anonymous volumes; named volumes always
   * stay. Its nodes and objects are left to the sweep, recorded as garbage in the same transaction.
   */
  async remove(tenant: string, ref: string, options: { volumes?: boolean } = {}): Promise<void> {
    // A fork, merge or compaction that moved the container's layers meanwhile: read it again.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.removeRecord(tenant, await this.record(tenant, ref), options);
      } catch (error) {
        if (!(error instanceof LayersMoved) || attempt >= 3) throw error instanceof LayersMoved ? new ConflictError('the container was forked or merged while it was being removed; try again') : error;
      }
    }
  }

  /** Removes the container that holds `name` if it has expired; answers whether it did. */
  private async expireNamed(tenant: string, name: string): Promise<boolean> {
    const named = await this.meta.get(keys.containerName(tenant, name));
    const record = named && ((await this.meta.get(keys.container(tenant, named.attrs.id as string)))?.attrs as unknown as ContainerRecord | undefined);
    return record !== undefined && isExpired(record, this.clock()) && this.expire(tenant, record);
  }

  /**
   * Removes an expired container (and its anonymous volumes), only if its expiry is still the
   * one read: a write that pushed it back meanwhile keeps it. Answers whether it went.
   */
  async expire(tenant: string, record: ContainerRecord): Promise<boolean> {
    try {
      await this.removeRecord(tenant, record, { volumes: true, expired: true });
      return true;
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof ConflictError || error instanceof LayersMoved) return false;
      throw error;
    }
  }

  private async removeRecord(tenant: string, record: ContainerRecord, options: { volumes?: boolean; expired?: boolean }): Promise<void> {
    const ref = record.name;
    const ns = topOf(record);
    const now = this.clock();
    const ops: WriteOp[] = [
      // Only the layers read are let go: a fork or merge meanwhile changed them (and its top).
      {
        op: 'delete',
        key: keys.container(tenant, record.id),
        conditions: [...topConditions(record), ...(options.expired ? [{ kind: 'equals' as const, field: 'expires', value: record.expires! }] : [])],
      },
      { op: 'delete', key: keys.containerName(tenant, record.name) },
      ...statsRemoval(tenant, ns),
      { op: 'put', item: { ...keys.garbage(tenant, ns), attrs: { namespace: ns, blobPrefix: blobKeys.namespacePrefix(tenant, ns), since: this.clock(), feed: feedOwner.container(record.id) } } },
      { op: 'update', key: keys.image(tenant, record.image), add: { containers: -1 }, conditions: [{ kind: 'present' }] },
      this.events.op(tenant, 'container.removed', { container: record.id, name: record.name, image: record.image, ...(options.expired ? { expired: true } : {}) }),
      ...(record.quota ? [{ op: 'delete', key: quotaKeys.container(tenant, record.id) } as WriteOp] : []),
      ...(record.expires !== undefined ? [expiryItemRemoval(tenant, expiryOwner.container(record.id))] : []),
      ...(await releaseOps(this.meta, tenant, sealedOf(record), this.clock())),
    ];
    const volumeItems = await this.meta.getMany(record.mounts.map((m) => keys.volume(tenant, m.volume)));
    for (const m of record.mounts) {
      const item = volumeItems.get(itemId(keys.volume(tenant, m.volume)));
      const volume = item?.attrs as unknown as VolumeRecord | undefined;
      if (!volume || volume.uid !== m.volumeUid) continue;
      // An expired volume waits for its last container, and goes with it (unless its expiry moved meanwhile).
      if (volume.refs === 1 && options.volumes && volume.anonymous) ops.push(...this.volumes.removalOps(tenant, volume, 1));
      else if (volume.refs === 1 && isExpired(volume, now)) ops.push(...this.volumes.removalOps(tenant, volume, 1, { expired: true }));
      else ops.push({ op: 'update', key: keys.volume(tenant, m.volume), add: { refs: -1 }, conditions: [{ kind: 'equals', field: 'uid', value: m.volumeUid }] });
    }
    try {
      await this.meta.transact(ops);
    } catch (error) {
      if (error instanceof TransactionConditionError) {
        if (error.failedIndexes.includes(0)) {
          if (!(await this.meta.get(keys.container(tenant, record.id)))) throw new NotFoundError(`no such container: ${ref}`);
          throw new LayersMoved();
        }
        throw new ConflictError('a volume, image or fork of it changed while the container was being removed; try again');
      }
      throw error;
    } finally {
      this.forget(tenant, record);
    }
  }
}

/** A container's record changed between its reading and its removal: read it again. */
class LayersMoved extends Error {}

/** The conditions that a container's record is still the one read, as far as its layers go. */
export function topConditions(record: Pick<ContainerRecord, 'top'>): Condition[] {
  return record.top ? [{ kind: 'equals', field: 'top', value: record.top }] : [{ kind: 'present' }, { kind: 'lacks', field: 'top' }];
}

/** What a name item holds: the container, and its top, so a proof by name also fails after a fork. */
export function nameAttrs(record: Pick<ContainerRecord, 'id' | 'top'>): Record<string, unknown> {
  return record.top ? { id: record.id, top: record.top } : { id: record.id };
}

function quotaOf(tenant: string, record: ContainerRecord, items: ReadonlyMap<string, Item>): QuotaState | undefined {
  return record.quota ? quotaFromItem(items.get(itemId(quotaKeys.container(tenant, record.id)))) : undefined;
}

/** Bytes of the container's own layers: its top and the sealed layers it shares with its forks. */
function sizeOf(tenant: string, record: ContainerRecord, items: ReadonlyMap<string, Item>): number {
  return ownNamespaces(record).reduce((sum, ns) => sum + statsTotals(tenant, ns, items).size, 0);
}
