import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StrataEvent } from './events.js';
import { ConcurrentChangeError, ConflictError, GoneError, InvalidInputError, TransactionConditionError } from '../errors.js';
import { feedSortKey, keys } from '../keys.js';
import type { Item, MetadataStore, WriteOp } from '../ports/metadata-store.js';

/**
 * A container's or volume's change feed: every change of its tree gets the next sequence number,
 * with no gap and in commit order. The entry is one more item in the change's own transaction,
 * put only if that number is still free: of two changes racing for a number one commits and the
 * other takes the next. A change can only take number n + 1 after n committed (it knew n from
 * its own last change or read it back), so a reader who has read up to n has seen everything
 * up to n, whatever commits later. That is the whole cost: one item per change, plus a Query for
 * the head when this process does not know it yet (or lost a race for it).
 */
export const FEED_KINDS = ['added', 'modified', 'deleted', 'renamed', 'merged'] as const;
export type FeedKind = (typeof FEED_KINDS)[number];

export interface FeedChange {
  readonly kind: FeedKind;
  /** In the tree's own coordinates (a volume's root is `/`). */
  readonly path: string;
  readonly type?: 'file' | 'dir' | 'symlink';
  /** Bytes of a file after the change. */
  readonly size?: number;
  readonly etag?: string;
  /** A rename's old path; a merge's source container. */
  readonly from?: string;
  /** A merge: how many paths it changed. */
  readonly paths?: number;
  /** A volume's feed: the volume's name (for the events its entries make). */
  readonly volume?: string;
}

export interface FeedEntry extends FeedChange {
  readonly seq: number;
  /** Milliseconds since the epoch, taken just before the change's transaction. */
  readonly time: number;
}

export interface FeedPage {
  readonly entries: FeedEntry[];
  /** The cursor to pass as `after` next: the last entry's `seq`, or `after` when there was none. */
  readonly next: number;
}

/** Whose feed: a container by ID (its feed follows it through forks and renames), a volume by uid. */
export const feedOwner = {
  container: (id: string) => `c:${id}`,
  volume: (uid: string) => `v:${uid}`,
};

/** How long entries are kept; the sweep trims older ones, keeping the newest so numbering goes on. */
export const FEED_RETENTION_MS = 7 * 24 * 3600_000;
export const MAX_FEED_PAGE = 1000;
/** The longest a reader may wait for a change in one request (a deployed request stops at 29 s). */
export const MAX_FEED_WAIT_MS = 20_000;
/** Numbers a change may lose to other processes before it answers 409. */
const MAX_ROUNDS = 100;

/**
 * How long a process trusts the head it knows. The sweep trims entries older than the
 * retention down to the newest, so a head known for longer might name a trimmed number whose
 * place a stale guess would then fill out of order; an hour is far inside the 7 days.
 */
const HEAD_TRUSTED_MS = 3600_000;

export class ChangeFeed {
  /** The highest number this process knows is taken, per feed, and since when it knows. */
  private readonly heads = new Map<string, { seq: number; known: number }>();
  /** The commit in progress of each feed in this process: the next waits for it instead of racing it for a number. */
  private readonly turns = new Map<string, Promise<void>>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Commits `ops` in one transaction with `change` as the feed's next entry (the op after them).
   * A number another process took first is taken again, with the rest as it is; any other
   * failure is thrown as the store threw it. Within this process the commits of one feed take
   * turns, so they never lose numbers to each other, while the rest of each change (resolving,
   * uploading) still runs side by side.
   */
  commit(tenant: string, owner: string, ops: readonly WriteOp[], change: FeedChange): Promise<void> {
    return this.inTurn(tenant, owner, async () => {
      for (let round = 1; ; round++) {
        const seq = await this.next(tenant, owner);
        try {
          await this.meta.transact([...ops, this.op(tenant, owner, seq, change)]);
          this.landed(tenant, owner, seq);
          return;
        } catch (error) {
          const failed = error instanceof TransactionConditionError ? error.failedIndexes : [];
          if (failed.length === 1 && failed[0] === ops.length && round < MAX_ROUNDS) {
            this.lost(tenant, owner, seq, round);
            continue;
          }
          if (failed.includes(ops.length) || error instanceof ConcurrentChangeError) this.forget(tenant, owner);
          if (failed.length === 1 && failed[0] === ops.length) throw new ConflictError('too many changes of this tree are committing at once; try again');
          throw error;
        }
      }
    });
  }

