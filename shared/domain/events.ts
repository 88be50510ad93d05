import { randomBytes } from 'node:crypto';
import { keys } from '../keys.js';
import type { MetadataStore, WriteOp } from '../ports/metadata-store.js';

/**
 * What integrators can react to. Each event is an item written in the same transaction as the
 * change it reports (a transactional outbox): a change that committed has its event, a refused
 * one has none, and a crash between the two is impossible. The feed (`GET /v1/events`), the
 * local webhooks and the cloud's EventBridge publisher all read these items, so an event keeps
 * its id however often it is delivered.
 */
export const EVENT_TYPES = [
  'image.loaded',
  'image.tagged',
  'image.untagged',
  'image.removed',
  'container.created',
  'container.renamed',
  'container.committed',
  'container.forked',
  'container.merged',
  'container.removed',
  'volume.created',
  'volume.removed',
  'upload.finalized',
  'job.progress',
  'job.completed',
  'tree.changed',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export interface StrataEvent {
  /** Sortable and unique: the time in base 36, then random hex. Also the feed's cursor. */
  readonly id: string;
  readonly type: EventType;
  readonly tenant: string;
  /** Milliseconds since the epoch. */
  readonly time: number;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** How long events stay in the feed (the table's TTL removes them later). */
export const EVENT_RETENTION_MS = 7 * 24 * 3600_000;

export const MAX_EVENT_PAGE = 1000;

/**
 * Events wait this long before the feed shows them: an id is taken before its transaction
 * commits, so a slower transaction could otherwise land behind a reader's cursor.
 */
export const EVENT_SETTLE_MS = 2000;

let sequence = 0;

/** The time, a per-process sequence (so one process's events keep their order within a millisecond), then random hex. */
export function newEventId(now: number): string {
  sequence = (sequence + 1) % 0x10000;
  return `${now.toString(36).padStart(9, '0')}-${sequence.toString(16).padStart(4, '0')}${randomBytes(4).toString('hex')}`;
}

export class EventLog {
  constructor(
    private readonly meta: MetadataStore,
    private readonly clock: () => number,
  ) {}

  /** The op that records an event; put it in the transaction of the change it reports. */
  op(tenant: string, type: EventType, detail: Record<string, unknown>): WriteOp {
    const time = this.clock();
    const id = newEventId(time);
    return {
      op: 'put',
      item: { ...keys.event(tenant, id), attrs: { type, time, detail, expiresAt: Math.ceil((time + EVENT_RETENTION_MS) / 1000) } },
      conditions: [{ kind: 'absent' }],
    };
  }

  /**
   * Events after `since` (an event id), oldest first, and only those that happened before
   * `before` (ms; a feed passes now - EVENT_SETTLE_MS). `cursor` is the last id, to pass as `since`.
   */
  async list(tenant: string, options: { since?: string; limit?: number; before?: number } = {}): Promise<{ events: StrataEvent[]; cursor?: string }> {
    const limit = Math.min(options.limit ?? MAX_EVENT_PAGE, MAX_EVENT_PAGE);
    const events: StrataEvent[] = [];
    let after = options.since;
    scan: while (events.length < limit) {
      const page = await this.meta.query(keys.events(tenant), { after, limit: limit - events.length });
      for (const item of page.items) {
        const event = eventOf(tenant, item.sk, item.attrs);
        if (options.before !== undefined && event.time >= options.before) break scan;
        events.push(event);
      }
      if (!page.last) break;
      after = page.last;
    }
    return { events, cursor: events.at(-1)?.id ?? options.since };
  }
}

export function eventOf(tenant: string, id: string, attrs: Record<string, unknown>): StrataEvent {
  return { id, type: attrs.type as EventType, tenant, time: attrs.time as number, detail: attrs.detail as Record<string, unknown> };
}
