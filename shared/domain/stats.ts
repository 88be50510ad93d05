import { keys, type NamespaceId } from '../keys.js';
import { itemId, type Condition, type ItemKey, type Item, type WriteOp } from '../ports/metadata-store.js';

/**
 * A container's or volume's counters: bytes in its own layer (Docker's SizeRw) and a generation
 * that every change bumps (the sweep uses it to tell a stable namespace from a busy one). Kept
 * in shards so that one hot container's writes do not all update one item.
 */
export const STATS_SHARDS = 4;

/** The shard conditions of a change: the namespace exists and no fork sealed it. */
const OPEN: readonly Condition[] = [{ kind: 'present' }, { kind: 'lacks', field: 'sealed' }];

export function statsKeys(tenant: string, ns: NamespaceId): ItemKey[] {
  return Array.from({ length: STATS_SHARDS }, (_, i) => keys.stats(tenant, ns, i));
}

export function statsCreation(tenant: string, ns: NamespaceId): WriteOp[] {
  return statsKeys(tenant, ns).map((key) => ({ op: 'put', item: { ...key, attrs: { size: 0, gen: 0 } }, conditions: [{ kind: 'absent' }] }));
}

export function statsRemoval(tenant: string, ns: NamespaceId): WriteOp[] {
  return statsKeys(tenant, ns).map((key) => ({ op: 'delete', key }));
}

/**
 * Adds to the counters of one shard; fails (condition) when the namespace is gone or a fork
 * sealed it (`sealed` is set on every shard in the fork's transaction).
 */
export function statsChange(tenant: string, ns: NamespaceId, sizeDelta: number): WriteOp {
  const shard = Math.floor(Math.random() * STATS_SHARDS);
  return { op: 'update', key: keys.stats(tenant, ns, shard), add: { size: sizeDelta, gen: 1 }, conditions: OPEN };
}

/** A check that `ns` still takes changes, for the steps of a long change that touch no counter. */
export function openCheck(tenant: string, ns: NamespaceId): WriteOp {
  return { op: 'check', key: keys.stats(tenant, ns, 0), conditions: OPEN };
}

/**
 * The ops that seal `ns`: no change commits in it after them (see statsChange). With `gens`
 * (each shard's generation as read), only if nothing changed in it since.
 */
export function sealOps(tenant: string, ns: NamespaceId, at: number, gens?: readonly number[]): WriteOp[] {
  return statsKeys(tenant, ns).map((key, shard) => ({
    op: 'update',
    key,
    set: { sealed: at },
    conditions: gens ? [...OPEN, { kind: 'equals', field: 'gen', value: gens[shard] }] : OPEN,
  }));
}

/** Each shard's generation in `items` (from a getMany that asked for statsKeys); -1 for a missing shard. */
export function statsGens(tenant: string, ns: NamespaceId, items: ReadonlyMap<string, Item>): number[] {
  return statsKeys(tenant, ns).map((key) => (items.get(itemId(key))?.attrs.gen as number | undefined) ?? -1);
}

/** The counters of a layer made sealed (a merge layer): its bytes, and no change may commit in it. */
export function sealedStatsCreation(tenant: string, ns: NamespaceId, size: number, at: number): WriteOp[] {
  return statsKeys(tenant, ns).map((key, shard) => ({ op: 'put', item: { ...key, attrs: { size: shard === 0 ? size : 0, gen: 0, sealed: at } }, conditions: [{ kind: 'absent' }] }));
}

/** Totals over the shards found in `items` (from a getMany that asked for statsKeys). */
export function statsTotals(tenant: string, ns: NamespaceId, items: ReadonlyMap<string, Item>): { size: number; gen: number; present: boolean } {
  let size = 0;
  let gen = 0;
  let present = false;
  for (const key of statsKeys(tenant, ns)) {
    const item = items.get(itemId(key));
    if (!item) continue;
    present = true;
    size += (item.attrs.size as number) ?? 0;
    gen += (item.attrs.gen as number) ?? 0;
  }
  return { size, gen, present };
}
