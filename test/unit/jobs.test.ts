import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import { readAll } from '../../shared/domain/streams.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { localEngine, loadImage } from '../support/engine.js';

const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let blobs: BlobStore;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, meta, blobs, cleanup } = await localEngine());
  await loadImage(engine, T, [[{ path: 'etc/motd', content: 'hi' }]], ['base:1']);
});
afterEach(async () => cleanup());

describe('jobs', () => {
  it("spread one tenant's jobs over partitions, so the stream runner can run them side by side, and name their tenant", async () => {
    const jobs = await Promise.all(Array.from({ length: 32 }, () => engine.jobs.queue(T, { jobKind: 'save', refs: ['base:1'] })));
    const partitions = new Set(jobs.map((job) => keys.job(T, job.id).pk));
    expect(partitions.size).toBeGreaterThan(4);
    for (const pk of partitions) expect(keys.jobsTenant(pk)).toBe(T);
    expect(keys.jobsTenant('acme#jobs')).toBe(T); // where jobs were kept before
    expect(keys.jobsTenant('acme#events')).toBeUndefined();
  });

  it('run a save to a tar the job keeps, the same bytes a save streams', async () => {
    const job = await engine.jobs.queue(T, { jobKind: 'save', refs: ['base:1'] });
    await engine.jobs.run(T, job.id);
    const done = await engine.jobs.get(T, job.id);
    expect(done).toMatchObject({ status: 'succeeded', result: { archive: { size: expect.any(Number) } } });
    const kept = await readAll(await blobs.get(done.result!.archive!.key));
    expect(kept.equals(await readAll(await engine.images.save(T, ['base:1'])))).toBe(true);
    expect(done.bytesDone).toBe(kept.length);
  });

  it('fail a job whose runner died (its lease ran out), with the interruption as its error', async () => {
    const job = await engine.jobs.queue(T, { jobKind: 'export', container: 'gone' });
    await meta.transact([{ op: 'update', key: keys.job(T, job.id), set: { status: 'running', leaseUntil: Date.now() - 1 } }]);
    expect(await engine.jobs.failAbandoned(T)).toBe(1);
    expect(await engine.jobs.get(T, job.id)).toMatchObject({ status: 'failed', error: { code: 'internal', message: expect.stringContaining('interrupted') } });
    expect(await engine.jobs.failAbandoned(T)).toBe(0);
  });

  it('fail a load whose upload never received its bytes after a day, so nobody polls it forever', async () => {
    let now = Date.now();
    const later = new Engine(meta, blobs, { clock: () => now });
    const upload = await later.uploads.create(T, 'load');
    expect((await later.jobs.get(T, upload.job!)).status).toBe('awaiting-upload');
    now += 25 * 3600_000;
    expect(await later.jobs.failAbandoned(T)).toBe(1);
    expect(await later.jobs.get(T, upload.job!)).toMatchObject({ status: 'failed', error: { code: 'invalid_input', message: expect.stringContaining('never received') } });
    // Its bytes arriving now change nothing: the upload is finalized, the job stays failed.
    await blobs.put(upload.key, Buffer.from('late'));
    await later.uploads.landed(upload.key);
    expect((await later.jobs.get(T, upload.job!)).status).toBe('failed');
  });
});
