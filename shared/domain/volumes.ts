import { randomUUID } from 'node:crypto';
import { ConflictError, InvalidInputError, NotFoundError, TransactionConditionError } from '../errors.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import { itemId, queryAll, type Item, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import { EventLog } from './events.js';
import type { VolumeRecord } from './records.js';
import { statsCreation, statsKeys, statsRemoval, statsTotals } from './stats.js';
import { checkLabels } from './limits.js';
import type { View } from './view.js';
import { checkQuotaLimits, type QuotaLimits, type QuotaState, type QuotaUpdate, quotaCreationOp, quotaFromItem, quotaKeys, quotaView, setQuotaLimits } from './quotas.js';
import { feedOwner } from './change-feed.js';
import { expiryAttrs, expiryFrom, expiryItemOp, expiryItemRemoval, expiryOwner, type ExpiryRequest, type ExpirySettings, expiryView, extension, isExpired } from './expiry.js';

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/;

export interface VolumeSummary {
  readonly name: string;
  readonly anonymous: boolean;
  readonly created: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Containers using it. */
  readonly refCount: number;
  /** Bytes of files in it, from a counter kept by every write. */
  readonly size: number;
  /** Its limits and what counts against them, when it was made with a quota. */
  readonly quota?: ReturnType<typeof quotaView>;
  /** When it expires (ms since the epoch; while a container uses it, when the last one goes), and how: see expiry.ts. */
  readonly expiresAt?: number;
  readonly ttlSeconds?: number;
  readonly extendOnWrite?: boolean;
}

export function volumeNamespace(volume: Pick<VolumeRecord, 'uid'>): NamespaceId {
  return `v:${volume.uid}`;
}

/**
 * Volumes: storage that outlives containers. Each is its own namespace of nodes and its own blob
 * prefix; containers count their references, and a volume in use cannot be removed.
 */
