import { randomBytes } from 'node:crypto';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import { itemId, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import type { ContainerRecord } from './records.js';

/**
 * Container layers and the seals forks put on them. A fork seals the source's writable layer
 * (it becomes read-only, shared by both sides) and gives each side a fresh layer above it, so a
 * fork copies no entry. A sealed layer counts the containers whose stacks hold it and is
 * reclaimed with the last of them.
 */

/** Sealed layers a stack may hold; a fork and a removal each stay within one transaction. */
export const MAX_SEALED_LAYERS = 32;

export function isContainerLayer(ns: NamespaceId): boolean {
  return ns.startsWith('c:');
}

/** The container's writable namespace. */
export function topOf(record: Pick<ContainerRecord, 'id' | 'top'>): NamespaceId {
  return record.top ?? `c:${record.id}`;
}

/** The sealed layers below the container's top, newest first. */
export function sealedOf(record: Pick<ContainerRecord, 'stack'>): NamespaceId[] {
  return record.stack.filter(isContainerLayer);
}

/** Every namespace that holds the container's changes over its image: its top, then its sealed layers. */
export function ownNamespaces(record: Pick<ContainerRecord, 'id' | 'top' | 'stack'>): NamespaceId[] {
  return [topOf(record), ...sealedOf(record)];
}

/** A fresh container layer (32 hex digits, so it never looks like a container's own `c:<id>`). */
export function newLayerNamespace(): NamespaceId {
  return `c:${randomBytes(16).toString('hex')}`;
}

export interface SealedLayerRecord {
  readonly namespace: NamespaceId;
  /** Containers whose stacks hold the layer, and merge layers whose files use its blobs. */
  readonly refs: number;
  readonly sealed: number;
  /**
   * A merge layer: the layers of the merge's source whose blobs its files point at. Each counts
   * this layer as one holder, and is let go when this layer is reclaimed.
   */
  readonly holds?: readonly NamespaceId[];
  /** A compaction's flat layer: `holds` are the chain it replaced, newest first (fork points among them). */
  readonly flattens?: true;
}

/** The ops that give `layers` one more holder each (a fork's new side). */
export function holdOps(tenant: string, layers: readonly NamespaceId[]): WriteOp[] {
  return layers.map((ns) => ({ op: 'update', key: keys.sealedLayer(tenant, ns), add: { refs: 1 }, conditions: [{ kind: 'atLeast', field: 'refs', value: 1 }] }));
}

/** The op that records a layer just sealed, held by both sides of a fork unless `refs` says otherwise. */
export function sealedRecordOp(tenant: string, ns: NamespaceId, at: number, refs = 2, holds: readonly NamespaceId[] = [], flattens = false): WriteOp {
  const record: SealedLayerRecord = { namespace: ns, refs, sealed: at, ...(holds.length ? { holds: [...holds] } : {}), ...(flattens ? { flattens: true as const } : {}) };
  return { op: 'put', item: { ...keys.sealedLayer(tenant, ns), attrs: { ...record } }, conditions: [{ kind: 'absent' }] };
}

/**
 * The ops that let go of `layers` for a removed container, pinned to the counts read now (the
 * transaction fails if another fork or removal moved one): the last holder's removal turns the
 * layer into garbage, for the sweep to reclaim.
 */
export async function releaseOps(meta: MetadataStore, tenant: string, layers: readonly NamespaceId[], now: number): Promise<WriteOp[]> {
  if (layers.length === 0) return [];
  const items = await meta.getMany(layers.map((ns) => keys.sealedLayer(tenant, ns)));
  return layers.flatMap((ns): WriteOp[] => {
    const key = keys.sealedLayer(tenant, ns);
    const record = items.get(itemId(key))?.attrs as unknown as SealedLayerRecord | undefined;
    const refs = record?.refs ?? 0;
    if (refs > 1) return [{ op: 'update', key, add: { refs: -1 }, conditions: [{ kind: 'equals', field: 'refs', value: refs }] }];
    // A merge layer's garbage carries what it holds, for the reclaim to let go of once it is gone.
    const holds = record?.holds?.length ? { holds: [...record.holds] } : {};
    return [
      { op: 'delete', key, conditions: [{ kind: 'equals', field: 'refs', value: 1 }] },
      { op: 'put', item: { ...keys.garbage(tenant, ns), attrs: { namespace: ns, blobPrefix: blobKeys.namespacePrefix(tenant, ns), since: now, ...holds } } },
    ];
  });
}
