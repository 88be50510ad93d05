import { Readable } from 'node:stream';
import { InvalidInputError, NotFoundError, TooLargeError } from '../errors.js';
import { blobKeys, keys } from '../keys.js';
import { symlinkDestination } from '../paths.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { archiveMemberName, dockerArchiveMetadata, imagesFromArchive } from '../tar/archive.js';
import { decompressing } from '../tar/decompress.js';
import { readTar } from '../tar/tar-reader.js';
import { TarWriter } from '../tar/tar-writer.js';
import { MAX_TAGS_PER_IMAGE, type ImageStore, type PreparedImage } from './image-store.js';
import { ingestLayer, type IngestedLayer, type IngestLimits } from './layer-ingest.js';
import type { ImageRecord, LayerRecord } from './records.js';
import { looksLikeImageId, normalizeReference, sha256Digest } from './refs.js';

/** JSON members of an archive (manifests, configs) are small; anything larger is a layer. */
const MAX_JSON_MEMBER = 8 << 20;
/** Manifests and configs are held in memory until the end of the archive, so their total is capped. */
const MAX_JSON_TOTAL = 64 << 20;

/** Reading image archives (docker-archive and OCI layout tars) and writing docker-archive tars. */
export class ImageArchives {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly store: ImageStore,
    private readonly resolve: (tenant: string, ref: string) => Promise<ImageRecord>,
    private readonly limits: IngestLimits = {},
  ) {}

  /** Loads every image in an archive (plain or compressed tar). Returns the images with their tags. */
  async load(tenant: string, archive: Readable | AsyncIterable<Buffer> | Iterable<Buffer>): Promise<{ id: string; tags: string[] }[]> {
    const json = new Map<string, Buffer>();
    const layers = new Map<string, IngestedLayer>();
    try {
      const source = decompressing(Readable.from(archive as AsyncIterable<Buffer>), { maxOutputBytes: this.limits.maxTotalBytes });
      // Older `docker save` archives store a repeated layer once and link the other names to it.
      const aliases = new Map<string, string>();
      let jsonBytes = 0;
      for await (const entry of readTar(source, { maxEntries: 100_000 })) {
        const name = archiveMemberName(entry.header.path);
        if (entry.header.type === 'symlink' || entry.header.type === 'hardlink') {
          const target = entry.header.type === 'symlink' ? symlinkDestination('/' + name, entry.header.linkname ?? '').slice(1) : archiveMemberName(entry.header.linkname ?? '');
          aliases.set(name, target);
          continue;
        }
        if (entry.header.type !== 'file') continue;
        const { first, rest } = await peek(entry.body);
        if (entry.header.size <= MAX_JSON_MEMBER && (first === undefined || first[0] === 0x7b /* { */ || !name.includes('/') || name === 'oci-layout')) {
          jsonBytes += entry.header.size;
          if (jsonBytes > MAX_JSON_TOTAL) throw new TooLargeError(`archive holds more than ${MAX_JSON_TOTAL} bytes of manifests and configs`);
          json.set(name, await collect(first, rest));
          continue;
        }
        // A layer tar opens with a file name, which almost never starts with `{`: this is JSON, too big.
        if (first?.[0] === 0x7b) throw new TooLargeError(`archive member ${name} looks like a manifest or config but is ${entry.header.size} bytes, over the ${MAX_JSON_MEMBER}-byte limit`);
        layers.set(name, await ingestLayer(chain(first, rest), this.blobs, blobKeys.layer(tenant), this.limits));
      }
      const images = imagesFromArchive(json);
      // Every image is checked before any is recorded: an archive loads whole or not at all.
      const used = new Set<string>();
      const planned = images.map((image) => {
        const ingested = image.layerMembers.map((member) => {
          const name = aliases.get(member) ?? member;
          const layer = layers.get(name);
          if (!layer && json.has(name)) throw new InvalidInputError(`archive member ${member} is listed as a layer but is not a tar (it is empty or JSON)`);
          if (!layer) throw new InvalidInputError(`archive lists layer ${member} but does not contain it`);
          used.add(name);
          return layer;
        });
        ingested.forEach((layer, i) => {
          if (image.diffIds[i] !== layer.diffId) throw new InvalidInputError(`layer ${i} has DiffID ${layer.diffId} but the config says ${image.diffIds[i]}`);
        });
        const tags = [...new Set(image.repoTags.map(normalizeReference))];
        if (tags.length > MAX_TAGS_PER_IMAGE) throw new InvalidInputError(`an image may have at most ${MAX_TAGS_PER_IMAGE} tags`);
        return { image, ingested, tags, merged: this.store.mergeLoaded(ingested) };
      });
      // One image twice (under two manifests) is recorded once, with the tags of both.
      const byConfig = new Map<string, (typeof planned)[number]>();
      for (const plan of planned) {
        const key = plan.image.config.toString('base64');
        const seen = byConfig.get(key);
        byConfig.set(key, seen ? { ...seen, tags: [...new Set([...seen.tags, ...plan.tags])] } : plan);
      }
      const prepared: PreparedImage[] = [];
      for (const { image, ingested, tags, merged } of byConfig.values()) prepared.push(await this.store.prepareLoaded(tenant, image.config, ingested, tags, merged));
      await this.store.recordImages(tenant, prepared);
      const results = planned.map(({ image, tags }) => ({ id: sha256Digest(image.config), tags }));
      await this.blobs.delete([...layers].filter(([name]) => !used.has(name)).map(([, l]) => l.blobKey));
      return results;
    } catch (error) {
      // Nothing half-written: layers not yet recorded are only blobs, removed here (or by the sweep after a crash).
      await this.discardUnrecorded(tenant, [...layers.values()]);
      throw error;
    }
  }

  private async discardUnrecorded(tenant: string, layers: IngestedLayer[]) {
    if (layers.length === 0) return;
    const records = await this.meta.getMany(layers.map((l) => keys.layer(tenant, l.diffId)));
    const recorded = new Set([...records.values()].map((r) => r.attrs.blobKey as string));
    await this.blobs.delete(layers.map((l) => l.blobKey).filter((k) => !recorded.has(k))).catch(() => undefined);
  }

  /** A docker-archive tar (what `docker save` writes) of the named images, streamed. */
  async save(tenant: string, refs: readonly string[]): Promise<Readable> {
    if (refs.length === 0) throw new InvalidInputError('name at least one image to save');
    const chosen = await Promise.all(refs.map(async (ref) => ({ ref, image: await this.resolve(tenant, ref) })));
    const byId = new Map<string, { image: ImageRecord; repoTags: string[] }>();
    for (const { ref, image } of chosen) {
      const entry = byId.get(image.id) ?? { image, repoTags: [] };
      if (!looksLikeImageId(ref)) entry.repoTags.push(normalizeReference(ref));
      byId.set(image.id, entry);
    }
    const configs = await Promise.all([...byId.values()].map(async ({ image, repoTags }) => ({ config: await readAll(await this.blobs.get(image.configKey)), configDigest: image.id, diffIds: [...image.diffIds], repoTags })));
    const layerRecords = await this.meta.getMany([...new Set(configs.flatMap((c) => c.diffIds))].map((d) => keys.layer(tenant, d)));
    const layerOf = new Map([...layerRecords.values()].map((i) => [i.attrs.diffId as string, i.attrs as unknown as LayerRecord]));
    const members = dockerArchiveMetadata(configs);
    const writer = new TarWriter();
    const blobs = this.blobs;
    (async () => {
      const written = new Set<string>();
      for (const [name, bytes] of members) {
        await writer.entry({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: bytes.length }, bytes);
      }
      for (const c of configs) {
        for (const diffId of c.diffIds) {
          if (written.has(diffId)) continue;
          written.add(diffId);
          const layer = layerOf.get(diffId);
          if (!layer) throw new NotFoundError(`layer ${diffId} is missing`);
          const hex = diffId.slice(7);
          await writer.entry({ path: `${hex}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 });
          await writer.entry({ path: `${hex}/layer.tar`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: layer.tarSize }, (await blobs.get(layer.blobKey)) as AsyncIterable<Buffer>);
        }
      }
      await writer.finish();
    })().catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }
}

export async function readAll(stream: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function peek(body: AsyncIterable<Buffer>): Promise<{ first: Buffer | undefined; rest: AsyncIterator<Buffer> }> {
  const rest = body[Symbol.asyncIterator]();
  for (;;) {
    const next = await rest.next();
    if (next.done) return { first: undefined, rest };
    if (next.value.length > 0) return { first: next.value, rest };
  }
}

async function collect(first: Buffer | undefined, rest: AsyncIterator<Buffer>): Promise<Buffer> {
  const chunks = first ? [first] : [];
  for (let n = await rest.next(); !n.done; n = await rest.next()) chunks.push(n.value);
  return Buffer.concat(chunks);
}

async function* chain(first: Buffer | undefined, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first) yield first;
  for (let n = await rest.next(); !n.done; n = await rest.next()) yield n.value;
}
