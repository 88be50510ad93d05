import { Logger } from '@aws-lambda-powertools/logger';
import type { EventBridgeEvent } from 'aws-lambda';
import { cloudServices, type Services } from '../composition.js';

/** S3's "Object Created" event as EventBridge delivers it (the fields read here). */
export type ObjectCreatedEvent = EventBridgeEvent<'Object Created', { bucket: { name: string }; object: { key: string; size?: number } }>;

/**
 * An upload's bytes landed (S3's Object Created event, for keys ending in `.upload`, through
 * EventBridge): finalizes the upload, and for one made with `load: true` queues its load, which
 * the table's stream then runs. The local server calls the same handler when a PUT to one of
 * its presigned URLs completes. A repeated event finds the upload finalized and does nothing;
 * a failure throws, so EventBridge retries it and then parks it in the dead-letter queue.
 */
export function uploadLanded(services: () => Services) {
  const logger = new Logger({ serviceName: 'strata' });
  return async (event: ObjectCreatedEvent): Promise<void> => {
    const upload = await services().engine.uploads.landed(event.detail.object.key);
    if (upload) logger.info('upload finalized', { upload: upload.id, size: upload.size, job: upload.job });
  };
}

export const handler = uploadLanded(cloudServices);
