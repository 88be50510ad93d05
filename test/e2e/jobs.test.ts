import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHash } from 'node:crypto';
import { multiImageArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * An archive too slow to load within a request goes through an upload and an asynchronous job,
 * as a client of the deployed API would do it past API Gateway's 30 s: here on the local server,
 * whose job runner is the deployed one, fed by DynamoDB Local's stream.
 */
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `jobs-${Date.now()}` });
});
afterAll(async () => server?.stop());

const api = async (method: string, path: string, body?: string) => {
  const response = await fetch(`${server.url}${path}`, { method, body, headers: body ? { 'content-type': 'application/json' } : {} });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
};

/** Uploads bytes through a presigned URL, as a client sends a large body. */
async function upload(bytes: Buffer): Promise<string> {
  const { body } = await api('POST', '/v1/uploads');
  expect((await fetch(body.url, { method: 'PUT', body: new Uint8Array(bytes) })).status).toBe(200);
  return body.id;
}

async function poll(url: string): Promise<any[]> {
  const seen: any[] = [];
  const until = Date.now() + 60_000;
  for (;;) {
    const { body } = await api('GET', url);
    seen.push(body);
    if (body.status === 'succeeded' || body.status === 'failed' || Date.now() > until) return seen;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('an asynchronous load', () => {
  it('answers 202 with a job whose progress grows until its images are there', async () => {
    // Five layers of incompressible-ish bytes, 8 MiB each: a load that takes a moment.
    const layers = Array.from({ length: 5 }, (_, i) => [{ path: `blob${i}`, content: Buffer.from(Array.from({ length: 8 << 20 }, (_, j) => (j * 2654435761 + i) >>> 24)) }]);
    const { archive, images } = await multiImageArchive([{ layers, tags: ['big:1'] }]);
    const id = await upload(archive);

    const queued = await api('POST', `/v1/images/load?upload=${id}&async=true`);
    expect(queued.status).toBe(202);
    expect(queued.headers.get('location')).toBe(`/v1/jobs/${queued.body.id}`);
    expect(queued.body).toMatchObject({ kind: 'load', status: 'queued', upload: id, progress: { bytesDone: 0, bytesTotal: archive.length } });

    const seen = await poll(`/v1/jobs/${queued.body.id}`);
    const last = seen.at(-1);
    expect(last).toMatchObject({
      status: 'succeeded',
      progress: { bytesDone: archive.length, bytesTotal: archive.length, layersDone: 5 },
      result: { images: [{ id: images[0].imageId, tags: ['big:1'] }] },
    });
    // Progress only grows, and the job was seen before it finished.
    const done = seen.map((s) => s.progress.bytesDone);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(seen.some((s) => s.status === 'queued' || s.status === 'running')).toBe(true);
    // Read while it ran: part of the archive done (written as it streams, at most once a second).
    expect(seen.some((s) => s.status === 'running' && s.progress.bytesDone > 0 && s.progress.bytesDone < archive.length)).toBe(true);
    expect((await api('GET', '/v1/images/big:1')).status).toBe(200);

    // Its end is an event too (the feed shows it once settled).
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const { body: feed } = await api('GET', '/v1/events');
    expect(feed.events.filter((e: any) => e.type === 'job.completed')).toEqual([
      expect.objectContaining({ detail: { job: queued.body.id, kind: 'load', status: 'succeeded', images: [{ id: images[0].imageId, tags: ['big:1'] }] } }),
    ]);
  }, 120_000);

  it('fails with the message a synchronous load would give, and leaves no image', async () => {
    const id = await upload(Buffer.from('this is not a tar archive at all, just some words'.repeat(20)));
    const queued = await api('POST', `/v1/images/load?upload=${id}&async=true`);
    const last = (await poll(`/v1/jobs/${queued.body.id}`)).at(-1);
    expect(last.status).toBe('failed');
    expect(last.error).toMatchObject({ code: 'invalid_input', message: expect.any(String) });
    expect((await api('GET', '/v1/images')).body.flatMap((i: any) => i.tags)).toEqual(['big:1']);
  });

  it('refuses an asynchronous load without an upload, and an unknown job', async () => {
    expect((await api('POST', '/v1/images/load?async=true')).body).toMatchObject({ code: 'invalid_input', message: expect.stringContaining('upload') });
    expect((await api('GET', '/v1/jobs/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });
});

describe('an upload that loads itself', () => {
  it('waits for its bytes, then loads them as its job without another call, with events for both', async () => {
    const { archive, images } = await multiImageArchive([{ layers: [[{ path: 'etc/landed', content: 'by notification' }]], tags: ['landed:1'] }]);
    const created = await api('POST', '/v1/uploads', JSON.stringify({ load: true }));
    expect(created.status).toBe(201);
    const job = created.body.job;
    expect(job).toEqual(expect.stringMatching(/^[0-9a-f-]{36}$/));
    expect((await api('GET', `/v1/jobs/${job}`)).body).toMatchObject({ kind: 'load', status: 'awaiting-upload', upload: created.body.id });

    expect((await fetch(created.body.url, { method: 'PUT', body: new Uint8Array(archive) })).status).toBe(200);
    const last = (await poll(`/v1/jobs/${job}`)).at(-1);
    expect(last).toMatchObject({ status: 'succeeded', progress: { bytesTotal: archive.length }, result: { images: [{ id: images[0].imageId, tags: ['landed:1'] }] } });
    expect(await fetch(`${server.url}/v1/images/landed:1/fs/etc/landed`).then((r) => r.text())).toBe('by notification');

    await new Promise((resolve) => setTimeout(resolve, 2100));
    const { body: feed } = await api('GET', '/v1/events');
    expect(feed.events.filter((e: any) => e.type === 'upload.finalized' && e.detail.upload === created.body.id)).toEqual([
      expect.objectContaining({ detail: { upload: created.body.id, size: archive.length, job } }),
    ]);
    expect(feed.events.filter((e: any) => e.type === 'job.completed' && e.detail.job === job)).toHaveLength(1);
  }, 120_000);

  it('an upload without load waits to be named, as before', async () => {
    const created = await api('POST', '/v1/uploads');
    expect(created.body.job).toBeUndefined();
    expect((await api('POST', '/v1/uploads', JSON.stringify({ load: 'yes' }))).status).toBe(400);
  });
});

describe('asynchronous save, export and commit', () => {
  const sha = (bytes: ArrayBuffer) => createHash('sha256').update(Buffer.from(bytes)).digest('hex');

  it('a save as a job links the same tar a synchronous save streams', async () => {
    const queued = await api('GET', '/v1/images/landed:1/save?async=true');
    expect(queued.status).toBe(202);
    expect(queued.body).toMatchObject({ kind: 'save', status: 'queued', images: ['landed:1'] });
    const last = (await poll(`/v1/jobs/${queued.body.id}`)).at(-1);
    expect(last).toMatchObject({ status: 'succeeded', result: { size: expect.any(Number), download: expect.stringMatching(/^http/) } });
    const linked = await (await fetch(last.result.download)).arrayBuffer();
    expect(linked.byteLength).toBe(last.result.size);
    expect(last.progress.bytesDone).toBe(last.result.size);
    const streamed = await (await fetch(`${server.url}/v1/images/landed:1/save`)).arrayBuffer();
    expect(sha(linked)).toBe(sha(streamed));
  }, 120_000);

  it('an export and a commit as jobs give what the synchronous calls give', async () => {
    expect((await api('POST', '/v1/containers', JSON.stringify({ image: 'landed:1', name: 'worker' }))).status).toBe(201);
    expect((await fetch(`${server.url}/v1/containers/worker/fs/work.txt`, { method: 'PUT', body: 'done' })).ok).toBe(true);

    const exported = await api('GET', '/v1/containers/worker/export?async=true');
    expect(exported.body).toMatchObject({ kind: 'export', container: 'worker' });
    const exportJob = (await poll(`/v1/jobs/${exported.body.id}`)).at(-1);
    expect(exportJob.status).toBe('succeeded');
    const linked = await (await fetch(exportJob.result.download)).arrayBuffer();
    expect(sha(linked)).toBe(sha(await (await fetch(`${server.url}/v1/containers/worker/export`)).arrayBuffer()));

    const committed = await api('POST', '/v1/containers/worker/commit?async=true', JSON.stringify({ reference: 'worked:1' }));
    expect(committed.status).toBe(202);
    const commitJob = (await poll(`/v1/jobs/${committed.body.id}`)).at(-1);
    expect(commitJob).toMatchObject({ kind: 'commit', status: 'succeeded', result: { image: { id: expect.stringMatching(/^sha256:/), tags: ['worked:1'] } } });
    expect(await (await fetch(`${server.url}/v1/images/worked:1/fs/work.txt`)).text()).toBe('done');
  }, 120_000);

  it('refuses a job for a missing image or container at once (404), queueing nothing', async () => {
    expect((await api('GET', '/v1/images/nope:1/save?async=true')).status).toBe(404);
    expect((await api('GET', '/v1/containers/nope/export?async=true')).status).toBe(404);
    expect((await api('POST', '/v1/containers/nope/commit?async=true')).status).toBe(404);
  });
});

describe('the inline body limit', () => {
  it('is the cloud’s (about 6 MB) for /v1, so a client that works here works deployed: larger bodies are 413 and go through uploads', async () => {
    const big = new Uint8Array(6_000_001);
    const refused = await fetch(`${server.url}/v1/containers/worker/fs/big`, { method: 'PUT', body: big });
    expect(refused.status).toBe(413);
    expect(await refused.json()).toMatchObject({ code: 'too_large', message: expect.stringContaining('/v1/uploads') });
    expect((await fetch(`${server.url}/v1/containers/worker/fs/big`, { method: 'PUT', body: big.subarray(1) })).ok).toBe(true);
  });
});
