import type { Readable } from 'node:stream';
import { EventLog } from './domain/events.js';
import { ChangeFeed, type FeedPage, feedOwner } from './domain/change-feed.js';
import { Expirations } from './domain/expirations.js';
import type { BlobStore } from './ports/blob-store.js';
import type { MetadataStore } from './ports/metadata-store.js';
import { Changeset } from './domain/changeset.js';
import { ForkService } from './domain/forks.js';
import { type MergeRequest, type MergeResult, MergeService } from './domain/merges.js';
import { Compactor } from './domain/compaction.js';
import { type PatchedChange, withPatches } from './domain/patches.js';
import { isContainerLayer, type SealedLayerRecord, sealedOf } from './domain/sealed-layers.js';
import { type Sameness, TreeDiff, type TreeChange } from './domain/tree-diff.js';
import { ContainerService, type ContainerSummary } from './domain/containers.js';
import { FileService } from './domain/files.js';
import { applyRuntimeChanges, type RuntimeConfigChanges, withProcessSettings } from './domain/image-config.js';
import { ImageService, type ImageSummary } from './domain/images.js';
import { ingestLayer, type IngestLimits } from './domain/layer-ingest.js';
import type { ContainerRecord, ImageRecord } from './domain/records.js';
import type { View } from './domain/view.js';
import { Sweeper } from './domain/sweep.js';
import { Fsck } from './domain/fsck.js';
import { TreeReader } from './domain/tree-read.js';
import { TreeWriter } from './domain/tree-write.js';
import { VolumeService, type VolumeSummary } from './domain/volumes.js';
import { blobKeys, keys, type NamespaceId } from './keys.js';
import { ConflictError, NotFoundError } from './errors.js';
import { normalizeReference, sha256Digest } from './domain/refs.js';
import { Idempotency, type IdempotencyOps } from './domain/idempotency.js';
import { Jobs } from './domain/jobs.js';
import { Uploads } from './domain/uploads.js';
import { ReadCopies } from './domain/read-copies.js';
import type { BatchedReadOptions } from './domain/batched-reads.js';
import { DEFAULT_MAX_FILE_BYTES } from './domain/limits.js';

export interface EngineOptions {
  readonly limits?: IngestLimits;
  readonly clock?: () => number;
  /** Largest file size, offset or write end. @default 1 TiB */
  readonly maxFileBytes?: number;
  /** How export and commit batch small files' reads (the benchmark turns it off to compare). */
  readonly batchedReads?: BatchedReadOptions;
}

export interface CommitOptions {
  /** `repo[:tag]` to tag the new image with. */
  readonly reference?: string;
  readonly author?: string;
  readonly comment?: string;
  /** Changes to the image's runtime config (`docker commit --change`). */
  readonly changes?: RuntimeConfigChanges;
}

export interface DiskUsage {
  readonly images: { count: number; active: number; size: number; sharedSize: number; reclaimable: number; items: ImageSummary[] };
  readonly containers: { count: number; active: number; size: number; reclaimable: number; items: ContainerSummary[] };
  readonly volumes: { count: number; active: number; size: number; reclaimable: number; items: VolumeSummary[] };
}

/**
 * The storage engine: images, copy-on-write containers and volumes over a metadata store and a
 * blob store. Every call names its tenant; nothing here knows about AWS or HTTP.
 */
