import { randomUUID } from 'node:crypto';
import { InvalidInputError, NotFoundError, TransactionConditionError } from '../errors.js';
import { blobFolder, blobKeys, keys, parseUploadKey } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { MetadataStore, WriteOp } from '../ports/metadata-store.js';
import type { EventLog } from './events.js';
import type { Jobs } from './jobs.js';

/** What happens once an upload's bytes arrive: nothing (the client names it later), or a load. */
export type UploadAction = 'none' | 'load';

export interface UploadRecord {
  readonly id: string;
  readonly key: string;
  readonly created: number;
  readonly action: UploadAction;
  /** The job that loads it, for `action: 'load'`. */
  readonly job?: string;
  /** `open` until the storage notification saw the bytes arrive. */
  readonly state: 'open' | 'finalized';
  readonly finalized?: number;
  readonly size?: number;
}

/**
 * Presigned uploads: large bodies go straight to blob storage. An upload made with
 * `action: 'load'` starts its load itself when the bytes land: S3's ObjectCreated notification
 * (the local server's own PUT handler in one process) calls `landed`, which finalizes the
 * upload, queues its job and records an `upload.finalized` event in one transaction, so a
 * repeated notification changes nothing.
 */
export class Uploads {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly jobs: Jobs,
    private readonly events: EventLog,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Records a new upload (and, for a load, its job waiting for the bytes). */
  async create(tenant: string, action: UploadAction = 'none'): Promise<UploadRecord> {
    const id = randomUUID();
    const upload: UploadRecord = { id, key: blobKeys.upload(tenant, id), created: this.clock(), action, state: 'open', ...(action === 'load' ? { job: randomUUID() } : {}) };
    const ops: WriteOp[] = [
      { op: 'put', item: { ...keys.upload(tenant, id), attrs: { ...upload } }, conditions: [{ kind: 'absent' }] },
      // A notification names only the key; this is how it finds the tenant.
      { op: 'put', item: { ...keys.tenantFolder(blobFolder(tenant)), attrs: { tenant } } },
    ];
    if (upload.job) ops.push(this.jobs.awaitingLoadOp(tenant, upload.job, id, upload.key));
    await this.meta.transact(ops);
    return upload;
  }

  /** Throws NotFoundError for an unknown upload. */
  async get(tenant: string, id: string): Promise<UploadRecord> {
    const item = await this.meta.get(keys.upload(tenant, id));
    if (!item) throw new NotFoundError(`no such upload: ${id}`);
    return { id, action: 'none', state: 'finalized', ...(item.attrs as object) } as UploadRecord;
  }

  /** The blob key of an upload whose bytes arrived; InvalidInputError while they have not. */
  async arrivedKey(tenant: string, id: string): Promise<string> {
    const { key } = await this.get(tenant, id);
    try {
      await this.blobs.size(key);
    } catch (error) {
      if (error instanceof NotFoundError) throw new InvalidInputError(`upload ${id} has not received its bytes yet`);
      throw error;
    }
    return key;
  }

  /**
   * The bytes of the upload at `blobKey` landed (a storage notification). Returns the upload,
   * or undefined for a key that is not an upload's, or one already finalized.
   */
  async landed(blobKey: string): Promise<UploadRecord | undefined> {
    const parsed = parseUploadKey(blobKey);
    if (!parsed) return undefined;
    const owner = await this.meta.get(keys.tenantFolder(parsed.folder));
    if (!owner) return undefined;
    const tenant = owner.attrs.tenant as string;
    const upload = await this.get(tenant, parsed.id).catch((error) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (!upload || upload.key !== blobKey || upload.state !== 'open') return undefined;
    const size = await this.blobs.size(blobKey);
    const now = this.clock();
    const ops: WriteOp[] = [
      { op: 'update', key: keys.upload(tenant, upload.id), set: { state: 'finalized', finalized: now, size }, conditions: [{ kind: 'equals', field: 'state', value: 'open' }] },
      this.events.op(tenant, 'upload.finalized', { upload: upload.id, size, ...(upload.job ? { job: upload.job } : {}) }),
    ];
    if (upload.job) ops.push(this.jobs.queueAwaitingOp(tenant, upload.job, size));
    try {
      await this.meta.transact(ops);
    } catch (error) {
      if (error instanceof TransactionConditionError) return undefined; // Another notification got there first.
      throw error;
    }
    return { ...upload, state: 'finalized', finalized: now, size };
  }
}
