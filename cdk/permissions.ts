import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { HandlerName } from '../functions/routes.js';

/**
 * What a function may do to the table and the bucket, by kind of work. The actions are the
 * ones the adapters' SDK calls need (shared/adapters/): a HeadObject is s3:GetObject, a
 * CopyObject is s3:GetObject on the source and s3:PutObject on the target, a multipart upload
 * is s3:PutObject and s3:AbortMultipartUpload, a TransactWrite is the item actions it holds.
 */
export type Access = 'readMetadata' | 'writeMetadata' | 'readBlobs' | 'writeBlobs' | 'deleteBlobs' | 'listBlobs' | 'presignUploads' | 'readUploads';

/** The functions besides the route handlers. */
export type BackgroundFunction = 'scheduledSweep' | 'publishEvents' | 'reclaimStorage' | 'runJobs' | 'uploadLanded';

const readMetadata = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'];
const writeMetadata = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:BatchWriteItem'];

/** A store's full data path: every request handler that reads and writes trees. */
const dataPath: readonly Access[] = ['readMetadata', 'writeMetadata', 'readBlobs', 'writeBlobs', 'deleteBlobs'];

/**
 * Each function's grants. Writes delete the fresh objects of a refused request at once, so the
 * data-path functions may delete; only the sweeps list and abort what crashes leave behind.
 * The scheduled sweep reads no file contents; the upload function only signs PUT URLs.
 */
export const accessByFunction: Readonly<Record<HandlerName | BackgroundFunction, readonly Access[]>> = {
  images: dataPath,
  containers: dataPath,
  files: dataPath,
  volumes: dataPath,
  docker: dataPath,
  uploads: ['writeMetadata', 'presignUploads'],
  system: ['readMetadata', 'writeMetadata', 'deleteBlobs', 'listBlobs'],
  scheduledSweep: ['readMetadata', 'writeMetadata', 'deleteBlobs', 'listBlobs'],
  // Reads the table's stream (granted by its event source) and puts events on the bus; nothing else.
  publishEvents: [],
  // From the stream: drops removed namespaces and unused layers, as the sweep does, without reading contents.
  reclaimStorage: ['readMetadata', 'writeMetadata', 'deleteBlobs', 'listBlobs'],
  // An asynchronous load is the images function's work, without a request in front of it.
  runJobs: dataPath,
  // Sizes the landed upload (a HeadObject) and records it; reads no other object.
  uploadLanded: ['readMetadata', 'writeMetadata', 'readUploads'],
};

/** Every blob key starts with `t/<tenant hash>/` (shared/keys.ts); nothing else in the bucket is the functions'. */
export const TENANT_BLOBS = 't/*';
const UPLOADS = `${TENANT_BLOBS}/uploads/*`;

/** Adds the statements for `access` to a function's role: named actions only, never `*`. */
export function grantAccess(role: iam.IRole, table: dynamodb.ITable, bucket: s3.IBucket, access: readonly Access[]): void {
  const allow = (actions: string[], resources: string[]) => role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources }));
  const actions = (wanted: Access, list: string[]) => (access.includes(wanted) ? list : []);

  const tableActions = [...actions('readMetadata', readMetadata), ...actions('writeMetadata', writeMetadata)];
  if (tableActions.length) allow(tableActions, [table.tableArn]);

  const objectActions = [
    ...actions('readBlobs', ['s3:GetObject']),
    ...actions('writeBlobs', ['s3:PutObject', 's3:AbortMultipartUpload']),
    ...actions('deleteBlobs', ['s3:DeleteObject']),
    ...actions('listBlobs', ['s3:AbortMultipartUpload']),
  ];
  if (objectActions.length) allow([...new Set(objectActions)], [bucket.arnForObjects(TENANT_BLOBS)]);
  if (access.includes('presignUploads')) allow(['s3:PutObject'], [bucket.arnForObjects(UPLOADS)]);
  if (access.includes('readUploads')) allow(['s3:GetObject'], [bucket.arnForObjects(UPLOADS)]);
  // Without s3:ListBucket, S3 answers a HEAD or GET of a missing key 403, not 404, and the
  // domain could not tell "not there yet" from "forbidden". The condition-free grant is needed
  // for that: a HEAD carries no s3:prefix to match.
  const bucketActions = [
    ...(access.includes('readBlobs') || access.includes('listBlobs') || access.includes('readUploads') ? ['s3:ListBucket'] : []),
    ...actions('listBlobs', ['s3:ListBucketMultipartUploads']),
  ];
  if (bucketActions.length) allow(bucketActions, [bucket.bucketArn]);
}
