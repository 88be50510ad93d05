/**
 * The one place that reads the environment. Everything else receives a Config (or the clients
 * built from it by the composition root), so adapters and handlers stay testable.
 */
export interface Config {
  /** DynamoDB table holding all metadata. */
  readonly tableName: string;
  /** Where blobs go: an S3 bucket, or a local folder (the embedded default on one machine). */
  readonly blobs:
    | { readonly kind: 's3'; readonly bucket: string; readonly endpoint?: string; readonly accessKeyId?: string; readonly secretAccessKey?: string }
    | { readonly kind: 'fs'; readonly root: string };
  readonly region: string;
  /** DynamoDB endpoint override (DynamoDB Local). */
  readonly dynamoEndpoint?: string;
  /** Bodies up to this size travel inline; larger reads answer 303 to a presigned URL. 4 MiB, because base64 adds a third and Lambda stops at 6 MB. */
  readonly inlineBodyLimit: number;
  /** Lifetime of presigned URLs handed to clients. */
  readonly presignSeconds: number;
  /** Largest file a tree may hold (sizes, offsets, write ends). */
  readonly maxFileBytes: number;
  /** The JWT claim that names the tenant in the cloud. */
  readonly tenantClaim: string;
  /** Log level for the structured logger. */
  readonly logLevel: string;
  /** STRATA_SWEEP_GRACE_MS: layers and objects younger than this are spared by reclaiming (a request in flight may use them). */
  readonly sweepGraceMs: number;
  /** STRATA_EVENT_BUS: the EventBridge bus the stream publisher sends to (cloud only). */
  readonly eventBusName?: string;
  /** STRATA_EVENTS_ENDPOINT: EventBridge endpoint override (tests). */
  readonly eventsEndpoint?: string;
}

export interface LocalConfig extends Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** JSON file mapping bearer tokens to tenants; without it the server is single-tenant on loopback. */
  readonly tokensFile?: string;
  /** STRATA_WEBHOOKS_FILE: JSON `{"webhooks": [{"url", "secret", "tenant"}]}`; the local server POSTs every event to each. */
  readonly webhooksFile?: string;
  /** Base URL the server's own presigned links use; empty means the URL it listens on. */
  readonly publicUrl: string;
  /** Largest request body the local server takes inline; larger ones go through /v1/uploads. */
  /** Largest inline body of a /v1 request on the local server. */
  readonly maxBodyBytes: number;
  /** Largest inline body of a Docker Engine API request (`docker load`) on the local server. */
  readonly maxDockerBodyBytes: number;
  /** Each request's deadline on the local server. */
  readonly requestTimeoutMs: number;
  /** STRATA_SWEEP_INTERVAL_MS: how often the local server sweeps every tenant, as the cloud's schedule does; 0 never. */
  readonly sweepIntervalMs: number;
  /** STRATA_EXPIRY_INTERVAL_MS: how often the local server removes expired containers and volumes (deployed, DynamoDB's TTL does); 0 never. */
  readonly expiryIntervalMs: number;
  /** Start DynamoDB Local unless an endpoint was given. */
  readonly startDynamoLocal: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

function int(env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}, not ${JSON.stringify(raw)}`);
  return value;
}

/** Configuration of a Lambda function, from the variables the CDK construct sets. */
export function cloudConfig(env: Env = process.env): Config {
  const tableName = env.STRATA_TABLE;
  const bucket = env.STRATA_BUCKET;
  if (!tableName || !bucket) throw new Error('STRATA_TABLE and STRATA_BUCKET must be set');
  return {
    tableName,
    blobs: { kind: 's3', bucket, endpoint: env.STRATA_S3_ENDPOINT, accessKeyId: env.STRATA_S3_ACCESS_KEY, secretAccessKey: env.STRATA_S3_SECRET_KEY },
    region: env.AWS_REGION ?? 'us-east-1',
    dynamoEndpoint: env.STRATA_DYNAMO_ENDPOINT,
    inlineBodyLimit: int(env, 'STRATA_INLINE_LIMIT', 4 * 1024 * 1024),
    presignSeconds: int(env, 'STRATA_PRESIGN_SECONDS', 900),
    maxFileBytes: int(env, 'STRATA_MAX_FILE_BYTES', 1024 ** 4),
    tenantClaim: env.STRATA_TENANT_CLAIM ?? 'tenant',
    logLevel: env.STRATA_LOG_LEVEL ?? 'INFO',
    sweepGraceMs: int(env, 'STRATA_SWEEP_GRACE_MS', 15 * 60_000, 0),
    eventBusName: env.STRATA_EVENT_BUS || undefined,
    eventsEndpoint: env.STRATA_EVENTS_ENDPOINT || undefined,
  };
}

/** Configuration of the local server (`npm start`). */
export function localConfig(env: Env = process.env): LocalConfig {
  // PORT=0 picks a free port (the URL printed at start says which).
  const port = int(env, 'PORT', 8080, 0);
  const host = env.STRATA_HOST ?? '127.0.0.1';
  const dataDir = env.STRATA_DATA_DIR ?? '.strata';
  const s3Endpoint = env.STRATA_S3_ENDPOINT;
  return {
    tableName: env.STRATA_TABLE ?? 'strata',
    blobs:
      s3Endpoint || env.STRATA_BUCKET
        ? { kind: 's3', bucket: env.STRATA_BUCKET ?? 'strata', endpoint: s3Endpoint, accessKeyId: env.STRATA_S3_ACCESS_KEY, secretAccessKey: env.STRATA_S3_SECRET_KEY }
        : { kind: 'fs', root: `${dataDir}/blobs` },
    region: env.AWS_REGION ?? 'us-east-1',
    dynamoEndpoint: env.STRATA_DYNAMO_ENDPOINT,
    inlineBodyLimit: int(env, 'STRATA_INLINE_LIMIT', 4 * 1024 * 1024),
    presignSeconds: int(env, 'STRATA_PRESIGN_SECONDS', 900),
    maxFileBytes: int(env, 'STRATA_MAX_FILE_BYTES', 1024 ** 4),
    tenantClaim: 'tenant',
    logLevel: env.STRATA_LOG_LEVEL ?? 'INFO',
    sweepGraceMs: int(env, 'STRATA_SWEEP_GRACE_MS', 15 * 60_000, 0),
    port,
    host,
    dataDir,
    tokensFile: env.STRATA_TOKENS_FILE || undefined,
    webhooksFile: env.STRATA_WEBHOOKS_FILE || undefined,
    publicUrl: env.STRATA_PUBLIC_URL ?? '',
    // The cloud's limit (Lambda takes about 6 MB of event), so a client that works here works there.
    maxBodyBytes: int(env, 'STRATA_MAX_BODY_BYTES', 6 * 1000 * 1000),
    // The docker CLI cannot use uploads, so `docker load` keeps a larger inline limit here.
    maxDockerBodyBytes: int(env, 'STRATA_MAX_DOCKER_BODY_BYTES', 64 * 1024 * 1024),
    requestTimeoutMs: int(env, 'STRATA_REQUEST_TIMEOUT_MS', 15 * 60_000),
    sweepIntervalMs: int(env, 'STRATA_SWEEP_INTERVAL_MS', 3600_000, 0),
    expiryIntervalMs: int(env, 'STRATA_EXPIRY_INTERVAL_MS', 60_000, 0),
    startDynamoLocal: !env.STRATA_DYNAMO_ENDPOINT,
  };
}
