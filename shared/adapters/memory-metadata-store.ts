/**
 * The metadata port in process memory, with DynamoDB's semantics (byte-ordered sort keys, atomic
 * transactions, the same errors), for fast engine tests. Values are copied in and out, as a
 * network round trip would, so callers cannot reach stored state.
 */
import { TransactionConditionError } from '../errors.js';
import { compareNames } from '../paths.js';
import {
  checkTransaction,
  checkUpdateFields,
  itemId,
  type Attributes,
  type Condition,
  type Item,
  type ItemKey,
  type MetadataStore,
  type QueryOptions,
  type QueryPage,
  type WriteOp,
} from '../ports/metadata-store.js';

const DEFAULT_QUERY_LIMIT = 1000;

type PutOrDelete = Extract<WriteOp, { op: 'put' }> | Extract<WriteOp, { op: 'delete' }>;

/** One partition: items by sort key, plus the sort keys in order (rebuilt lazily after inserts). */
interface Partition {
  readonly items: Map<string, Attributes>;
  sortedKeys?: string[];
}

export class MemoryMetadataStore implements MetadataStore {
  private readonly partitions = new Map<string, Partition>();

  async get(key: ItemKey): Promise<Item | undefined> {
    assertKey(key);
    const attrs = this.partitions.get(key.pk)?.items.get(key.sk);
    return attrs === undefined ? undefined : { pk: key.pk, sk: key.sk, attrs: copyAttributes(attrs) };
  }

  async getMany(keys: readonly ItemKey[]): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    for (const key of keys) {
      assertKey(key);
      const attrs = this.partitions.get(key.pk)?.items.get(key.sk);
      if (attrs !== undefined) found.set(itemId(key), { pk: key.pk, sk: key.sk, attrs: copyAttributes(attrs) });
    }
    return found;
  }

  async query(pk: string, options: QueryOptions = {}): Promise<QueryPage> {
    const { prefix = '', after, limit = DEFAULT_QUERY_LIMIT } = options;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`query limit must be a positive integer, got ${limit}`);
    if (pk === '') throw new Error('empty partition key');
    const partition = this.partitions.get(pk);
    if (partition === undefined) return { items: [] };

    const sortedKeys = (partition.sortedKeys ??= [...partition.items.keys()].sort(compareNames));
    const items: Item[] = [];
    // Keys with the prefix are contiguous and start at the first key >= prefix.
    const start = Math.max(
      firstIndex(sortedKeys, (sk) => compareNames(sk, prefix) >= 0),
      after === undefined ? 0 : firstIndex(sortedKeys, (sk) => compareNames(sk, after) > 0),
    );
    for (let index = start; index < sortedKeys.length && items.length < limit; index++) {
      const sk = sortedKeys[index]!;
      if (!sk.startsWith(prefix)) break;
      items.push({ pk, sk, attrs: copyAttributes(partition.items.get(sk)!) });
    }
    // Like DynamoDB, a full page carries a cursor even when nothing follows.
    return items.length === limit ? { items, last: items.at(-1)!.sk } : { items };
  }

  async last(pk: string): Promise<Item | undefined> {
    if (pk === '') throw new Error('empty partition key');
    const partition = this.partitions.get(pk);
    if (partition === undefined || partition.items.size === 0) return undefined;
    const sk = (partition.sortedKeys ??= [...partition.items.keys()].sort(compareNames)).at(-1)!;
    return { pk, sk, attrs: copyAttributes(partition.items.get(sk)!) };
  }

  async transact(ops: readonly WriteOp[]): Promise<void> {
    checkTransaction(ops);

    // Compute every new state before storing any, so a bad op leaves nothing half applied.
    const writes = ops.flatMap((op) => this.nextState(op));
    const failedIndexes = ops.flatMap((op, index) => ((op.conditions ?? []).every((condition) => this.holds(op.op === 'put' ? op.item : op.key, condition)) ? [] : [index]));
    if (failedIndexes.length > 0) {
      throw new TransactionConditionError(`transaction condition failed on op ${failedIndexes.join(', ')}`, failedIndexes);
    }
    for (const [key, attrs] of writes) this.store(key, attrs);
  }

  async writeMany(ops: readonly PutOrDelete[]): Promise<void> {
    const writes = ops.map((op) => this.nextState(op)[0]!);
    for (const [key, attrs] of writes) this.store(key, attrs);
  }

  /** The item's attributes after the op (undefined: deleted), or nothing for a check. */
  private nextState(op: WriteOp): [ItemKey, Attributes | undefined][] {
    switch (op.op) {
      case 'put':
        assertKey(op.item);
        if ('pk' in op.item.attrs || 'sk' in op.item.attrs) throw new Error('item attributes cannot be named pk or sk');
        return [[op.item, copyAttributes(op.item.attrs)]];
      case 'delete':
        assertKey(op.key);
        return [[op.key, undefined]];
      case 'check':
        assertKey(op.key);
        if (op.conditions.length === 0) throw new Error(`check of ${itemId(op.key)} has no conditions`);
        return [];
      case 'update':
        assertKey(op.key);
        return [[op.key, this.updated(op)]];
    }
  }

  private updated(op: Extract<WriteOp, { op: 'update' }>): Attributes {
    const add = Object.entries(op.add ?? {});
    const set = Object.entries(op.set ?? {}).filter(([, value]) => value !== undefined);
    const remove = op.remove ?? [];
    checkUpdateFields(op);

    const attrs = copyAttributes(this.partitions.get(op.key.pk)?.items.get(op.key.sk) ?? {});
    for (const [field, by] of add) {
      const current = attrs[field] ?? 0;
      if (typeof current !== 'number' || typeof by !== 'number') {
        throw new TypeError(`cannot add to the non-numeric field ${JSON.stringify(field)}`);
      }
      attrs[field] = current + by;
    }
    for (const [field, value] of set) attrs[field] = copyValue(value);
    for (const field of remove) delete attrs[field];
    return attrs;
  }

  private holds(key: ItemKey, condition: Condition): boolean {
    const attrs = this.partitions.get(key.pk)?.items.get(key.sk);
    switch (condition.kind) {
      case 'absent':
        return attrs === undefined;
      case 'present':
        return attrs !== undefined;
      case 'equals':
        return attrs !== undefined && fieldOf(key, attrs, condition.field) === condition.value;
      case 'atLeast': {
        const current = attrs === undefined ? undefined : fieldOf(key, attrs, condition.field);
        return typeof current === 'number' && current >= condition.value;
      }
      case 'lacks':
        return attrs === undefined || fieldOf(key, attrs, condition.field) === undefined;
    }
  }

  private store(key: ItemKey, attrs: Attributes | undefined): void {
    let partition = this.partitions.get(key.pk);
    if (attrs === undefined) {
      if (partition?.items.delete(key.sk)) {
        if (partition.items.size === 0) this.partitions.delete(key.pk);
        else partition.sortedKeys = undefined;
      }
      return;
    }
    if (partition === undefined) {
      partition = { items: new Map() };
      this.partitions.set(key.pk, partition);
    }
    if (!partition.items.has(key.sk)) partition.sortedKeys = undefined;
    partition.items.set(key.sk, attrs);
  }
}

