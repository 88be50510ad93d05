import { Readable } from 'node:stream';
import { InvalidInputError, StrataError, TooLargeError } from '../errors.js';
import { blobKeys, keys } from '../keys.js';
import { symlinkDestination } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { archiveMemberName, imagesFromArchive, MissingMemberError, type ArchiveImage } from '../tar/archive.js';
import { decompressing } from '../tar/decompress.js';
import { readTar } from '../tar/tar-reader.js';
import type { IdempotencyOps } from './idempotency.js';
import { MAX_TAGS_PER_IMAGE, type ImageStore, type PreparedImage } from './image-store.js';
import { ingestLayer, type IngestedLayer, type IngestLimits } from './layer-ingest.js';
import { normalizeReference, sha256Digest } from './refs.js';
import { chain, collect, peek } from './streams.js';

/** Largest member held in memory until the metadata says what it is (manifests and configs are far smaller). */
const MAX_HELD_MEMBER = 8 << 20;
/** Held members are kept until the end of the archive, so their total is capped. */
const MAX_HELD_TOTAL = 64 << 20;
/** Members this small are held whatever they hold (`VERSION`, empty files, tiny layers). */
const ALWAYS_HELD = 4 << 10;

/**
 * What became of each archive member before the metadata was read. A tar stream gives no way
 * back, and manifest.json usually comes last, so a member that could be a layer is ingested as
 * one on the spot, and the rest (manifests, configs, `VERSION`, `<id>/json`) is held in memory.
 * Only manifest.json or index.json decides which members are layers; whatever they do not name
 * is dropped, including a failed ingest, which is an error only if the member is a listed layer.
 */
interface Members {
  readonly held: Map<string, Buffer>;
  readonly ingested: Map<string, IngestedLayer>;
  readonly refused: Map<string, StrataError>;
  /** Size of every member not held, for errors about a config too large to hold. */
  readonly unheld: Map<string, number>;
  /** Older `docker save` archives store a repeated layer once and link the other names to it. */
  readonly aliases: Map<string, string>;
}

/** Loads image archives: docker-archive (every Docker, podman and skopeo layout) and OCI layouts. */
/** How far a load is: archive bytes read (as sent, before decompression) and layers stored. */
export interface LoadProgress {
  readonly bytes?: number;
  readonly layers?: number;
}

/** The archive's chunks as they are read, counted. */
async function* counted(archive: Readable | AsyncIterable<Buffer> | Iterable<Buffer>, onProgress: (progress: LoadProgress) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of archive as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    onProgress({ bytes });
    yield chunk;
  }
}

/** The images an archive held, with their tags, in the archive's order. */
export type LoadResult = { id: string; tags: string[] }[];