  private async inTurn<T>(tenant: string, owner: string, commit: () => Promise<T>): Promise<T> {
    const id = headId(tenant, owner);
    const before = this.turns.get(id);
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    const turn = (before ?? Promise.resolve()).then(() => mine);
    this.turns.set(id, turn);
    await before;
    try {
      return await commit();
    } finally {
      done();
      if (this.turns.get(id) === turn) this.turns.delete(id);
    }
  }

  /** The number the next change of `owner` should try. */
  private async next(tenant: string, owner: string): Promise<number> {
    const id = headId(tenant, owner);
    const known = this.heads.get(id);
    if (known !== undefined && this.clock() - known.known < HEAD_TRUSTED_MS) return known.seq + 1;
    const head = await this.head(tenant, owner);
    this.remember(id, head);
    return head + 1;
  }

  /** The last number taken in the feed (0 for none). */
  async head(tenant: string, owner: string): Promise<number> {
    const last = await this.meta.last(keys.feed(tenant, owner));
    return last ? Number(last.sk) : 0;
  }

  /** The op that records `change` as number `seq`; it fails if the number was taken meanwhile. */
  private op(tenant: string, owner: string, seq: number, change: FeedChange): WriteOp {
    return { op: 'put', item: { ...keys.feedEntry(tenant, owner, seq), attrs: { ...change, time: this.clock() } }, conditions: [{ kind: 'absent' }] };
  }

  /** After a commit: `seq` is taken. */
  private landed(tenant: string, owner: string, seq: number): void {
    const id = headId(tenant, owner);
    const known = this.heads.get(id);
    if (!known || known.seq < seq) this.remember(id, seq, known?.known);
  }

  /**
   * After a change lost number `seq` to another: the next try takes `seq + 1` at once, which is
   * what a race between a few writers needs; after `round` 2 of losing, the head is read afresh
   * (many changes landed since this process last knew it).
   */
  private lost(tenant: string, owner: string, seq: number, round: number): void {
    if (round >= 2) this.forget(tenant, owner);
    else this.landed(tenant, owner, seq);
  }

  /** The head is read afresh next time. */
  private forget(tenant: string, owner: string): void {
    this.heads.delete(headId(tenant, owner));
  }

  /**
   * Entries after `after`, oldest first. Throws GoneError when entries after `after` were
   * already trimmed (the cursor is older than the retention), InvalidInputError for a bad cursor.
   */
  async read(tenant: string, owner: string, options: { after?: number; limit?: number } = {}): Promise<FeedPage> {
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new InvalidInputError('after must be a sequence number (a non-negative integer)');
    const limit = Math.min(Math.max(options.limit ?? MAX_FEED_PAGE, 1), MAX_FEED_PAGE);
    const page = await this.meta.query(keys.feed(tenant, owner), { after: feedSortKey(after), limit });
    const entries = page.items.map(entryOf);
    if (entries.length > 0 && entries[0].seq > after + 1) {
      throw new GoneError(`the feed no longer holds the changes after ${after} (entries are kept ${FEED_RETENTION_MS / 86_400_000} days); read the tree again and follow from ${entries[0].seq - 1}`);
    }
    return { entries, next: entries.at(-1)?.seq ?? after };
  }

