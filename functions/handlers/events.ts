import { Logger } from '@aws-lambda-powertools/logger';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { eventOf, type StrataEvent } from '../../shared/domain/events.js';
import { keys } from '../../shared/keys.js';
import type { EventBus } from '../../shared/ports/event-bus.js';
import { cloudEventBus } from '../composition.js';

/**
 * The table's stream to the bus: each event item the outbox wrote (shared/domain/events.ts) is
 * published once it is in the table, so a crash between the change and the publish loses
 * nothing. Records arrive in order per partition; on a refused or failed entry the batch
 * reports that record and everything after it as failed, and Lambda retries from there, so
 * the order holds and a repeat carries the same id. PutEvents takes 10 entries a request,
 * which is why this batches itself rather than handling records one by one (Powertools Batch).
 */
export function publishStream(bus: () => EventBus, logger: Logger = new Logger({ serviceName: 'strata' })) {
  return async (event: DynamoDBStreamEvent): Promise<DynamoDBBatchResponse> => {
    const pending = event.Records.flatMap((record) => {
      const strataEvent = eventOfRecord(record);
      return strataEvent ? [{ record, event: strataEvent }] : [];
    });
    if (pending.length === 0) return { batchItemFailures: [] };
    let published = 0;
    try {
      published = await bus().publish(pending.map((p) => p.event));
    } catch (error) {
      logger.warn('publishing events failed', { error: (error as Error).name, events: pending.length });
    }
    if (published === pending.length) return { batchItemFailures: [] };
    logger.warn('events left for a retry', { published, left: pending.length - published });
    return { batchItemFailures: pending.slice(published).map((p) => ({ itemIdentifier: p.record.dynamodb!.SequenceNumber! })) };
  };
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
