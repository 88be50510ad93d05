import { randomUUID } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoMetadataStore, dynamoDocumentClient, ensureTable } from '../../shared/adapters/dynamo-metadata-store.js';
import { ensureBucket, S3BlobStore, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import type { FaultMode } from '../support/fault-injection.js';
import { runPositions, scenarios, type World } from '../support/fault-positions.js';

/**
 * The fault positions of the unit tests, on the real adapters (DynamoDB Local and Ceph RGW):
 * their errors, conditions and cleanup paths are the ones that matter in the cloud. Each run
 * gets a tenant of its own in one table and one bucket. Failing a call and crashing after it are
 * run here; a crash before a call is the same as a failure whose cleanup never runs, which the
 * unit tests cover.
 */
let dynamo: DynamoDBDocumentClient;
let s3: S3Client;
const table = `faults-${randomUUID().slice(0, 8)}`;
const bucket = `faults-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  dynamo = dynamoDocumentClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1' });
  await ensureTable(dynamo as never, table);
  s3 = s3ClientFor({ endpoint: inject('s3Endpoint'), region: 'us-east-1', accessKeyId: inject('s3AccessKey'), secretAccessKey: inject('s3SecretKey') });
  await ensureBucket(s3, bucket);
});
afterAll(() => {
  dynamo?.destroy();
  s3?.destroy();
});

const world = async (): Promise<World> => ({ meta: new DynamoMetadataStore(dynamo, table), blobs: new S3BlobStore(s3, bucket), tenant: `t${randomUUID().replace(/-/g, '').slice(0, 12)}` });
const modes: FaultMode[] = ['fail', 'crash-after'];
const chosen = ['write over a lower file', 'rename of a lower directory', 'commit', 'merge of a fork', 'removal of a container'];

describe('a fault at every storage call, on DynamoDB Local and Ceph RGW', () => {
  for (const scenario of scenarios.filter((s) => chosen.includes(s.name))) {
    it(scenario.name, async () => {
      const report = await runPositions(scenario, world, modes);
      console.log(`${scenario.name} on DynamoDB Local and RGW: ${report.positions} fault positions, ${report.lost} lost writes, ${report.problems} fsck problems`);
      expect(report.positions).toBeGreaterThan(0);
      expect(report.failures).toEqual([]);
    }, 300_000);
  }
});

describe('an archive too big for one DynamoDB transaction, crashed at every call, on DynamoDB Local and Ceph RGW', () => {
  const scenario = scenarios.find((s) => s.name.startsWith('load of an archive too big'))!;
  it('is loaded whole or, after the sweep, not at all', async () => {
    const report = await runPositions(scenario, world, ['crash']);
    console.log(`${scenario.name} on DynamoDB Local and RGW: ${report.positions} crash positions, ${report.lost} lost writes, ${report.problems} fsck problems`);
    expect(report.positions).toBeGreaterThan(10);
    expect(report.failures).toEqual([]);
  }, 300_000);
});
