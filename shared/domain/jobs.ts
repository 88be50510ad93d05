import { randomUUID } from 'node:crypto';
import { NotFoundError, StrataError, TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type MetadataStore } from '../ports/metadata-store.js';
import type { LoadResult } from './archive-load.js';
import type { EventLog } from './events.js';
import type { ImageService } from './images.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** A load that runs outside the request that asked for it, and how far it got. */
export interface JobRecord {
  readonly id: string;
  readonly jobKind: 'load';
  readonly status: JobStatus;
  /** The upload whose bytes are the archive. */
  readonly upload: string;
  readonly blobKey: string;
  readonly created: number;
  readonly updated: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly layersDone: number;
  readonly result?: { readonly images: LoadResult };
  readonly error?: { readonly message: string; readonly code: string };
  /** While running: until when the runner owns it; after that the sweep marks it failed (its runner died). */
  readonly leaseUntil?: number;
}

/** A runner holds a job this long, longer than a job function may run (15 minutes). */
const LEASE_MS = 16 * 60_000;
/** Progress is written at most this often. */
const PROGRESS_EVERY_MS = 1000;

/**
 * Asynchronous loads. Queueing writes the job; the table's stream hands its INSERT to a runner
 * (a Lambda function deployed, the stream pump locally), which claims it, loads the upload with
 * progress written as it goes, and records the outcome and a `job.completed` event in one
 * transaction. A retried runner skips a finished job and takes over one whose lease ran out.
 */
export class Jobs {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly images: ImageService,
    private readonly events: EventLog,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Queues the load of an upload's bytes (the caller checked they arrived). */
  async queueLoad(tenant: string, upload: string, blobKey: string): Promise<JobRecord> {
    const now = this.clock();
    const job: JobRecord = {
      id: randomUUID(),
      jobKind: 'load',
      status: 'queued',
      upload,
      blobKey,
      created: now,
      updated: now,
      bytesDone: 0,
      bytesTotal: await this.blobs.size(blobKey),
      layersDone: 0,
    };
    await this.meta.transact([{ op: 'put', item: { ...keys.job(tenant, job.id), attrs: { ...job } }, conditions: [{ kind: 'absent' }] }]);
    return job;
  }

  /** Throws NotFoundError for an unknown job. */
  async get(tenant: string, id: string): Promise<JobRecord> {
    const item = await this.meta.get(keys.job(tenant, id));
    if (!item) throw new NotFoundError(`no such job: ${id}`);
    return item.attrs as unknown as JobRecord;
  }

  /** Runs a queued job; does nothing for one that is running or finished (a retried stream record). */
  async run(tenant: string, id: string): Promise<void> {
    const job = await this.claim(tenant, id);
    if (!job) return;
    let reported = 0;
    let writing: Promise<unknown> = Promise.resolve();
    const progress = { bytesDone: 0, layersDone: 0 };
    const onProgress = (p: { bytes?: number; layers?: number }) => {
      if (p.bytes !== undefined) progress.bytesDone = p.bytes;
      if (p.layers !== undefined) progress.layersDone = p.layers;
      const now = this.clock();
      if (now - reported < PROGRESS_EVERY_MS) return;
      reported = now;
      const update = { ...progress, updated: now };
      writing = writing.then(() =>
        this.meta.transact([{ op: 'update', key: keys.job(tenant, id), set: update, conditions: [{ kind: 'equals', field: 'status', value: 'running' }] }]).catch(() => undefined),
      );
    };
    let outcome: Pick<JobRecord, 'status' | 'result' | 'error'>;
    try {
      const images = await this.images.load(tenant, await this.blobs.get(job.blobKey), undefined, onProgress);
      outcome = { status: 'succeeded', result: { images } };
    } catch (error) {
      // The job's reader sees what a request would have been answered, never internals.
      outcome = {
        status: 'failed',
        error: error instanceof StrataError ? { message: error.message, code: error.code } : { message: 'the load failed on a storage error; load again', code: 'internal' },
      };
    } finally {
      await writing;
    }
    await this.finish(tenant, job, outcome, progress);
  }

  private async claim(tenant: string, id: string): Promise<JobRecord | undefined> {
    const item = await this.meta.get(keys.job(tenant, id));
    const job = item?.attrs as unknown as JobRecord | undefined;
    if (!job) return undefined;
    const now = this.clock();
    if (job.status !== 'queued') return undefined;
    try {
      await this.meta.transact([
        { op: 'update', key: keys.job(tenant, id), set: { status: 'running', leaseUntil: now + LEASE_MS, updated: now }, conditions: [{ kind: 'equals', field: 'updated', value: job.updated }] },
      ]);
    } catch (error) {
      if (error instanceof TransactionConditionError) return undefined; // Another runner has it.
      throw error;
    }
    return job;
  }

  /** Jobs whose runner died (the lease ran out) end as failed, so nobody waits on them forever. */
  async failAbandoned(tenant: string): Promise<number> {
    const now = this.clock();
    let failed = 0;
    for (const item of await queryAll(this.meta, keys.jobs(tenant))) {
      const job = item.attrs as unknown as JobRecord;
      if (job.status !== 'running' || (job.leaseUntil ?? 0) >= now) continue;
      await this.finish(tenant, job, { status: 'failed', error: { message: 'the load was interrupted; load again', code: 'internal' } }, job).then(
        () => failed++,
        () => undefined,
      );
    }
    return failed;
  }

  private async finish(tenant: string, job: JobRecord, outcome: Pick<JobRecord, 'status' | 'result' | 'error'>, progress: { bytesDone: number; layersDone: number }): Promise<void> {
    const now = this.clock();
    const done = outcome.status === 'succeeded' ? { bytesDone: job.bytesTotal, layersDone: progress.layersDone } : progress;
    await this.meta.transact([
      { op: 'update', key: keys.job(tenant, job.id), set: { ...outcome, ...done, updated: now, leaseUntil: 0 }, conditions: [{ kind: 'equals', field: 'status', value: 'running' }] },
      this.events.op(tenant, 'job.completed', {
        job: job.id,
        kind: job.jobKind,
        status: outcome.status,
        ...(outcome.result ? { images: outcome.result.images } : {}),
        ...(outcome.error ? { error: outcome.error } : {}),
      }),
    ]);
  }
}
