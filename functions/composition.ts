import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoMetadataStore, dynamoDocumentClient } from '../shared/adapters/dynamo-metadata-store.js';
import { FsBlobStore, type Presigner } from '../shared/adapters/fs-blob-store.js';
import { EventBridgeEventBus } from '../shared/adapters/eventbridge-event-bus.js';
import { S3BlobStore, s3ClientFor } from '../shared/adapters/s3-blob-store.js';
import { cloudConfig, type Config } from '../shared/config.js';
import { Engine } from '../shared/engine.js';
import type { BlobStore } from '../shared/ports/blob-store.js';
import type { EventBus } from '../shared/ports/event-bus.js';
import type { MetadataStore } from '../shared/ports/metadata-store.js';
import { cancellable } from './http/cancellation.js';
import { countingCalls, type StoreCalls } from './http/store-calls.js';
import { tracer } from './http/tracing.js';

/** Everything a handler needs, wired once per process (a warm Lambda reuses it). */
export interface Services {
  readonly config: Config;
  readonly engine: Engine;
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  /** True where bodies of any size may stream back; false keeps Lambda's limit (the local server keeps it too, for parity). */
  readonly streamsBodies: boolean;
  /**
   * True where a response of any size can stream (the local server). Only answers to clients
   * that cannot follow a 303 (the docker CLI) use it; elsewhere they are capped at the inline limit.
   */
  readonly canStream?: boolean;
  /** The storage calls of the request in flight, where they are counted for metrics (deployed functions). */
  readonly calls?: StoreCalls;
}

export interface Clients {
  readonly dynamo?: DynamoDBDocumentClient;
  readonly s3?: S3Client;
  /** Signs URLs for the local blob folder; required when config.blobs is a folder. */
  readonly presigner?: Presigner;
}

export interface Runtime {
  readonly streamsBodies?: boolean;
  readonly canStream?: boolean;
  readonly countCalls?: boolean;
}

/** The composition root: the one place adapters meet the engine. Clients can be injected (tests). */
export function compose(config: Config, clients: Clients = {}, runtime: Runtime = {}): Services {
  const dynamo = clients.dynamo ?? dynamoDocumentClient({ endpoint: config.dynamoEndpoint, region: config.region });
  const meta = new DynamoMetadataStore(dynamo, config.tableName);
  let blobs: BlobStore;
  if (config.blobs.kind === 's3') {
    const s3 = clients.s3 ?? s3ClientFor({ endpoint: config.blobs.endpoint, region: config.region, accessKeyId: config.blobs.accessKeyId, secretAccessKey: config.blobs.secretAccessKey });
    blobs = new S3BlobStore(s3, config.blobs.bucket);
  } else {
    if (!clients.presigner) throw new Error('a folder blob store needs a presigner');
    blobs = new FsBlobStore(config.blobs.root, clients.presigner);
  }
  return servicesOver(config, meta, blobs, runtime);
}

/** The services over two stores (any adapters: tests give in-process ones), wrapped as every request needs. */
export function servicesOver(config: Config, rawMeta: MetadataStore, rawBlobs: BlobStore, runtime: Runtime = {}): Services {
  // A request answered at its deadline stops its storage work; only cleanup still starts.
  let meta = cancellable(rawMeta, new Set());
  let blobs = cancellable(rawBlobs, BLOB_CLEANUP);
  const calls: StoreCalls | undefined = runtime.countCalls ? { metadata: 0, blobs: 0 } : undefined;
  if (calls) {
    meta = countingCalls(meta, calls, 'metadata');
    blobs = countingCalls(blobs, calls, 'blobs');
  }
  return { config, engine: new Engine(meta, blobs, { maxFileBytes: config.maxFileBytes }), meta, blobs, streamsBodies: runtime.streamsBodies ?? false, canStream: runtime.canStream ?? false, calls };
}

/** Blob calls that only remove what a request wrote, so they still run once it is cancelled. */
const BLOB_CLEANUP: ReadonlySet<string> = new Set(['delete', 'abortIncomplete', 'presign']);

let cloud: Services | undefined;

/** Services of a Lambda function, built from its environment on first use; its SDK calls are traced. */
export function cloudServices(): Services {
  if (cloud) return cloud;
  const config = cloudConfig();
  const dynamo = tracer.captureAWSv3Client(dynamoDocumentClient({ endpoint: config.dynamoEndpoint, region: config.region }));
  const s3 =
    config.blobs.kind === 's3'
      ? tracer.captureAWSv3Client(s3ClientFor({ endpoint: config.blobs.endpoint, region: config.region, accessKeyId: config.blobs.accessKeyId, secretAccessKey: config.blobs.secretAccessKey }))
      : undefined;
  return (cloud = compose(config, { dynamo, s3 }, { countCalls: true }));
}

let bridge: { client: EventBridgeClient; busName: string } | undefined;
let bus: EventBus | undefined;

/** The EventBridge client and bus of a function the construct gave STRATA_EVENT_BUS, built on first use. */
export function cloudEventBridge(): { client: EventBridgeClient; busName: string } {
  if (bridge) return bridge;
  const config = cloudConfig();
  if (!config.eventBusName) throw new Error('STRATA_EVENT_BUS must be set');
  return (bridge = { client: tracer.captureAWSv3Client(new EventBridgeClient({ region: config.region, endpoint: config.eventsEndpoint })), busName: config.eventBusName });
}

/** The stream publisher's bus, on that client. */
export function cloudEventBus(): EventBus {
  const { client, busName } = cloudEventBridge();
  return (bus ??= new EventBridgeEventBus(client, busName));
}