export class VolumeService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly clock: () => number = Date.now,
    private readonly events: EventLog = new EventLog(meta, clock),
  ) {}

  /** Ops that create a volume record and its size counter, for use inside a larger transaction. */
  creationOps(tenant: string, record: VolumeRecord, quota?: QuotaLimits): WriteOp[] {
    return [
      { op: 'put', item: { ...keys.volume(tenant, record.name), attrs: { ...record, ...(quota ? { quota: true } : {}) } }, conditions: [{ kind: 'absent' }] },
      ...(quota ? [quotaCreationOp(quotaKeys.volume(tenant, record.uid), checkQuotaLimits(quota))] : []),
      ...(record.expires !== undefined ? [expiryItemOp(tenant, expiryOwner.volume(record.uid), record.expires, record.name)] : []),
      ...statsCreation(tenant, volumeNamespace(record)),
      this.events.op(tenant, 'volume.created', { volume: record.name, anonymous: record.anonymous }),
    ];
  }

  newRecord(name: string | undefined, labels: Record<string, string> = {}): VolumeRecord {
    if (name !== undefined && !VOLUME_NAME.test(name)) throw new InvalidInputError(`invalid volume name ${JSON.stringify(name)}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
    const uid = randomUUID().replace(/-/g, '');
    return { name: name ?? `${uid}${uid}`.slice(0, 64), uid, anonymous: name === undefined, created: this.clock(), labels: checkLabels(labels), refs: 0 };
  }

  /**
   * Creates a named volume; creating one that exists returns it unchanged, as Docker does (an
   * expired one nobody uses goes first, and the name makes a new one).
   */
  async create(tenant: string, name: string | undefined, options: { labels?: Record<string, string>; quota?: QuotaLimits; expiry?: ExpiryRequest } = {}): Promise<VolumeSummary> {
    const expiry = options.expiry ? expiryFrom(options.expiry, this.clock()) : undefined;
    const record: VolumeRecord = { ...this.newRecord(name, options.labels), ...expiry };
    if (name !== undefined) {
      const existing = (await this.meta.get(keys.volume(tenant, name)))?.attrs as unknown as VolumeRecord | undefined;
      if (existing && this.isGone(existing)) await this.expire(tenant, existing);
    }
    try {
      await this.meta.transact([...this.creationOps(tenant, record, options.quota), { op: 'put', item: { ...keys.tenant(tenant), attrs: { tenant } } }]);
    } catch (error) {
      if (error instanceof TransactionConditionError && name !== undefined) return this.inspect(tenant, name);
      throw error;
    }
    return this.inspect(tenant, record.name);
  }

  /** Throws NotFoundError (an expired volume that no container uses is gone). */
  async record(tenant: string, name: string): Promise<VolumeRecord> {
    const item = await this.meta.get(keys.volume(tenant, name));
    const record = item?.attrs as unknown as VolumeRecord | undefined;
    if (!record || this.isGone(record)) throw new NotFoundError(`no such volume: ${name}`);
    return record;
  }

  /** Expired and used by no container: gone to every caller, before its storage is reclaimed. A volume in use waits for its last container. */
  isGone(record: VolumeRecord): boolean {
    return record.refs === 0 && isExpired(record, this.clock());
  }

  /** Removes an expired volume nobody uses, only if its expiry is still the one read. Answers whether it went. */
  async expire(tenant: string, record: VolumeRecord): Promise<boolean> {
    if (!this.isGone(record)) return false;
    try {
      await this.meta.transact(this.removalOps(tenant, record, 0, { expired: true }));
      return true;
    } catch (error) {
      if (error instanceof TransactionConditionError) return false;
      throw error;
    }
  }

  /** New expiry settings (expiry.ts): the record and the expiry item change together. Throws NotFoundError and InvalidInputError. */
  async setExpiry(tenant: string, name: string, request: ExpiryRequest): Promise<VolumeSummary> {
    const record = await this.record(tenant, name);
    const settings = expiryFrom(request, this.clock(), record.expires === undefined ? undefined : (record as ExpirySettings));
    const { set, remove } = expiryAttrs(settings);
    const owner = expiryOwner.volume(record.uid);
    try {
      await this.meta.transact([
        { op: 'update', key: keys.volume(tenant, name), ...(Object.keys(set).length ? { set } : {}), remove, conditions: [{ kind: 'equals', field: 'uid', value: record.uid }] },
        settings ? expiryItemOp(tenant, owner, settings.expires, name) : expiryItemRemoval(tenant, owner),
      ]);
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new NotFoundError(`no such volume: ${name}`);
      throw error;
    }
    return this.inspect(tenant, name);
  }

  /** After a write into the volume itself: pushes its expiry back once a tenth of its time to live has passed (see ContainerService.touch). */
  async touch(tenant: string, record: VolumeRecord): Promise<void> {
    const pushed = extension(keys.volume(tenant, record.name), record, this.clock());
    if (!pushed) return;
    await this.meta.transact([pushed.op]).catch((error) => {
      if (!(error instanceof TransactionConditionError)) throw error;
    });
  }

  async inspect(tenant: string, name: string): Promise<VolumeSummary> {
    const record = await this.record(tenant, name);
    const ns = volumeNamespace(record);
    const items = await this.meta.getMany([...statsKeys(tenant, ns), ...(record.quota ? [quotaKeys.volume(tenant, record.uid)] : [])]);
    return summarize(record, statsTotals(tenant, ns, items).size, quotaOf(tenant, record, items));
  }

  async list(tenant: string): Promise<VolumeSummary[]> {
    const records = (await queryAll(this.meta, keys.volumes(tenant))).map((i) => i.attrs as unknown as VolumeRecord).filter((r) => !this.isGone(r));
    const items = await this.meta.getMany(records.flatMap((r) => [...statsKeys(tenant, volumeNamespace(r)), ...(r.quota ? [quotaKeys.volume(tenant, r.uid)] : [])]));
    return records.map((r) => summarize(r, statsTotals(tenant, volumeNamespace(r), items).size, quotaOf(tenant, r, items)));
  }

  /** A PATCH: new quota limits and expiry settings, each checked before either is written. */
  async update(tenant: string, name: string, changes: { quota?: QuotaUpdate; expiry?: ExpiryRequest }): Promise<VolumeSummary> {
    const record = await this.record(tenant, name);
    if (changes.quota && !record.quota) throw new ConflictError(`volume ${name} was made without a quota, and one can only be set when a volume is created`);
    if (changes.expiry) expiryFrom(changes.expiry, this.clock(), record.expires === undefined ? undefined : (record as ExpirySettings));
    if (changes.quota) await setQuotaLimits(this.meta, quotaKeys.volume(tenant, record.uid), changes.quota);
    return changes.expiry ? this.setExpiry(tenant, name, changes.expiry) : this.inspect(tenant, name);
  }

  /** New limits for a volume made with a quota (ConflictError for one made without). */
  async setQuota(tenant: string, name: string, update: QuotaUpdate): Promise<VolumeSummary> {
    const record = await this.record(tenant, name);
    if (!record.quota) throw new ConflictError(`volume ${name} was made without a quota, and one can only be set when a volume is created`);
    await setQuotaLimits(this.meta, quotaKeys.volume(tenant, record.uid), update);
    return this.inspect(tenant, name);
  }

  /**
   * Ops that delete a volume whose reference count is `refs`, leaving its nodes and objects to
   * the sweep; `expired` only while its expiry is still the one read.
   */
  removalOps(tenant: string, record: VolumeRecord, refs: number, options: { expired?: boolean } = {}): WriteOp[] {
    const ns = volumeNamespace(record);
    const expired = options.expired || isExpired(record, this.clock());
    return [
      ...(record.quota ? [{ op: 'delete', key: quotaKeys.volume(tenant, record.uid) } as WriteOp] : []),
      ...(record.expires !== undefined ? [expiryItemRemoval(tenant, expiryOwner.volume(record.uid))] : []),
      {
        op: 'delete',
        key: keys.volume(tenant, record.name),
        conditions: [
          { kind: 'equals', field: 'refs', value: refs },
          { kind: 'equals', field: 'uid', value: record.uid },
          ...(options.expired ? [{ kind: 'equals' as const, field: 'expires', value: record.expires! }] : []),
        ],
      },
      ...statsRemoval(tenant, ns),
      { op: 'put', item: { ...keys.garbage(tenant, ns), attrs: { namespace: ns, blobPrefix: blobKeys.namespacePrefix(tenant, ns), since: this.clock(), feed: feedOwner.volume(record.uid) } } },
      this.events.op(tenant, 'volume.removed', { volume: record.name, anonymous: record.anonymous, ...(expired ? { expired: true } : {}) }),
    ];
  }

  /** 409 while a container uses it; a missing volume is 404, or success with `force`. */
  async remove(tenant: string, name: string, options: { force?: boolean } = {}): Promise<void> {
    let record: VolumeRecord;
    try {
      record = await this.record(tenant, name);
    } catch (error) {
      if (error instanceof NotFoundError && options.force) return;
      throw error;
    }
    if (record.refs > 0) throw new ConflictError(`volume ${name} is in use by ${record.refs} container(s)`);
    try {
      await this.meta.transact(this.removalOps(tenant, record, 0));
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new ConflictError(`volume ${name} is in use`);
      throw error;
    }
  }

  /** Removes unused anonymous volumes, or every unused volume with `all`. Returns the names removed and their bytes. */
  async prune(tenant: string, options: { all?: boolean } = {}): Promise<{ removed: string[]; reclaimed: number }> {
    const removed: string[] = [];
    let reclaimed = 0;
    for (const volume of await this.list(tenant)) {
      if (volume.refCount > 0 || (!volume.anonymous && !options.all)) continue;
      try {
        await this.remove(tenant, volume.name);
        removed.push(volume.name);
        reclaimed += volume.size;
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error;
      }
    }
    return { removed, reclaimed };
  }

  view(tenant: string, record: VolumeRecord, readOnly = false): View {
    return {
      tenant,
      top: volumeNamespace(record),
      lowers: [],
      mounts: [],
      readOnly,
      feed: feedOwner.volume(record.uid),
      volume: record.name,
      ...(record.quota ? { quota: quotaKeys.volume(tenant, record.uid) } : {}),
    };
  }
}

function summarize(record: VolumeRecord, size: number, quota?: QuotaState): VolumeSummary {
  return {
    name: record.name,
    anonymous: record.anonymous,
    created: record.created,
    labels: record.labels ?? {},
    refCount: record.refs,
    size,
    ...(quota ? { quota: quotaView(quota) } : {}),
    ...expiryView(record),
  };
}

function quotaOf(tenant: string, record: VolumeRecord, items: ReadonlyMap<string, Item>): QuotaState | undefined {
  return record.quota ? quotaFromItem(items.get(itemId(quotaKeys.volume(tenant, record.uid)))) : undefined;
}
