import { createHash } from 'node:crypto';
import { blobKeys, keys } from '../keys.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import type { Extent } from './nodes.js';
import type { TreeReader } from './tree-read.js';

/** How long a read copy is kept; the sweep drops older ones (and the table's TTL their records). */
export const READ_COPY_LIFETIME_MS = 60 * 60_000;

/**
 * The objects a large read is answered from (a 303 to a presigned URL), one per content: the
 * copy is named by the extents it holds (blobs never change, so equal extents are equal bytes),
 * made once, and reused by every later read of the same bytes while it will outlive the URL.
 * A 64 MiB file read twenty times is copied once, not twenty times.
 */
export class ReadCopies {
  constructor(
    private readonly meta: MetadataStore,
    private readonly reader: TreeReader,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The blob key of a copy of these bytes that lives at least `validForMs` more; made if there is none. */
  async copyOf(tenant: string, extents: readonly Extent[], validForMs: number): Promise<{ key: string; reused: boolean }> {
    const id = createHash('sha256').update(JSON.stringify(extents)).digest('hex');
    const now = this.clock();
    const known = await this.meta.get(keys.readCopy(tenant, id));
    // A minute to spare: the URL must not outlive the object it points at.
    if (known && (known.attrs.created as number) + READ_COPY_LIFETIME_MS - 60_000 > now + validForMs) return { key: known.attrs.key as string, reused: true };
    const key = blobKeys.readCopy(tenant);
    await this.reader.copyOut(extents, key);
    await this.meta.transact([{ op: 'put', item: { ...keys.readCopy(tenant, id), attrs: { key, created: now, expiresAt: Math.ceil((now + READ_COPY_LIFETIME_MS) / 1000) } } }]);
    return { key, reused: false };
  }
}
