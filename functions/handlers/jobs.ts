import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { keys } from '../../shared/keys.js';
import { cloudServices, type Services } from '../composition.js';

/**
 * Runs the jobs the table's stream shows queued in a tenant's jobs partition (a load, save,
 * export or commit), up to the function's 15 minutes. Records are handled one by one with
 * Powertools Batch; a job that already ran is skipped, so a retried batch runs nothing twice.
 */
export function runJobsStream(services: () => Services) {
  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  const run = async (record: DynamoDBRecord): Promise<void> => {
    const pk = record.dynamodb?.Keys?.pk?.S;
    const sk = record.dynamodb?.Keys?.sk?.S;
    const tenant = pk === undefined ? undefined : keys.jobsTenant(pk);
    // Queued: written so (an INSERT), or a load whose upload just landed (a MODIFY).
    const queued = record.dynamodb?.NewImage?.status?.S === 'queued' && record.dynamodb?.OldImage?.status?.S !== 'queued';
    if (!queued || !tenant || sk === undefined) return;
    await services().engine.jobs.run(tenant, sk);
  };
  return (event: DynamoDBStreamEvent, context: Context): Promise<DynamoDBBatchResponse> =>
    processPartialResponse(event, run, processor, { context, processInParallel: false, throwOnFullBatchFailure: false });
}

export const handler = runJobsStream(cloudServices);
