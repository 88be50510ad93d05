import { randomUUID } from 'node:crypto';
import { NotFoundError, StrataError, TransactionConditionError } from '../errors.js';
import { Readable } from 'node:stream';
import { blobKeys, keys } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import type { LoadResult } from './archive-load.js';
import type { EventLog } from './events.js';
import type { ImageService } from './images.js';

export type JobStatus = 'awaiting-upload' | 'queued' | 'running' | 'succeeded' | 'failed';

/** What a job does: load an upload, or make what a request could not in 30 s (a save, an export, a commit). */
export type JobSpec =
  | { readonly jobKind: 'load'; readonly upload: string; readonly blobKey: string }
  | { readonly jobKind: 'save'; readonly refs: readonly string[] }
  | { readonly jobKind: 'export'; readonly container: string }
  | { readonly jobKind: 'commit'; readonly container: string; readonly options: Readonly<Record<string, unknown>> };

export type JobKind = JobSpec['jobKind'];

/** What a finished job made. */
export interface JobResult {
  /** A load's images. */
  readonly images?: LoadResult;
  /** A save's or export's tar, kept for `JOB_RESULT_LIFETIME_MS`. */
  readonly archive?: { readonly key: string; readonly size: number };
  /** A commit's image. */
  readonly image?: { readonly id: string; readonly tags: readonly string[] };
}

/** Work that runs outside the request that asked for it, and how far it got. */
export type JobRecord = JobSpec & {
  readonly id: string;
  readonly status: JobStatus;
  readonly created: number;
  readonly updated: number;
  /** A load: archive bytes read; a save or export: tar bytes written. */
  readonly bytesDone: number;
  /** A load: the upload's size; 0 where it is not known ahead. */
  readonly bytesTotal: number;
  readonly layersDone: number;
  readonly result?: JobResult;
  readonly error?: { readonly message: string; readonly code: string };
  /** While running: until when the runner owns it; after that the sweep marks it failed (its runner died). */
  readonly leaseUntil?: number;
};

/** What the jobs run: the engine's own save, export and commit. */
export interface JobWork {
  save(tenant: string, refs: readonly string[]): Promise<Readable>;
  export(tenant: string, container: string): Promise<Readable>;
  commit(tenant: string, container: string, options: Readonly<Record<string, unknown>>): Promise<{ id: string; tags: string[] }>;
}

/** A runner holds a job this long, longer than a job function may run (15 minutes). */
const LEASE_MS = 16 * 60_000;
/** Progress is written at most this often, and a `job.progress` event at most this often. */
const PROGRESS_EVERY_MS = 1000;
const PROGRESS_EVENT_EVERY_MS = 10_000;
/** A save's or export's tar is kept this long for its download; the sweep drops it after. */
export const JOB_RESULT_LIFETIME_MS = 24 * 3600_000;
/** An upload that never arrives fails its load after this long (the sweep drops its bytes then too). */
const AWAITING_UPLOAD_MS = 24 * 3600_000;

/**
 * Asynchronous work. Queueing writes the job; the table's stream hands it to a runner (a Lambda
 * function deployed, the stream pump locally) when it is queued (an INSERT, or the MODIFY that
 * queues a load once its upload lands), which claims it, runs it with progress written as it
 * goes, and records the outcome and a `job.completed` event in one transaction. A retried
 * runner skips a finished job and takes over one whose lease ran out.
 */
