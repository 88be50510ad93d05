import { createHash } from 'node:crypto';
import { ConflictError, InvalidInputError, StrataError, TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { ItemKey, MetadataStore, WriteOp } from '../ports/metadata-store.js';

/** 422: an Idempotency-Key that an earlier, different request already used. */
export class IdempotencyKeyReusedError extends StrataError {
  readonly status = 422;
  readonly code = 'idempotency_key_reused';
}

/** How long a key is remembered (the table's TTL removes it after). */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/**
 * Retries of a load or commit that carry the same `Idempotency-Key` make one result, not two.
 * The key's record is written in the very transaction that records the result (as the events
 * are), so a crash can never separate "done" from its record, and two copies of one request
 * racing each other end as one: the second transaction fails its condition, and that request
 * answers what the first recorded.
 */
export class Idempotency {
  constructor(
    private readonly meta: MetadataStore,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Checks a header value. Throws InvalidInputError for one that is not 1-255 visible ASCII characters. */
  static checkKey(key: string): string {
    if (!KEY_PATTERN.test(key)) throw new InvalidInputError('Idempotency-Key must be 1-255 visible ASCII characters');
    return key;
  }

  /** What identifies a request under a key: the operation and everything it was given. */
  static fingerprint(...parts: (string | Buffer)[]): string {
    const hash = createHash('sha256');
    for (const part of parts) hash.update(createHash('sha256').update(part).digest());
    return hash.digest('hex');
  }

  /**
   * The result an earlier request under `key` recorded, or undefined if there is none (or it
   * expired). Throws IdempotencyKeyReusedError if that request was a different one, and
   * ConflictError while it is still recording (only a load of several transactions is seen so).
   */
  async recorded<T>(tenant: string, key: string, fingerprint: string): Promise<T | undefined> {
    const item = await this.meta.get(keys.idempotency(tenant, key));
    if (!item) return undefined;
    const { fingerprint: seen, result, state, expiresAt } = item.attrs as { fingerprint: string; result: T; state: 'pending' | 'done'; expiresAt: number };
    if (expiresAt * 1000 <= this.clock()) {
      // Forgotten: the key may be used afresh (unless someone just did).
      await this.meta.transact([{ op: 'delete', key: keys.idempotency(tenant, key), conditions: [{ kind: 'equals', field: 'fingerprint', value: seen }] }]).catch(() => undefined);
      return undefined;
    }
    if (seen !== fingerprint) throw new IdempotencyKeyReusedError(`Idempotency-Key ${JSON.stringify(key)} was used for a different request`);
    if (state === 'pending') throw new ConflictError(`a request with Idempotency-Key ${JSON.stringify(key)} is still running; retry shortly`);
    return result;
  }

  /** The ops that record `result` under the key, for the transaction(s) that record the result itself. */
  ops(tenant: string, key: string, fingerprint: string, result: unknown): IdempotencyOps {
    const itemKey = keys.idempotency(tenant, key);
    const expiresAt = Math.ceil((this.clock() + IDEMPOTENCY_TTL_MS) / 1000);
    const attrs = { fingerprint, result: result as never, expiresAt };
    return {
      key: itemKey,
      fingerprint,
      whole: { op: 'put', item: { ...itemKey, attrs: { ...attrs, state: 'done' } }, conditions: [{ kind: 'absent' }] },
      begin: { op: 'put', item: { ...itemKey, attrs: { ...attrs, state: 'pending' } }, conditions: [{ kind: 'absent' }] },
      finish: {
        op: 'update',
        key: itemKey,
        set: { state: 'done' },
        conditions: [
          { kind: 'equals', field: 'state', value: 'pending' },
          { kind: 'equals', field: 'fingerprint', value: fingerprint },
        ],
      },
    };
  }

  /**
   * Runs `work` (which puts the ops in its recording transactions) unless the key already has a
   * result; if a copy of the request recorded first, answers that copy's result instead.
   */
  async once<T>(tenant: string, key: string, fingerprint: string, work: (recordAlso: (result: T) => IdempotencyOps) => Promise<T>): Promise<{ result: T; replayed: boolean }> {
    const earlier = await this.recorded<T>(tenant, key, fingerprint);
    if (earlier !== undefined) return { result: earlier, replayed: true };
    try {
      return { result: await work((result) => this.ops(tenant, key, fingerprint, result)), replayed: false };
    } catch (error) {
      if (!(error instanceof TransactionConditionError)) throw error;
      const raced = await this.recorded<T>(tenant, key, fingerprint);
      if (raced === undefined) throw error;
      return { result: raced, replayed: true };
    }
  }
}

/**
 * A result recorded in one transaction takes `whole`; one recorded in several takes `begin` in
 * the first (a copy of the request then sees "still running") and `finish` in the last.
 */
export interface IdempotencyOps {
  readonly key: ItemKey;
  readonly fingerprint: string;
  readonly whole: WriteOp;
  readonly begin: WriteOp;
  readonly finish: WriteOp;
}