export class Engine {
  readonly images: ImageService;
  readonly containers: ContainerService;
  readonly volumes: VolumeService;
  readonly files: FileService;
  readonly sweeper: Sweeper;
  /** What changed, for integrators: written in the transaction of each change. */
  readonly events: EventLog;
  /** Every change of each container's and volume's tree, numbered (change-feed.ts). */
  readonly feed: ChangeFeed;
  /** Removes containers and volumes whose expiry has passed (expiry.ts). */
  readonly expirations: Expirations;
  /** Asynchronous loads and their progress. */
  readonly jobs: Jobs;
  /** Presigned uploads, and the loads they start when their bytes land. */
  readonly uploads: Uploads;
  /** Idempotency-Key records for loads and commits. */
  readonly idempotency: Idempotency;
  readonly fsck: Fsck;
  private readonly changeset: Changeset;
  private readonly diff: TreeDiff;
  private readonly reader: TreeReader;
  private readonly forks: ForkService;
  private readonly merges: MergeService;
  /** Shortens chains of forks and merges (compaction.ts). */
  readonly compactor: Compactor;

  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    options: EngineOptions = {},
  ) {
    const clock = options.clock ?? Date.now;
    const reader = new TreeReader(meta, blobs);
    this.reader = reader;
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.feed = new ChangeFeed(meta, clock);
    const writer = new TreeWriter(meta, blobs, reader, this.feed, clock, maxFileBytes);
    this.events = new EventLog(meta, clock);
    this.idempotency = new Idempotency(meta, clock);
    this.images = new ImageService(meta, blobs, reader, options.limits, clock, this.events);
    this.volumes = new VolumeService(meta, clock, this.events);
    this.containers = new ContainerService(meta, this.images, this.volumes, clock, this.events);
    this.expirations = new Expirations(meta, this.containers, this.volumes, clock);
    this.files = new FileService(this.images, this.containers, this.volumes, reader, writer, new ReadCopies(meta, reader, clock), maxFileBytes);
    this.changeset = new Changeset(meta, reader, options.batchedReads);
    this.diff = new TreeDiff(meta, reader);
    this.compactor = new Compactor(meta, this.containers, this.diff, reader, clock);
    const shorten = (tenant: string, id: string) => this.compactor.compact(tenant, id);
    this.forks = new ForkService(meta, this.containers, this.events, clock, shorten);
    this.merges = new MergeService(meta, this.containers, this.diff, reader, this.feed, this.events, clock, shorten);
    this.jobs = new Jobs(meta, blobs, this.images, this.events, clock, {
      save: (tenant, refs) => this.images.save(tenant, [...refs]),
      export: (tenant, container) => this.export(tenant, container),
      commit: (tenant, container, commitOptions) => this.commit(tenant, container, commitOptions as CommitOptions),
    });
    this.uploads = new Uploads(meta, blobs, this.jobs, this.events, clock);
    this.sweeper = new Sweeper(meta, blobs, this.events, this.feed, clock, this.jobs, this.expirations, this.compactor);
    this.fsck = new Fsck(meta, blobs, clock);
  }

  /**
   * `docker diff`, or with `against` the difference from another tree: a container (`name` or
   * ID), an image (`image:<ref>`) or a fork point of this container (`fork:<layer>`, from
   * `forkedFrom.layer`). Read from the layers the two do not share.
   */
  async changes(tenant: string, ref: string, options: { against?: string; sameness?: Sameness } = {}): Promise<TreeChange[]> {
    const { view, record } = await this.containers.view(tenant, ref);
    if (options.against === undefined) {
      // A container forks never touched keeps the proven one-layer walk.
      if (sealedOf(record).length === 0) return this.changeset.changes(view);
      return this.diff.changes(view, this.imageView(view), options.sameness);
    }
    return this.diff.changes(view, await this.treeNamed(tenant, record, options.against), options.sameness);
  }

  /** The tree `against` names, for `changes` and merges. Throws NotFoundError and InvalidInputError. */
  async treeNamed(tenant: string, record: ContainerRecord, against: string): Promise<View> {
    if (against.startsWith('image:')) return this.images.view(tenant, await this.images.resolve(tenant, against.slice('image:'.length)));
    if (against.startsWith('fork:')) {
      const layer = `c:${against.slice('fork:'.length)}` as NamespaceId;
      const missing = new NotFoundError(`${against} is not a fork point of container ${record.name}`);
      if (!/^fork:([0-9a-f]{32}|[0-9a-f]{64})$/.test(against)) throw missing;
      const at = record.stack.indexOf(layer);
      if (at >= 0) return { tenant, lowers: record.stack.slice(at), mounts: [], readOnly: true };
      // Compacted away: the flat layer that replaced it keeps the chain it replaced.
      const layers = await this.meta.getMany(record.stack.filter(isContainerLayer).map((ns) => keys.sealedLayer(tenant, ns)));
      for (const item of layers.values()) {
        const sealed = item.attrs as unknown as SealedLayerRecord;
        const i = sealed.flattens ? (sealed.holds ?? []).indexOf(layer) : -1;
        if (i >= 0) return { tenant, lowers: [...sealed.holds!.slice(i), ...record.stack.filter((ns) => !isContainerLayer(ns))], mounts: [], readOnly: true };
      }
      throw missing;
    }
    return (await this.containers.view(tenant, against)).view;
  }

  private imageView(view: View): View {
    return { tenant: view.tenant, lowers: view.lowers.filter((ns) => !isContainerLayer(ns)), mounts: [], readOnly: true };
  }

  /** Unified diffs for the text files among `changes` (see patches.ts for the limits). */
  patches(changes: readonly TreeChange[]): Promise<PatchedChange[]> {
    return withPatches(this.reader, changes);
  }

  /** A new container whose tree is this one's now; both go on independently (see ForkService). */
  fork(tenant: string, ref: string, request: { name?: string; labels?: Record<string, string> } = {}): Promise<ContainerSummary> {
    return this.forks.fork(tenant, ref, request);
  }

  /**
   * A container's or volume's change feed after the cursor `after` (`latest`: the current head,
   * so only changes from now on), waiting up to `waitMs` when none follows yet. Throws
   * NotFoundError, GoneError (entries after `after` were trimmed) and InvalidInputError.
   */
  async feedOf(
    tenant: string,
    target: { kind: 'container'; ref: string } | { kind: 'volume'; name: string },
    options: { after?: number | 'latest'; limit?: number; waitMs?: number } = {},
  ): Promise<FeedPage> {
    const owner = target.kind === 'container' ? feedOwner.container((await this.containers.record(tenant, target.ref)).id) : feedOwner.volume((await this.volumes.record(tenant, target.name)).uid);
    const after = options.after === 'latest' ? await this.feed.head(tenant, owner) : options.after;
    return this.feed.follow(tenant, owner, { ...options, after });
  }

  /**
   * Merges another container's changes since the two trees' common ancestor into this one, all
   * or nothing, with the conflicts (see MergeService).
   */
  merge(tenant: string, ref: string, request: MergeRequest): Promise<MergeResult> {
    return this.merges.merge(tenant, ref, request);
  }

  /** `docker export`: the container's merged file tree as one tar stream (volumes excluded). */
  async export(tenant: string, ref: string): Promise<Readable> {
    // The lookup reads the container's record, which is the proof it exists.
    const { view } = await this.containers.view(tenant, ref);
    return this.changeset.exportTar(view);
  }

  /**
   * Turns the container's layer into a new OCI layer and an image on top of the container's
   * image. Reads only the container's own namespace and the bytes of changed files.
   */
  async commit(tenant: string, ref: string, options: CommitOptions = {}, recordAlso?: (result: { id: string; tags: string[] }) => IdempotencyOps): Promise<{ id: string; tags: string[] }> {
    const { view, record } = await this.containers.view(tenant, ref);
    const reference = options.reference ? normalizeReference(options.reference) : undefined;
    const parent = (await this.meta.get(keys.image(tenant, record.image)))?.attrs as unknown as ImageRecord | undefined;
    if (!parent) throw new ConflictError(`the image ${record.image} of container ${record.id} is gone`);
    // A forked container's changes lie in several layers: the layer is written from their difference.
    const tar = sealedOf(record).length === 0 ? this.changeset.commitTar(view) : this.changeset.changesTar(await this.diff.changes(view, this.imageView(view)));
    const layer = await ingestLayer(tar, this.blobs, blobKeys.layer(tenant));
    const config = await this.images.config(parent);
    const now = new Date().toISOString();
    config.created = now;
    if (options.author) config.author = options.author;
    // As dockerd commits a container's own config: its create settings and labels, then --change.
    config.config = withProcessSettings(config.config, record.process);
    if (Object.keys(record.labels ?? {}).length) config.config = applyRuntimeChanges(config.config, { Labels: { ...record.labels } });
    if (options.changes) config.config = applyRuntimeChanges(config.config, options.changes);
    config.rootfs = { type: 'layers', diff_ids: [...parent.diffIds, layer.diffId] };
    config.history = [
      ...(config.history ?? []),
      { created: now, created_by: `strata commit ${record.id.slice(0, 12)}`, comment: options.comment ?? '', ...(options.author ? { author: options.author } : {}) },
    ];
    const bytes = Buffer.from(JSON.stringify(config));
    const result = { id: sha256Digest(bytes), tags: reference ? [reference] : [] };
    await this.images.storeCommit(tenant, parent, bytes, layer, result.tags, { id: record.id, name: record.name }, recordAlso?.(result));
    return result;
  }

  /** `docker system df`: counts, sizes, and what removing unused things would reclaim. */
  async diskUsage(tenant: string): Promise<DiskUsage> {
    const [images, containers, volumes] = await Promise.all([this.images.list(tenant), this.containers.listWithSizes(tenant), this.volumes.list(tenant)]);
    const activeImages = images.filter((i) => i.containers > 0);
    const unique = (i: ImageSummary) => i.size - i.sharedSize;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      images: {
        count: images.length,
        active: activeImages.length,
        size: sum(images.map((i) => i.size)),
        sharedSize: sum(images.map((i) => i.sharedSize)),
        reclaimable: sum(images.filter((i) => i.containers === 0).map(unique)),
        items: images,
      },
      // Strata runs no processes, so no container is running and all their bytes are reclaimable.
      containers: { count: containers.items.length, active: 0, size: containers.layerBytes, reclaimable: containers.layerBytes, items: containers.items },
      volumes: {
        count: volumes.length,
        active: volumes.filter((v) => v.refCount > 0).length,
        size: sum(volumes.map((v) => v.size)),
        reclaimable: sum(volumes.filter((v) => v.refCount === 0).map((v) => v.size)),
        items: volumes,
      },
    };
  }
}