/** Conditions may name the key attributes too, as they can on DynamoDB. */
function fieldOf(key: ItemKey, attrs: Attributes, field: string): unknown {
  if (field === 'pk') return key.pk;
  if (field === 'sk') return key.sk;
  return attrs[field];
}

/** DynamoDB rejects empty key strings; so do we, so the engine cannot rely on them in tests. */
function assertKey(key: ItemKey): void {
  if (key.pk === '' || key.sk === '') throw new Error(`empty key part in ${JSON.stringify(key)}`);
}

function copyAttributes(attrs: Attributes): Attributes {
  return copyValue(attrs) as Attributes;
}

/**
 * A deep copy that stores what the DynamoDB document client would: JSON-like values only,
 * undefined (and functions) dropped from objects and arrays, unsafe numbers refused.
 */
function copyValue(value: unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot store the number ${value}`);
    if (Math.abs(value) > Number.MAX_SAFE_INTEGER) throw new TypeError(`cannot store the imprecise number ${value}`);
    return value;
  }
  if (Array.isArray(value)) return value.filter(isStorable).map(copyValue);
  const prototype = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (prototype === Object.prototype || prototype === null) {
    const copy: Record<string, unknown> = {};
    for (const [field, inner] of Object.entries(value as Attributes)) {
      if (isStorable(inner)) copy[field] = copyValue(inner);
    }
    return copy;
  }
  const type = typeof value === 'object' ? value.constructor?.name : typeof value;
  throw new TypeError(`cannot store a value of type ${type}`);
}

function isStorable(value: unknown): boolean {
  return value !== undefined && typeof value !== 'function';
}

/** The index of the first sort key for which `isAtOrPast` holds (it must be monotonic over the sorted keys). */
function firstIndex(sortedKeys: readonly string[], isAtOrPast: (sk: string) => boolean): number {
  let low = 0;
  let high = sortedKeys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (isAtOrPast(sortedKeys[middle]!)) high = middle;
    else low = middle + 1;
  }
  return low;
}
