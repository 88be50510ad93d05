import type { Readable } from 'node:stream';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { keys } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { dockerArchiveMetadata } from '../tar/archive.js';
import { TarWriter } from '../tar/tar-writer.js';
import type { ImageRecord, LayerRecord } from './records.js';
import { looksLikeImageId, normalizeReference } from './refs.js';
import { readAll } from './streams.js';

/** Writes docker-archive tars (what `docker save` writes): configs, manifest.json, one layer.tar per DiffID. */
export class ArchiveSaver {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly resolve: (tenant: string, ref: string) => Promise<ImageRecord>,
  ) {}

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
    const configs = await Promise.all(
      [...byId.values()].map(async ({ image, repoTags }) => ({ config: await readAll(await this.blobs.get(image.configKey)), configDigest: image.id, diffIds: [...image.diffIds], repoTags })),
    );
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
