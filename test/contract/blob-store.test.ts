/**
 * Runs the BlobStore contract against the local-folder store and against S3 on Ceph RGW, then
 * injects the S3 failures that a healthy local server does not produce on its own.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, inject, it } from 'vitest';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { S3BlobStore, ensureBucket, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import { NotFoundError, StrataError } from '../../shared/errors.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { blobStoreContract } from './blob-store.contract.js';

const MiB = 1024 * 1024;

blobStoreContract('FsBlobStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'strata-blobs-'));
  // The FS store's URLs are whatever its presigner says; here a tiny server that serves the store.
  const server = await serveBlobs(() => store);
  const store: BlobStore = new FsBlobStore(root, async (key, method) => `${server.url}/${encodeURIComponent(key)}?method=${method}`);
  return {
    store,
    cleanup: async () => {
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

blobStoreContract('S3BlobStore on Ceph RGW', async () => {
  const client = rgwClient();
  const bucket = `strata-contract-${randomUUID()}`;
  await ensureBucket(client, bucket);
  return { store: new S3BlobStore(client, bucket), cleanup: async () => client.destroy() };
});

describe('FsBlobStore specifics', () => {
  async function withStore<T>(test: (store: FsBlobStore, root: string) => Promise<T>): Promise<T> {
    const root = await mkdtemp(join(tmpdir(), 'strata-blobs-'));
    try {
      return await test(new FsBlobStore(root, async () => 'unused'), root);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  it('presign returns what the presigner gives for exactly that request', async () => {
    const calls: unknown[][] = [];
    const store = new FsBlobStore('/nonexistent', async (...args) => {
      calls.push(args);
      return 'https://example.test/signed';
    });
    expect(await store.presign('t/a/blob', 'PUT', 300)).toBe('https://example.test/signed');
    expect(calls).toEqual([['t/a/blob', 'PUT', 300]]);
  });

  it.each(['../escape', 't/../../escape', '/absolute', 't/a\0b', 't//double', 't/./dot', ''])('rejects the unsafe key %j with a plain Error', async (key) =>
    withStore(async (store) => {
      const attempt = store.put(key, Buffer.from('x'));
      await expect(attempt).rejects.toThrow('unsafe blob key');
      await expect(attempt).rejects.not.toBeInstanceOf(StrataError);
      await expect(store.get(key)).rejects.toThrow('unsafe blob key');
    }),
  );

  it('leaves no partial file in the folder after a failed put', async () =>
    withStore(async (store, root) => {
      const failing = Readable.from(
        (async function* () {
          yield Buffer.alloc(1000);
          throw new Error('body failed');
        })(),
      );
      await expect(store.put('t/x/blob', failing)).rejects.toThrow('body failed');
      expect(await readdir(join(root, 't/x'))).toEqual([]);
    }));

  it('lists keys in byte order across folders, as S3 does', async () =>
    withStore(async (store) => {
      const keys = ['t/a-c', 't/a/b', 't/a0', 't/z', 't/é']; // '-' < '/' < '0' < 'z' < 'é' in UTF-8
      for (const key of [...keys].reverse()) await store.put(key, Buffer.from(key));
      expect((await store.list('t/')).keys).toEqual(keys);
    }));
});

describe('S3BlobStore failure handling', () => {
  it('aborts the multipart upload and rethrows when a part fails (mocked client)', async () => {
    const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
    const mock = mockClient(client);
    mock.on(HeadObjectCommand).rejects(new S3ServiceException({ name: 'NotFound', $fault: 'client', $metadata: { httpStatusCode: 404 } }));
    mock.on(CreateMultipartUploadCommand).resolves({ UploadId: 'upload-1' });
    mock.on(UploadPartCommand).rejects(new Error('injected part failure'));
    mock.on(AbortMultipartUploadCommand).resolves({});

    const store = new S3BlobStore(client, 'mocked');
    await expect(store.put('t/blob', Readable.from(zeros(20 * MiB)))).rejects.toThrow('injected part failure');
    expect(mock.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
    const aborts = mock.commandCalls(AbortMultipartUploadCommand);
    expect(aborts).toHaveLength(1);
    expect(aborts[0]!.args[0].input).toMatchObject({ Bucket: 'mocked', Key: 't/blob', UploadId: 'upload-1' });
  });

  it('rethrows a failed PutObject unchanged (mocked client)', async () => {
    const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
    const failure = new Error('injected put failure');
    mockClient(client).on(PutObjectCommand).rejects(failure);
    await expect(new S3BlobStore(client, 'mocked').put('t/blob', Buffer.from('x'))).rejects.toBe(failure);
  });

  it('leaves neither an object nor an open upload when the second part fails (RGW)', async () => {
    const client = rgwClient();
    const bucket = `strata-faults-${randomUUID()}`;
    await ensureBucket(client, bucket);
    let parts = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand' && ++parts === 2) throw new Error('injected part failure');
        return next(args);
      },
      { step: 'initialize', name: 'injectPartFailure' },
    );
    const store = new S3BlobStore(client, bucket);
    try {
      await expect(store.put('t/blob', Readable.from(zeros(20 * MiB)))).rejects.toThrow('injected part failure');
      await expect(store.size('t/blob')).rejects.toBeInstanceOf(NotFoundError);
      const { Uploads = [] } = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      expect(Uploads).toEqual([]);
    } finally {
      client.destroy();
    }
  });
});

function rgwClient(): S3Client {
  return s3ClientFor({
    endpoint: inject('s3Endpoint'),
    accessKeyId: inject('s3AccessKey'),
    secretAccessKey: inject('s3SecretKey'),
  });
}

function* zeros(size: number): Generator<Buffer> {
  for (let offset = 0; offset < size; offset += MiB) yield Buffer.alloc(Math.min(MiB, size - offset));
}

/** Serves GET and PUT of `/<encoded key>` from a store, standing in for Strata's blob route. */
async function serveBlobs(store: () => BlobStore): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const key = decodeURIComponent(new URL(request.url!, 'http://localhost').pathname.slice(1));
    const answer =
      request.method === 'PUT'
        ? store()
            .put(key, request)
            .then(() => void response.writeHead(200).end())
        : store()
            .get(key)
            .then((body) => void body.pipe(response.writeHead(200)));
    answer.catch((error: unknown) => {
      response.writeHead(error instanceof StrataError ? error.status : 500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