  /**
   * Like `read`, but when nothing follows `after` it waits up to `waitMs` for a change, polling
   * with a growing interval (100 ms up to 1 s), and answers as soon as one lands.
   */
  async follow(tenant: string, owner: string, options: { after?: number; limit?: number; waitMs?: number } = {}): Promise<FeedPage> {
    const waitMs = Math.min(Math.max(options.waitMs ?? 0, 0), MAX_FEED_WAIT_MS);
    const until = this.clock() + waitMs;
    for (let interval = 100; ; interval = Math.min(interval * 2, 1000)) {
      const page = await this.read(tenant, owner, options);
      const left = until - this.clock();
      if (page.entries.length > 0 || left <= 0) return page;
      await sleep(Math.min(interval, left));
    }
  }

  /** Drops entries older than the retention, always keeping the newest, so numbering goes on. */
  async trim(tenant: string, owner: string, cutoff = this.clock() - FEED_RETENTION_MS): Promise<number> {
    const pk = keys.feed(tenant, owner);
    const head = await this.meta.last(pk);
    if (!head) return 0;
    const doomed: Item[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.meta.query(pk, { after, limit: 1000 });
      const old = page.items.filter((item) => item.sk !== head.sk && (item.attrs.time as number) < cutoff);
      doomed.push(...old);
      if (!page.last || old.length < page.items.length) break;
      after = page.last;
    }
    await this.meta.writeMany(doomed.map((item) => ({ op: 'delete' as const, key: { pk: item.pk, sk: item.sk } })));
    return doomed.length;
  }

  /** Deletes a removed container's or volume's whole feed. */
  async drop(tenant: string, owner: string): Promise<number> {
    const pk = keys.feed(tenant, owner);
    let dropped = 0;
    for (;;) {
      const page = await this.meta.query(pk, { limit: 1000 });
      if (page.items.length === 0) return dropped;
      await this.meta.writeMany(page.items.map((item) => ({ op: 'delete' as const, key: { pk: item.pk, sk: item.sk } })));
      dropped += page.items.length;
    }
  }

  /** A head read now, or (`since`) learned from a number taken after one read then. */
  private remember(id: string, seq: number, since = this.clock()): void {
    if (this.heads.size > 10_000) this.heads.clear();
    this.heads.set(id, { seq, known: since });
  }
}

/** How many changes one `tree.changed` event carries at most (an EventBridge entry holds 256 KiB). */
export const CHANGES_PER_EVENT = 100;

/**
 * The `tree.changed` events for entries of one feed, in order, at most CHANGES_PER_EVENT each:
 * how the feed reaches EventBridge in batches. An event's id is derived from its feed and its
 * first and last numbers, so the same batch published again has the same id.
 */
export function treeChangedEvents(tenant: string, owner: string, entries: readonly FeedEntry[]): StrataEvent[] {
  const out: StrataEvent[] = [];
  for (let i = 0; i < entries.length; i += CHANGES_PER_EVENT) {
    const batch = entries.slice(i, i + CHANGES_PER_EVENT);
    const first = batch[0].seq;
    const last = batch.at(-1)!.seq;
    const digest = createHash('sha256').update(`${tenant}/${owner}/${first}/${last}`).digest('hex').slice(0, 12);
    const time = batch.at(-1)!.time;
    const tree = owner.startsWith('c:') ? { container: owner.slice(2) } : { volume: batch[0].volume ?? owner.slice(2) };
    out.push({
      id: `${time.toString(36).padStart(9, '0')}-${digest}`,
      type: 'tree.changed',
      tenant,
      time,
      detail: { ...tree, first, last, changes: batch.map(({ volume: _v, ...entry }) => entry) },
    });
  }
  return out;
}

/** A feed item as stored (sort key and attributes) as its entry. */
export function feedEntryOf(sk: string, attrs: Record<string, unknown>): FeedEntry {
  const { time, ...change } = attrs as unknown as FeedChange & { time: number };
  return { seq: Number(sk), time, ...change };
}

function headId(tenant: string, owner: string): string {
  return `${tenant}\u0000${owner}`;
}

function entryOf(item: Item): FeedEntry {
  return feedEntryOf(item.sk, item.attrs);
}
