/**
 * The metadata port: a small key-value store with sorted partitions and multi-item transactions,
 * in the spirit of lakeFS's kv interface. DynamoDB implements it for the cloud; the engine builds
 * every key (always tenant-scoped) in shared/keys.ts and nothing else knows the key layout.
 */

/** An item address: partition key and sort key. */
export interface ItemKey {
  readonly pk: string;
  readonly sk: string;
}

/** Stored attributes. Values are JSON-like (string, number, boolean, null, arrays, plain objects). */
export type Attributes = Record<string, unknown>;

export interface Item extends ItemKey {
  readonly attrs: Attributes;
}

/** A precondition on the current item. All conditions of one op must hold. */
export type Condition =
  | { readonly kind: 'absent' }
  | { readonly kind: 'present' }
  /** The attribute equals the value (an absent attribute equals nothing). */
  | { readonly kind: 'equals'; readonly field: string; readonly value: string | number | boolean }
  /** The numeric attribute is at least the value. */
  | { readonly kind: 'atLeast'; readonly field: string; readonly value: number }
  /** The item lacks the attribute (a missing item lacks every attribute). */
  | { readonly kind: 'lacks'; readonly field: string };

export type WriteOp =
  /** Replace (or create) the whole item. */
  | { readonly op: 'put'; readonly item: Item; readonly conditions?: readonly Condition[] }
  | { readonly op: 'delete'; readonly key: ItemKey; readonly conditions?: readonly Condition[] }
  /**
   * Update in place: `add` increments numeric attributes (creating them at 0), `set` overwrites
   * attributes, `remove` drops them. Creates the item if absent unless a condition forbids it.
   */
  | {
      readonly op: 'update';
      readonly key: ItemKey;
      readonly add?: Readonly<Record<string, number>>;
      readonly set?: Attributes;
      readonly remove?: readonly string[];
      readonly conditions?: readonly Condition[];
    }
  /** Only a check: the transaction fails unless the conditions hold. */
  | { readonly op: 'check'; readonly key: ItemKey; readonly conditions: readonly Condition[] };

export interface QueryOptions {
  /** Return only items whose sort key starts with this. */
  readonly prefix?: string;
  /** Exclusive start: return only sort keys greater than this. */
  readonly after?: string;
  /** Most items to return; the store may return fewer and a cursor. Default 1000. */
  readonly limit?: number;
}

export interface QueryPage {
  /** Items in ascending sort-key order. */
  readonly items: Item[];
  /** The last sort key returned when more may follow; pass it as `after`. */
  readonly last?: string;
}

/** The maximum number of ops in one transaction (DynamoDB's limit). */
export const MAX_TRANSACTION_OPS = 100;

export interface MetadataStore {
  /** One item or undefined. Never throws a domain error. */
  get(key: ItemKey): Promise<Item | undefined>;

  /**
   * Many items in as few round trips as the backend allows (one for up to 100 keys on DynamoDB).
   * Missing items are simply absent from the result map, keyed by `${pk}\u0000${sk}`.
   * Never throws a domain error.
   */
  getMany(keys: readonly ItemKey[]): Promise<Map<string, Item>>;

  /** One page of a partition in sort-key order. Never throws a domain error. */
  query(pk: string, options?: QueryOptions): Promise<QueryPage>;

  /** The item with the greatest sort key in a partition, or undefined when it is empty. Never throws a domain error. */
  last(pk: string): Promise<Item | undefined>;

  /**
   * All ops or none (at most MAX_TRANSACTION_OPS, no two on the same item).
   * Throws TransactionConditionError (a PreconditionFailedError) whose `failedIndexes` lists the ops whose conditions failed.
   * Throws ConcurrentChangeError (a ConflictError) when a concurrent transaction touched the same items (safe to retry).
   */
  transact(ops: readonly WriteOp[]): Promise<void>;

  /**
   * Many unconditional puts and deletes, not atomic as a whole (bulk index builds, sweeps).
   * Never throws a domain error.
   */
  writeMany(ops: readonly (Extract<WriteOp, { op: 'put' }> | Extract<WriteOp, { op: 'delete' }>)[]): Promise<void>;
}

/** The map key getMany uses for an item. */
export function itemId(key: ItemKey): string {
  return `${key.pk}\u0000${key.sk}`;
}

/**
 * DynamoDB's rules for a transaction, which every adapter enforces the same way before touching
 * anything, so tests on the in-memory store fail where DynamoDB would.
 */
export function checkTransaction(ops: readonly WriteOp[]): void {
  if (ops.length > MAX_TRANSACTION_OPS) throw new RangeError(`a transaction takes at most ${MAX_TRANSACTION_OPS} ops, got ${ops.length}`);
  const ids = new Set(ops.map((op) => itemId(op.op === 'put' ? op.item : op.key)));
  if (ids.size < ops.length) throw new Error('a transaction cannot include two ops on one item');
}

/** The fields an update names: at least one, none twice, never the key (DynamoDB's rules). */
export function checkUpdateFields(op: Extract<WriteOp, { op: 'update' }>): void {
  const fields = [
    ...Object.keys(op.add ?? {}),
    ...Object.entries(op.set ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([field]) => field),
    ...(op.remove ?? []),
  ];
  if (fields.length === 0) throw new Error(`update of ${itemId(op.key)} has nothing to add, set or remove`);
  const seen = new Set<string>();
  for (const field of fields) {
    if (field === 'pk' || field === 'sk') throw new Error(`update cannot change the key attribute ${field}`);
    if (seen.has(field)) throw new Error(`update names the field ${JSON.stringify(field)} more than once`);
    seen.add(field);
  }
}

/** Every item of a partition, page after page (for partitions known to stay small: listings, sweeps). */
export async function queryAll(store: MetadataStore, pk: string): Promise<Item[]> {
  const out: Item[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.query(pk, { after });
    out.push(...page.items);
    if (!page.last) return out;
    after = page.last;
  }
}
