import { Logger } from '@aws-lambda-powertools/logger';
import type { S3Event } from 'aws-lambda';
import { cloudServices, type Services } from '../composition.js';

/**
 * S3's ObjectCreated notification for upload keys (`*.upload`): finalizes the upload, and for
 * one made with `load: true` queues its load, whose job the table's stream then runs. The local
 * server calls the same handler when a PUT to one of its presigned URLs completes. A repeated
 * notification finds the upload finalized and does nothing; a failure throws, so the
 * asynchronous invocation is retried and then goes to its dead-letter queue.
 */
export function uploadLanded(services: () => Services) {
  const logger = new Logger({ serviceName: 'strata' });
  return async (event: S3Event): Promise<void> => {
    for (const record of event.Records ?? []) {
      // Keys in S3 notifications are URL-encoded, with `+` for spaces.
      const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
      const upload = await services().engine.uploads.landed(key);
      if (upload) logger.info('upload finalized', { upload: upload.id, size: upload.size, job: upload.job });
    }
  };
}

export const handler = uploadLanded(cloudServices);