export class Jobs {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly images: ImageService,
    private readonly events: EventLog,
    private readonly clock: () => number = Date.now,
    private readonly work?: JobWork,
  ) {}

  /** Queues the load of an upload's bytes (the caller checked they arrived). */
  async queueLoad(tenant: string, upload: string, blobKey: string): Promise<JobRecord> {
    return this.queue(tenant, { jobKind: 'load', upload, blobKey }, await this.blobs.size(blobKey));
  }

  /** Queues a save, an export or a commit. */
  async queue(tenant: string, spec: JobSpec, bytesTotal = 0): Promise<JobRecord> {
    const job = this.newJob(spec, 'queued', bytesTotal);
    await this.meta.transact([{ op: 'put', item: { ...keys.job(tenant, job.id), attrs: { ...job } }, conditions: [{ kind: 'absent' }] }]);
    return job;
  }

  /** The op that records a load waiting for its upload's bytes (in the upload's own transaction). */
  awaitingLoadOp(tenant: string, id: string, upload: string, blobKey: string): WriteOp {
    const job = { ...this.newJob({ jobKind: 'load', upload, blobKey }, 'awaiting-upload', 0), id };
    return { op: 'put', item: { ...keys.job(tenant, id), attrs: { ...job } }, conditions: [{ kind: 'absent' }] };
  }

  /** The op that queues a waiting load once its upload's `size` bytes landed. */
  queueAwaitingOp(tenant: string, id: string, size: number): WriteOp {
    return { op: 'update', key: keys.job(tenant, id), set: { status: 'queued', bytesTotal: size, updated: this.clock() }, conditions: [{ kind: 'equals', field: 'status', value: 'awaiting-upload' }] };
  }

  private newJob(spec: JobSpec, status: JobStatus, bytesTotal: number): JobRecord {
    const now = this.clock();
    return { ...spec, id: randomUUID(), status, created: now, updated: now, bytesDone: 0, bytesTotal, layersDone: 0 };
  }

  /** Throws NotFoundError for an unknown job. */
  async get(tenant: string, id: string): Promise<JobRecord> {
    // A job from before jobs spread over partitions is still readable where it was.
    const item = (await this.meta.get(keys.job(tenant, id))) ?? (await this.meta.get(keys.legacyJob(tenant, id)));
    if (!item) throw new NotFoundError(`no such job: ${id}`);
    return item.attrs as unknown as JobRecord;
  }

  /** Runs a queued job; does nothing for one that is running or finished (a retried stream record). */
  async run(tenant: string, id: string): Promise<void> {
    const job = await this.claim(tenant, id);
    if (!job) return;
    let reported = 0;
    let announced = this.clock();
    let writing: Promise<unknown> = Promise.resolve();
    const progress = { bytesDone: 0, layersDone: 0 };
    const onProgress = (p: { bytes?: number; layers?: number }) => {
      if (p.bytes !== undefined) progress.bytesDone = p.bytes;
      if (p.layers !== undefined) progress.layersDone = p.layers;
      const now = this.clock();
      if (now - reported < PROGRESS_EVERY_MS) return;
      reported = now;
      const update = { ...progress, updated: now };
      const ops: WriteOp[] = [{ op: 'update', key: keys.job(tenant, id), set: update, conditions: [{ kind: 'equals', field: 'status', value: 'running' }] }];
      if (now - announced >= PROGRESS_EVENT_EVERY_MS) {
        announced = now;
        ops.push(this.events.op(tenant, 'job.progress', { job: id, kind: job.jobKind, ...progress, bytesTotal: job.bytesTotal }));
      }
      writing = writing.then(() => this.meta.transact(ops).catch(() => undefined));
    };
    let outcome: Pick<JobRecord, 'status' | 'result' | 'error'>;
    try {
      outcome = { status: 'succeeded', result: await this.perform(tenant, job, onProgress) };
    } catch (error) {
      // The job's reader sees what a request would have been answered, never internals.
      outcome = {
        status: 'failed',
        error: error instanceof StrataError ? { message: error.message, code: error.code } : { message: `the ${job.jobKind} failed on a storage error; try again`, code: 'internal' },
      };
    } finally {
      await writing;
    }
    await this.finish(tenant, job, outcome, progress);
  }

  private async perform(tenant: string, job: JobRecord, onProgress: (p: { bytes?: number; layers?: number }) => void): Promise<JobResult> {
    if (job.jobKind === 'load') return { images: await this.images.load(tenant, await this.blobs.get(job.blobKey), undefined, onProgress) };
    if (!this.work) throw new Error('this engine runs no save, export or commit jobs');
    if (job.jobKind === 'commit') return { image: await this.work.commit(tenant, job.container, job.options) };
    const tar = job.jobKind === 'save' ? await this.work.save(tenant, job.refs) : await this.work.export(tenant, job.container);
    const counted = Readable.from(
      (async function* () {
        let written = 0;
        for await (const chunk of tar) {
          onProgress({ bytes: (written += chunk.length) });
          yield chunk as Buffer;
        }
      })(),
    );
    const key = blobKeys.jobResult(tenant);
    const { size } = await this.blobs.put(key, counted);
    return { archive: { key, size } };
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
    const items = (await Promise.all(keys.jobPartitions(tenant).map((pk) => queryAll(this.meta, pk)))).flat();
    for (const item of items) {
      const job = item.attrs as unknown as JobRecord;
      const dead = job.status === 'running' && (job.leaseUntil ?? 0) < now;
      const neverUploaded = job.status === 'awaiting-upload' && job.created + AWAITING_UPLOAD_MS < now;
      if (!dead && !neverUploaded) continue;
      const error = dead ? { message: `the ${job.jobKind} was interrupted; try again`, code: 'internal' } : { message: 'the upload never received its bytes', code: 'invalid_input' };
      await this.finish(tenant, job, { status: 'failed', error }, job, job.status).then(
        () => failed++,
        () => undefined,
      );
    }
    return failed;
  }

  private async finish(
    tenant: string,
    job: JobRecord,
    outcome: Pick<JobRecord, 'status' | 'result' | 'error'>,
    progress: { bytesDone: number; layersDone: number },
    from: JobStatus = 'running',
  ): Promise<void> {
    const now = this.clock();
    // Only the counts: `progress` may be the job record itself (an abandoned job), whose status must not win.
    const done = { bytesDone: outcome.status === 'succeeded' && job.jobKind === 'load' ? job.bytesTotal : progress.bytesDone, layersDone: progress.layersDone };
    await this.meta.transact([
      { op: 'update', key: keys.job(tenant, job.id), set: { ...outcome, ...done, updated: now, leaseUntil: 0 }, conditions: [{ kind: 'equals', field: 'status', value: from }] },
      this.events.op(tenant, 'job.completed', {
        job: job.id,
        kind: job.jobKind,
        status: outcome.status,
        ...(outcome.result?.images ? { images: outcome.result.images } : {}),
        ...(outcome.result?.archive ? { size: outcome.result.archive.size } : {}),
        ...(outcome.result?.image ? { image: outcome.result.image } : {}),
        ...(outcome.error ? { error: outcome.error } : {}),
      }),
    ]);
  }
}
