import type { Readable } from 'node:stream';
import { ConflictError, NotFoundError, TransactionConditionError } from '../errors.js';
import { keys } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { queryAll, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import { ArchiveLoader, type LoadProgress, type LoadResult } from './archive-load.js';
import { EventLog } from './events.js';
import { ArchiveSaver } from './archive-save.js';
import type { IdempotencyOps } from './idempotency.js';
import type { ImageConfig } from './image-config.js';
import { readAll } from './streams.js';
import { ImageStore } from './image-store.js';
import type { IngestedLayer, IngestLimits } from './layer-ingest.js';
import type { ImageRecord } from './records.js';
import { looksLikeImageId, normalizeReference } from './refs.js';
import type { TreeReader } from './tree-read.js';
import type { View } from './view.js';

export interface ImageSummary {
  readonly id: string;
  readonly tags: string[];
  /** From the config's `created`; the time it was stored if the config has none. */
  readonly created: number;
  readonly size: number;
  /** Bytes of layers this image shares with at least one other image. */
  readonly sharedSize: number;
  readonly containers: number;
  readonly layers: { diffId: string; size: number }[];
  readonly parent?: string;
}

/**
 * The image catalogue: find images by ID, prefix or tag, list and inspect them, tag, untag and
 * remove. Loading and saving archives and storing commits are delegated to their own modules.
 */
export class ImageService {
  private readonly store: ImageStore;
  private readonly loader: ArchiveLoader;
  private readonly saver: ArchiveSaver;

  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    reader: TreeReader,
    limits: IngestLimits = {},
    clock: () => number = Date.now,
    private readonly events: EventLog = new EventLog(meta, clock),
  ) {
    this.store = new ImageStore(meta, blobs, reader, events, clock);
    this.loader = new ArchiveLoader(meta, blobs, this.store, limits);
    this.saver = new ArchiveSaver(meta, blobs, (tenant, ref) => this.resolve(tenant, ref));
  }

  /** Loads every image in an archive (plain or compressed tar). Returns the images with their tags. */
  load(
    tenant: string,
    archive: Readable | AsyncIterable<Buffer> | Iterable<Buffer>,
    recordAlso?: (result: LoadResult) => IdempotencyOps,
    onProgress?: (progress: LoadProgress) => void,
  ): Promise<LoadResult> {
    return this.loader.load(tenant, archive, recordAlso, onProgress);
  }

  /** A docker-archive tar (what `docker save` writes) of the named images, streamed. */
  save(tenant: string, refs: readonly string[]): Promise<Readable> {
    return this.saver.save(tenant, refs);
  }

  /** Records a committed layer and the image on top of `parent`. */
  storeCommit(
    tenant: string,
    parent: ImageRecord,
    config: Buffer,
    layer: IngestedLayer,
    repoTags: readonly string[],
    container: { readonly id: string; readonly name: string },
    idempotency?: IdempotencyOps,
  ): Promise<string> {
    return this.store.storeCommit(tenant, parent, config, layer, repoTags, container, idempotency);
  }

  /** Finds an image by ID, ID prefix or tag. Throws NotFoundError. */
  async resolve(tenant: string, ref: string): Promise<ImageRecord> {
    if (looksLikeImageId(ref)) {
      const wanted = ref.startsWith('sha256:') ? ref : `sha256:${ref}`;
      const page = await this.meta.query(keys.images(tenant), { prefix: wanted, limit: 2 });
      if (page.items.length === 1) return page.items[0].attrs as unknown as ImageRecord;
      if (page.items.length > 1) throw new ConflictError(`image ID prefix ${ref} is ambiguous`);
    }
    let tag: string;
    try {
      tag = normalizeReference(ref);
    } catch {
      throw new NotFoundError(`no such image: ${ref}`);
    }
    const tagItem = await this.meta.get(keys.tag(tenant, tag));
    const image = tagItem && (await this.meta.get(keys.image(tenant, tagItem.attrs.image as string)));
    if (!image) throw new NotFoundError(`no such image: ${ref}`);
    return image.attrs as unknown as ImageRecord;
  }

  /** The image's config JSON as stored (config, history, rootfs). Throws NotFoundError if its blob is gone. */
  async config(image: ImageRecord): Promise<ImageConfig> {
    return JSON.parse((await readAll(await this.blobs.get(image.configKey))).toString('utf8')) as ImageConfig;
  }

  view(tenant: string, image: ImageRecord): View {
    return { tenant, lowers: image.stack, mounts: [], readOnly: true };
  }

  async tagsByImage(tenant: string): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const item of await queryAll(this.meta, keys.tags(tenant))) {
      const id = item.attrs.image as string;
      out.set(id, [...(out.get(id) ?? []), item.sk]);
    }
    return out;
  }

  async records(tenant: string): Promise<ImageRecord[]> {
    return (await queryAll(this.meta, keys.images(tenant))).map((i) => i.attrs as unknown as ImageRecord);
  }

  async list(tenant: string): Promise<ImageSummary[]> {
    const [images, tags] = await Promise.all([this.records(tenant), this.tagsByImage(tenant)]);
    const users = new Map<string, number>();
    for (const image of images) for (const d of new Set(image.diffIds)) users.set(d, (users.get(d) ?? 0) + 1);
    return images.map((image) => summarize(image, tags.get(image.id) ?? [], users));
  }

  async inspect(tenant: string, ref: string): Promise<ImageSummary> {
    const image = await this.resolve(tenant, ref);
    const all = await this.list(tenant);
    return all.find((s) => s.id === image.id)!;
  }

  async tag(tenant: string, ref: string, newTag: string): Promise<string> {
    const image = await this.resolve(tenant, ref);
    const tag = normalizeReference(newTag);
    await this.meta.transact([
      { op: 'check', key: keys.image(tenant, image.id), conditions: [{ kind: 'present' }] },
      { op: 'put', item: { ...keys.tag(tenant, tag), attrs: { image: image.id } } },
      this.events.op(tenant, 'image.tagged', { image: image.id, tag }),
    ]);
    return tag;
  }

  /** Removes a tag; with `of`, only if the tag names that image (404 otherwise). */
  async untag(tenant: string, rawTag: string, of?: string): Promise<void> {
    const tag = normalizeReference(rawTag);
    const image = of === undefined ? undefined : await this.resolve(tenant, of);
    // The event names the image, so the tag is read first and removed only if it still names it.
    const named = image?.id ?? ((await this.meta.get(keys.tag(tenant, tag)))?.attrs.image as string | undefined);
    if (!named) throw new NotFoundError(`no such tag: ${rawTag}`);
    try {
      await this.meta.transact([
        { op: 'delete', key: keys.tag(tenant, tag), conditions: [{ kind: 'equals', field: 'image', value: named }] },
        this.events.op(tenant, 'image.untagged', { image: named, tags: [tag] }),
      ]);
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new NotFoundError(image ? `image ${of} has no tag ${rawTag}` : `no such tag: ${rawTag}`);
      throw error;
    }
  }

  /**
   * Removes an image and its tags. Refused while containers use it; with `force` the tags go
   * and the image stays, untagged, until its last container is removed (as Docker leaves a
   * dangling image). Layers are reclaimed by the sweep.
   */
  async remove(tenant: string, ref: string, options: { force?: boolean } = {}): Promise<{ untagged: string[]; deleted: string[] }> {
    const image = await this.resolve(tenant, ref);
    const tags = (await this.tagsByImage(tenant)).get(image.id) ?? [];
    // Removing by tag when the image has other tags only removes that tag, as Docker does.
    if (!looksLikeImageId(ref) && tags.length > 1) {
      const tag = normalizeReference(ref);
      await this.untag(tenant, tag);
      return { untagged: [tag], deleted: [] };
    }
    const untag: WriteOp[] = tags.map((t) => ({ op: 'delete', key: keys.tag(tenant, t) }));
    if (image.containers > 0) {
      if (!options.force) throw new ConflictError(`image ${image.id} is used by ${image.containers} container(s); remove them first or force`);
      if (tags.length === 0) return { untagged: [], deleted: [] };
      // One transaction holds 99 deletes and the event; more tags than that stay (a later remove takes them).
      await this.meta.transact([...untag.slice(0, 99), this.events.op(tenant, 'image.untagged', { image: image.id, tags: tags.slice(0, 99) })]);
      return { untagged: tags.slice(0, 99), deleted: [] };
    }
    try {
      const ops: WriteOp[] = [
        { op: 'delete', key: keys.image(tenant, image.id), conditions: [{ kind: 'equals', field: 'containers', value: 0 }] },
        this.events.op(tenant, 'image.removed', { image: image.id, tags }),
        ...untag,
      ];
      await this.meta.transact(ops.slice(0, 100));
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new ConflictError(`image ${image.id} is now used by a container`);
      throw error;
    }
    return { untagged: tags, deleted: [image.id] };
  }
}

function summarize(image: ImageRecord, tags: string[], users: Map<string, number>): ImageSummary {
  let sharedSize = 0;
  image.diffIds.forEach((d, i) => {
    if ((users.get(d) ?? 0) > 1) sharedSize += image.layerSizes[i] ?? 0;
  });
  return {
    id: image.id,
    tags: tags.sort(),
    created: image.created,
    size: image.size,
    sharedSize,
    containers: image.containers,
    layers: image.diffIds.map((diffId, i) => ({ diffId, size: image.layerSizes[i] ?? 0 })),
    parent: image.parent,
  };
}
