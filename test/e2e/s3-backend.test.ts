import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dockerArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The local server pointed at real S3 (Ceph RGW) and an existing DynamoDB, as a deployment
 * would be: large reads answer 303 to a presigned S3 URL, uploads go straight to S3.
 */
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    STRATA_S3_ENDPOINT: inject('s3Endpoint'),
    STRATA_S3_ACCESS_KEY: inject('s3AccessKey'),
    STRATA_S3_SECRET_KEY: inject('s3SecretKey'),
    STRATA_BUCKET: `e2e-${randomUUID().slice(0, 8)}`,
    STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'),
    STRATA_TABLE: `e2e-${randomUUID().slice(0, 8)}`,
    STRATA_INLINE_LIMIT: String(64 * 1024),
  });
});
afterAll(async () => server?.stop());

const url = (path: string) => server.url + path;

describe('on S3 and DynamoDB', () => {
  it('loads, reads a large lower file through a presigned S3 URL, and adopts an upload', async () => {
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i % 253;
    const { archive } = await dockerArchive(
      [
        [
          { path: 'big.bin', content: big },
          { path: 'small', content: 'tiny' },
        ],
      ],
      { tags: ['s3:1'] },
    );
    expect((await fetch(url('/v1/images/load'), { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
    const created = await fetch(url('/v1/containers'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ image: 's3:1', name: 'c' }) });
    expect(created.status).toBe(201);

    expect(await (await fetch(url('/v1/containers/c/fs/small'))).text()).toBe('tiny');
    const redirect = await fetch(url('/v1/containers/c/fs/big.bin'), { redirect: 'manual', headers: { range: 'bytes=1000-200999' } });
    expect(redirect.status).toBe(303);
    const location = redirect.headers.get('location')!;
    expect(location.startsWith(inject('s3Endpoint'))).toBe(true);
    const bytes = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(bytes.equals(big.subarray(1000, 201000))).toBe(true);

    const upload = (await (await fetch(url('/v1/uploads'), { method: 'POST' })).json()) as { id: string; url: string };
    expect((await fetch(upload.url, { method: 'PUT', body: Buffer.alloc(100 * 1024, 9) })).status).toBe(200);
    const adopted = await fetch(url(`/v1/containers/c/fs/uploaded?upload=${upload.id}`), { method: 'PUT' });
    expect(((await adopted.json()) as { size: number }).size).toBe(100 * 1024);

    await fetch(url('/v1/containers/c/fs/big.bin?offset=5'), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: 'HELLO' });
    const head = await fetch(url('/v1/containers/c/fs/big.bin'), { headers: { range: 'bytes=0-11' } });
    expect(
      Buffer.from(await head.arrayBuffer())
        .subarray(5, 10)
        .toString(),
    ).toBe('HELLO');

    const exported = await fetch(url('/v1/containers/c/export'), { redirect: 'manual' });
    expect(exported.status).toBe(303);
    const tar = Buffer.from(await (await fetch(exported.headers.get('location')!)).arrayBuffer());
    expect(tar.length).toBeGreaterThan(400 * 1024);
  });
});
