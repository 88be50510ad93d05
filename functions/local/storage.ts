import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { dynamoDocumentClient, ensureTable } from '../../shared/adapters/dynamo-metadata-store.js';
import { startDynamoLocal, type DynamoLocal } from '../../shared/adapters/dynamo-local-process.js';
import { ensureBucket, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import type { LocalConfig } from '../../shared/config.js';

export interface LocalStorage {
  /** The configuration with the endpoint of the DynamoDB Local it started and an absolute blob folder. */
  readonly effective: LocalConfig;
  readonly dynamo?: DynamoLocal;
  readonly documentClient: DynamoDBDocumentClient;
  readonly s3?: S3Client;
}

/** Brings up the storage of one machine: DynamoDB Local over the data folder (unless an endpoint is set), the table and the bucket. */
export async function openLocalStorage(config: LocalConfig, dataDir: string): Promise<LocalStorage> {
  let dynamo: DynamoLocal | undefined;
  let dynamoEndpoint = config.dynamoEndpoint;
  if (config.startDynamoLocal) {
    await mkdir(resolve(dataDir, 'dynamodb'), { recursive: true });
    dynamo = await startDynamoLocal({ path: resolve(dataDir, 'dynamodb') });
    dynamoEndpoint = dynamo.endpoint;
  }
  try {
    const effective: LocalConfig = {
      ...config,
      dynamoEndpoint,
      blobs: config.blobs.kind === 'fs' ? { ...config.blobs, root: resolve(config.blobs.root) } : config.blobs,
    };
    const documentClient = dynamoDocumentClient({ endpoint: dynamoEndpoint, region: config.region });
    await ensureTable(documentClient as never, config.tableName);
    const s3 = effective.blobs.kind === 's3' ? s3ClientFor({ ...effective.blobs, region: config.region }) : undefined;
    if (s3 && effective.blobs.kind === 's3') await ensureBucket(s3, effective.blobs.bucket);
    return { effective, dynamo, documentClient, s3 };
  } catch (error) {
    await dynamo?.stop();
    throw error;
  }
}
