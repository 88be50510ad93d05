import { ConflictError, InvalidInputError, QuotaExceededError, TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { Item, ItemKey, MetadataStore, WriteOp } from '../ports/metadata-store.js';

/**
 * Quotas of containers and volumes: a byte and an entry limit, checked in the transaction of
 * every change, so concurrent writers can never take a tree past them. The quota item holds
 * what is left (`freeBytes`, `freeEntries`) and what is used; a change that adds conditions on
 * enough being left and takes it, one that frees gives it back. Bytes are those of the
 * container's own layers (its size); entries are the items those layers hold (files,
 * directories, links and deletion markers alike).
 */
export interface QuotaLimits {
  /** Most bytes; absent: no byte limit. */
  readonly bytes?: number;
  /** Most entries; absent: no entry limit. */
  readonly entries?: number;
}

export interface QuotaState extends QuotaLimits {
  readonly usedBytes: number;
  readonly usedEntries: number;
}

/** Large enough never to bind, small enough to stay exact in a double. */
const UNLIMITED = Number.MAX_SAFE_INTEGER / 4;

/** The largest limit: 2^50 (a pebibyte, or that many entries), far below where `free` could lose precision. */
export const MAX_QUOTA_LIMIT = 2 ** 50;

export function checkQuotaLimits(limits: QuotaLimits): QuotaLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_QUOTA_LIMIT) throw new InvalidInputError(`quota.${name} must be a whole number from 0 to ${MAX_QUOTA_LIMIT}`);
  }
  return limits;
}

/** The item of a new container's or volume's quota (nothing used yet, or `used` when a fork copies its source's). */
export function quotaCreationOp(key: ItemKey, limits: QuotaLimits, used: { bytes: number; entries: number } = { bytes: 0, entries: 0 }): WriteOp {
  return { op: 'put', item: { ...key, attrs: quotaAttrs(limits, used.bytes, used.entries) }, conditions: [{ kind: 'absent' }] };
}

function quotaAttrs(limits: QuotaLimits, usedBytes: number, usedEntries: number): Record<string, unknown> {
  return {
    maxBytes: limits.bytes ?? null,
    maxEntries: limits.entries ?? null,
    usedBytes,
    usedEntries,
    freeBytes: (limits.bytes ?? UNLIMITED) - usedBytes,
    freeEntries: (limits.entries ?? UNLIMITED) - usedEntries,
  };
}

/**
 * The op that books a change's bytes and entries against the quota; it fails if either would go
 * past its limit, unless `enforce` is false (a removal is always allowed, even when a whiteout
 * it leaves is one entry more).
 */
export function quotaChange(key: ItemKey, bytes: number, entries: number, options: { enforce?: boolean } = {}): WriteOp {
  const enforce = options.enforce ?? true;
  return {
    op: 'update',
    key,
    add: { usedBytes: bytes, usedEntries: entries, freeBytes: -bytes, freeEntries: -entries },
    conditions: [
      { kind: 'present' },
      ...(enforce && bytes > 0 ? [{ kind: 'atLeast' as const, field: 'freeBytes', value: bytes }] : []),
      ...(enforce && entries > 0 ? [{ kind: 'atLeast' as const, field: 'freeEntries', value: entries }] : []),
    ],
  };
}

/** The error for a refused quota change, naming the limit. */
export async function quotaRefusal(meta: MetadataStore, key: ItemKey, bytes: number, entries: number): Promise<QuotaExceededError> {
  const state = await readQuota(meta, key);
  if (state?.bytes !== undefined && bytes > 0 && state.usedBytes + bytes > state.bytes) {
    return new QuotaExceededError(`the byte quota (${state.bytes} bytes) would be exceeded: ${state.usedBytes} used, this change adds ${bytes}`);
  }
  if (state?.entries !== undefined && entries > 0)
    return new QuotaExceededError(`the entry quota (${state.entries} entries) would be exceeded: ${state.usedEntries} used, this change adds ${entries}`);
  return new QuotaExceededError('the quota would be exceeded');
}

export async function readQuota(meta: MetadataStore, key: ItemKey): Promise<QuotaState | undefined> {
  return quotaFromItem(await meta.get(key));
}

/** A change of limits: a number sets one, null lifts it, absent keeps it. */
export interface QuotaUpdate {
  readonly bytes?: number | null;
  readonly entries?: number | null;
}

/**
 * Sets new limits on an existing quota, pinned to the usage read (a concurrent change makes it
 * try again). Limits below what is used are allowed: nothing more may be added until enough is
 * freed. Throws ConflictError for a tree made without a quota.
 */
export async function setQuotaLimits(meta: MetadataStore, key: ItemKey, update: QuotaUpdate): Promise<QuotaState> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const state = await readQuota(meta, key);
    if (!state) throw new ConflictError('this tree was made without a quota, and one can only be set when a container or volume is created');
    const limits = checkQuotaLimits({
      bytes: update.bytes === undefined ? state.bytes : (update.bytes ?? undefined),
      entries: update.entries === undefined ? state.entries : (update.entries ?? undefined),
    });
    try {
      await meta.transact([
        {
          op: 'put',
          item: { ...key, attrs: quotaAttrs(limits, state.usedBytes, state.usedEntries) },
          conditions: [
            { kind: 'equals', field: 'usedBytes', value: state.usedBytes },
            { kind: 'equals', field: 'usedEntries', value: state.usedEntries },
          ],
        },
      ]);
      return { ...limits, usedBytes: state.usedBytes, usedEntries: state.usedEntries };
    } catch (error) {
      if (!(error instanceof TransactionConditionError)) throw error;
    }
  }
  throw new ConflictError('the tree kept changing while its quota was set; try again');
}

/** How a summary shows a quota: its limits (null: none) and what is used. */
export function quotaView(state: QuotaState): { bytes: number | null; entries: number | null; usedBytes: number; usedEntries: number } {
  return { bytes: state.bytes ?? null, entries: state.entries ?? null, usedBytes: state.usedBytes, usedEntries: state.usedEntries };
}

export function quotaFromItem(item: Item | undefined): QuotaState | undefined {
  if (!item) return undefined;
  const a = item.attrs;
  return { bytes: (a.maxBytes as number | null) ?? undefined, entries: (a.maxEntries as number | null) ?? undefined, usedBytes: a.usedBytes as number, usedEntries: a.usedEntries as number };
}

/** The quota item key of a container or volume. */
export const quotaKeys = {
  container: (tenant: string, id: string) => keys.quota(tenant, `c:${id}`),
  volume: (tenant: string, uid: string) => keys.quota(tenant, `v:${uid}`),
};
