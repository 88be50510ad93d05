import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { Context, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { ImageRecord } from '../../shared/domain/records.js';
import { keys } from '../../shared/keys.js';
import { cloudServices, type Services } from '../composition.js';

/**
 * The table's stream drives reclaiming out of the request path: a removed container's or
 * volume's namespace (its garbage item appears) is dropped at once, a removed image's layers
 * and indexes go as soon as no image uses them, and a container or volume whose expiry item
 * TTL deleted is removed. Each record is handled on its own
 * (Powertools Batch, partial failures reported), and each step is idempotent, so a retried
 * batch is harmless. What this misses (a layer a load touched within the grace period, a crash
 * mid-way) the scheduled sweep still takes.
 */
export function reclaimStream(services: () => Services) {
  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  const reclaim = async (record: DynamoDBRecord): Promise<void> => {
    const change = record.dynamodb;
    const pk = change?.Keys?.pk?.S;
    const sk = change?.Keys?.sk?.S;
    if (pk === undefined || sk === undefined) return;
    const { engine, config } = services();
    const garbageTenant = keys.garbageTenant(pk);
    if (record.eventName === 'INSERT' && garbageTenant) {
      await engine.sweeper.reclaimGarbage(garbageTenant, sk);
      return;
    }
    const imagesTenant = keys.imagesTenant(pk);
    if (record.eventName === 'REMOVE' && imagesTenant && change?.OldImage) {
      const removed = unmarshall(change.OldImage as Record<string, AttributeValue>) as unknown as ImageRecord;
      await engine.sweeper.reclaimImageParts(imagesTenant, removed, { graceMs: config.sweepGraceMs });
      return;
    }
    // TTL deleted an expiry item: its container or volume goes (or gets its item back, if a write pushed its expiry later).
    const expiriesTenant = keys.expiriesTenant(pk);
    if (record.eventName === 'REMOVE' && expiriesTenant && change?.OldImage) {
      const expired = unmarshall(change.OldImage as Record<string, AttributeValue>);
      await engine.expirations.expire(expiriesTenant, sk, expired.name as string);
    }
  };
  return (event: DynamoDBStreamEvent, context: Context): Promise<DynamoDBBatchResponse> =>
    processPartialResponse(event, reclaim, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
}

export const handler = reclaimStream(cloudServices);
