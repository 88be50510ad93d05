import { TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import type { EventLog } from './events.js';
import type { ImageRecord } from './records.js';

/**
 * An archive whose images do not fit one transaction (100 items) is recorded in several. Its
 * journal, written before the first, names what the load will add (new images) and move (tags,
 * with the image each named before); the last transaction deletes it. A load that fails part-way
 * undoes itself from the journal at once, and the sweep undoes a journal a crash left behind, so
 * an archive ends up loaded whole or not at all.
 */
export interface LoadJournal {
  readonly started: number;
  /** Images the load records that were not stored before, with the config blob it wrote for each. */
  readonly images: readonly { readonly id: string; readonly configKey: string }[];
  readonly tags: readonly { readonly tag: string; readonly image: string; readonly previous?: string }[];
  /** The Idempotency-Key the load recorded as still running, to forget with it. */
  readonly idempotency?: { readonly key: string; readonly fingerprint: string };
}

/**
 * Undoes a load: tags go back to the image they named before (or go), then the new images are
 * removed with their config blobs, unless a container already uses one (then it stays, a valid
 * image). Each step checks that nothing else changed the item since, and reports its event.
 * Idempotent: a retry after a crash part-way finishes the job.
 */
export async function undoLoad(meta: MetadataStore, blobs: BlobStore, events: EventLog, tenant: string, id: string, journal: LoadJournal): Promise<void> {
  const ignoreChanged = (error: unknown) => {
    if (!(error instanceof TransactionConditionError)) throw error;
  };
  for (const { tag, image, previous } of journal.tags) {
    // Only a tag this load wrote (a later write of the tag, by anyone, replaced the marker).
    const ours = [{ kind: 'equals', field: 'loadedBy', value: id }] as const;
    const ops: WriteOp[] = previous
      ? [{ op: 'put', item: { ...keys.tag(tenant, tag), attrs: { image: previous } }, conditions: ours }, events.op(tenant, 'image.tagged', { image: previous, tag })]
      : [{ op: 'delete', key: keys.tag(tenant, tag), conditions: ours }, events.op(tenant, 'image.untagged', { image, tags: [tag] })];
    await meta.transact(ops).catch(ignoreChanged);
  }
  for (const { id: image, configKey } of journal.images) {
    const record = await meta.get(keys.image(tenant, image));
    // Not recorded yet, or recorded since by another load (with its own config blob): not ours.
    if (record && (record.attrs as unknown as ImageRecord).configKey === configKey) {
      await meta
        .transact([
          {
            op: 'delete',
            key: keys.image(tenant, image),
            conditions: [
              { kind: 'equals', field: 'containers', value: 0 },
              { kind: 'equals', field: 'configKey', value: configKey },
            ],
          },
          events.op(tenant, 'image.removed', { image, tags: [] }),
        ])
        .catch(ignoreChanged);
    }
    // The config blob is only ever this load's: it goes unless a kept image still points at it.
    const kept = await meta.get(keys.image(tenant, image));
    if ((kept?.attrs as unknown as ImageRecord | undefined)?.configKey !== configKey) await blobs.delete([configKey]);
  }
  if (journal.idempotency) {
    const { key, fingerprint } = journal.idempotency;
    const pending: WriteOp = {
      op: 'delete',
      key: keys.idempotency(tenant, key),
      conditions: [
        { kind: 'equals', field: 'state', value: 'pending' },
        { kind: 'equals', field: 'fingerprint', value: fingerprint },
      ],
    };
    await meta.transact([pending]).catch(ignoreChanged);
  }
  await meta.transact([{ op: 'delete', key: keys.loadJournal(tenant, id) }]);
}

/** Journals started at or before `cutoff` (ms): loads a crash stopped, for the sweep to undo. */
export async function staleJournals(meta: MetadataStore, tenant: string, cutoff: number): Promise<{ id: string; journal: LoadJournal }[]> {
  return (await queryAll(meta, keys.loadJournals(tenant))).map((item) => ({ id: item.sk, journal: item.attrs as unknown as LoadJournal })).filter(({ journal }) => journal.started <= cutoff);
}