export class ArchiveLoader {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly store: ImageStore,
    private readonly limits: IngestLimits = {},
  ) {}

  /** Loads every image in an archive (plain or compressed tar), all or none. Returns the images with their tags. */
  async load(
    tenant: string,
    archive: Readable | AsyncIterable<Buffer> | Iterable<Buffer>,
    recordAlso?: (result: LoadResult) => IdempotencyOps,
    onProgress?: (progress: LoadProgress) => void,
  ): Promise<LoadResult> {
    const members: Members = { held: new Map(), ingested: new Map(), refused: new Map(), unheld: new Map(), aliases: new Map() };
    try {
      await this.readMembers(tenant, onProgress ? counted(archive, onProgress) : archive, members, onProgress);
      const images = metadataOf(members);
      const used = new Set<string>();
      // Every image is checked before any is recorded: an archive loads whole or not at all.
      const planned: { image: ArchiveImage; ingested: IngestedLayer[]; tags: string[]; merged: ReturnType<ImageStore['mergeLoaded']> }[] = [];
      for (const image of images) {
        const ingested: IngestedLayer[] = [];
        for (const member of image.layerMembers) {
          const name = members.aliases.get(member) ?? member;
          ingested.push(await this.layerOf(tenant, members, name, member));
          used.add(name);
        }
        ingested.forEach((layer, i) => {
          if (image.diffIds[i] !== layer.diffId) throw new InvalidInputError(`layer ${i} has DiffID ${layer.diffId} but the config says ${image.diffIds[i]}`);
        });
        const tags = [...new Set(image.repoTags.map(normalizeReference))];
        if (tags.length > MAX_TAGS_PER_IMAGE) throw new InvalidInputError(`an image may have at most ${MAX_TAGS_PER_IMAGE} tags`);
        planned.push({ image, ingested, tags, merged: this.store.mergeLoaded(ingested) });
      }
      // One image twice (under two manifests) is recorded once, with the tags of both.
      const byConfig = new Map<string, (typeof planned)[number]>();
      for (const plan of planned) {
        const key = plan.image.config.toString('base64');
        const seen = byConfig.get(key);
        byConfig.set(key, seen ? { ...seen, tags: [...new Set([...seen.tags, ...plan.tags])] } : plan);
      }
      const prepared: PreparedImage[] = [];
      const inArchive = new Set(images.map((i) => i.configDigest));
      for (const { image, ingested, tags, merged } of byConfig.values()) {
        // Docker keeps the parent link (it names history lines) when the parent is there too.
        const parent = image.parent && (inArchive.has(image.parent) || (await this.meta.get(keys.image(tenant, image.parent)))) ? image.parent : undefined;
        prepared.push(await this.store.prepareLoaded(tenant, image.config, ingested, tags, merged, parent));
      }
      const result = planned.map(({ image, tags }) => ({ id: sha256Digest(image.config), tags }));
      await this.store.recordImages(tenant, prepared, undefined, recordAlso?.(result));
      await this.blobs.delete([...members.ingested].filter(([name]) => !used.has(name)).map(([, l]) => l.blobKey));
      return result;
    } catch (error) {
      // Nothing half-written: layers not yet recorded are only blobs, removed here (or by the sweep after a crash).
      await this.discardUnrecorded(tenant, [...members.ingested.values()]);
      throw error;
    }
  }

  private async readMembers(tenant: string, archive: Readable | AsyncIterable<Buffer> | Iterable<Buffer>, members: Members, onProgress?: (progress: LoadProgress) => void): Promise<void> {
    const source = decompressing(Readable.from(archive as AsyncIterable<Buffer>), { maxOutputBytes: this.limits.maxTotalBytes });
    let heldBytes = 0;
    for await (const entry of readTar(source, { maxEntries: 100_000 })) {
      const name = archiveMemberName(entry.header.path);
      if (entry.header.type === 'symlink' || entry.header.type === 'hardlink') {
        const target = entry.header.type === 'symlink' ? symlinkDestination('/' + name, entry.header.linkname ?? '').slice(1) : archiveMemberName(entry.header.linkname ?? '');
        members.aliases.set(name, target);
        continue;
      }
      if (entry.header.type !== 'file') continue;
      const { first, rest } = await peek(entry.body);
      const size = entry.header.size;
      // JSON opens with `{` or `[`; a tar opens with a file name (almost never `{`) or a compression magic.
      const mayBeMetadata = size <= ALWAYS_HELD || (first !== undefined && /^\s*[[{]/.test(first.subarray(0, 64).toString('latin1')));
      if (mayBeMetadata && size <= MAX_HELD_MEMBER) {
        heldBytes += size;
        if (heldBytes > MAX_HELD_TOTAL) throw new TooLargeError(`archive holds more than ${MAX_HELD_TOTAL} bytes of manifests and configs`);
        members.held.set(name, await collect(first, rest));
        continue;
      }
      members.unheld.set(name, size);
      try {
        members.ingested.set(name, await ingestLayer(chain(first, rest), this.blobs, blobKeys.layer(tenant), this.limits));
        onProgress?.({ layers: members.ingested.size });
      } catch (error) {
        // Not a layer after all, or a bad one: it matters only if the metadata lists it.
        if (!(error instanceof InvalidInputError || error instanceof TooLargeError)) throw error;
        members.refused.set(name, error);
      }
    }
  }

  /** The ingested layer of a listed member: ingested as it streamed by, or now from memory. */
  private async layerOf(tenant: string, members: Members, name: string, listedAs: string): Promise<IngestedLayer> {
    const done = members.ingested.get(name);
    if (done) return done;
    const refused = members.refused.get(name);
    if (refused) {
      refused.message = `layer ${listedAs}: ${refused.message}`;
      throw refused;
    }
    const held = members.held.get(name);
    if (!held) throw new InvalidInputError(`archive lists layer ${listedAs} but does not contain it`);
    if (held.length === 0) throw new InvalidInputError(`archive member ${listedAs} is listed as a layer but is empty`);
    const layer = await ingestLayer(Readable.from([held]), this.blobs, blobKeys.layer(tenant), this.limits).catch((error: Error) => {
      if (error instanceof StrataError) error.message = `layer ${listedAs}: ${error.message}`;
      throw error;
    });
    members.ingested.set(name, layer);
    return layer;
  }

  private async discardUnrecorded(tenant: string, layers: IngestedLayer[]) {
    if (layers.length === 0) return;
    const records = await this.meta.getMany(layers.map((l) => keys.layer(tenant, l.diffId)));
    const recorded = new Set([...records.values()].map((r) => r.attrs.blobKey as string));
    await this.blobs.delete(layers.map((l) => l.blobKey).filter((k) => !recorded.has(k))).catch(() => undefined);
  }
}

/** The images the archive's metadata describes; a config too big to have been held is named as such. */
function metadataOf(members: Members): ArchiveImage[] {
  try {
    return imagesFromArchive(members.held);
  } catch (error) {
    const size = error instanceof MissingMemberError ? members.unheld.get(error.member) : undefined;
    if (size === undefined) throw error;
    if (size > MAX_HELD_MEMBER) throw new TooLargeError(`archive member ${(error as MissingMemberError).member} is ${size} bytes, over the ${MAX_HELD_MEMBER}-byte limit for a manifest or config`);
    throw new InvalidInputError(`archive member ${(error as MissingMemberError).member} is not JSON`);
  }
}
