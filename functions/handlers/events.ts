import { Logger } from '@aws-lambda-powertools/logger';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { eventOf, type StrataEvent } from '../../shared/domain/events.js';
import { CHANGES_PER_EVENT, type FeedEntry, feedEntryOf, treeChangedEvents } from '../../shared/domain/change-feed.js';
import { keys } from '../../shared/keys.js';
import type { EventBus } from '../../shared/ports/event-bus.js';
import { cloudEventBus } from '../composition.js';

/**
 * The table's stream to the bus: each event item the outbox wrote (shared/domain/events.ts),
 * and each container's and volume's change-feed entries in batches, are published once they
 * are in the table, so a crash between the change and the publish loses nothing. Records
 * arrive in order per partition; on a refused or failed entry the batch reports that event's
 * records and everything after as failed, and Lambda retries from there, so the order holds
 * and a repeat carries the same id. PutEvents takes 10 entries a request, which is why this
 * batches itself rather than handling records one by one (Powertools Batch).
 */
export function publishStream(bus: () => EventBus, logger: Logger = new Logger({ serviceName: 'strata' })) {
  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const pending = publishable(event.Records);
    if (pending.length === 0) return { batchItemFailures: [] };
    let published = 0;
    try {
      published = await bus().publish(pending.map((p) => p.event));
    } catch (error) {
      logger.warn('publishing events failed', { error: (error as Error).name, events: pending.length });
    }
    if (published === pending.length) return { batchItemFailures: [] };
    logger.warn('events left for a retry', { published, left: pending.length - published });
    // Lambda goes on from the earliest record reported, so every record of an unpublished event is.
    const failed = pending.slice(published).flatMap((p) => p.records.map((record) => ({ itemIdentifier: record.dynamodb!.SequenceNumber! })));
    return { batchItemFailures: failed };
  };
}

/**
 * The events a batch of records makes, in the order of their first record: one per outbox
 * item, and for change-feed items one `tree.changed` event per feed (up to 100 changes each),
 * so a burst of file changes costs a few PutEvents entries instead of one per change.
 */
export function publishable(records: readonly DynamoDBRecord[]): { event: StrataEvent; records: DynamoDBRecord[] }[] {
  const units: { event?: StrataEvent; records: DynamoDBRecord[]; feed?: { tenant: string; owner: string; entries: FeedEntry[] } }[] = [];
  const feeds = new Map<string, (typeof units)[number]>();
  for (const record of records) {
    const outboxEvent = eventOfRecord(record);
    if (outboxEvent) {
      units.push({ event: outboxEvent, records: [record] });
      continue;
    }
    const entry = feedEntryOfRecord(record);
    if (!entry) continue;
    const id = `${entry.tenant}/${entry.owner}`;
    let unit = feeds.get(id);
    if (!unit) {
      unit = { records: [], feed: { tenant: entry.tenant, owner: entry.owner, entries: [] } };
      feeds.set(id, unit);
      units.push(unit);
    }
    unit.records.push(record);
    unit.feed!.entries.push(entry.entry);
  }
  return units.flatMap((unit) => {
    if (unit.event) return [{ event: unit.event, records: unit.records }];
    const { tenant, owner, entries } = unit.feed!;
    return treeChangedEvents(tenant, owner, entries).map((event, i) => ({ event, records: unit.records.slice(i * CHANGES_PER_EVENT, (i + 1) * CHANGES_PER_EVENT) }));
  });
}

/** The entry an INSERT of a change-feed item carries, with its feed. */
function feedEntryOfRecord(record: DynamoDBRecord): { tenant: string; owner: string; entry: FeedEntry } | undefined {
  const change = record.dynamodb;
  if (record.eventName !== 'INSERT' || !change?.NewImage || !change.SequenceNumber) return undefined;
  const pk = change.Keys?.pk?.S;
  const sk = change.Keys?.sk?.S;
  const feed = pk === undefined ? undefined : keys.feedOf(pk);
  if (!feed || sk === undefined) return undefined;
  const { pk: _pk, sk: _sk, ...attrs } = unmarshall(change.NewImage as Record<string, AttributeValue>);
  return { ...feed, entry: feedEntryOf(sk, attrs) };
}

/** The event an INSERT of an event item carries; anything else in the stream is not ours to publish. */
export function eventOfRecord(record: DynamoDBRecord): StrataEvent | undefined {
  const change = record.dynamodb;
  if (record.eventName !== 'INSERT' || !change?.NewImage || !change.SequenceNumber) return undefined;
  // Decide by the key before decoding: other items hold attribute types an event never has.
  const pk = change.Keys?.pk?.S;
  const sk = change.Keys?.sk?.S;
  const tenant = pk === undefined ? undefined : keys.eventTenant(pk);
  if (!tenant || sk === undefined) return undefined;
  const { pk: _pk, sk: _sk, ...attrs } = unmarshall(change.NewImage as Record<string, AttributeValue>);
  return eventOf(tenant, sk, attrs);
}

export const handler = publishStream(cloudEventBus);
