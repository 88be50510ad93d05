import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { dockerArchive, type LayerEntry } from './images.js';

/** An engine over the in-process metadata store and a blob folder in a temp dir. */
export async function localEngine(): Promise<{ engine: Engine; meta: MetadataStore; blobs: BlobStore; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-engine-'));
  const meta = new MemoryMetadataStore();
  const blobs = new FsBlobStore(dir, async (key) => `file://${key}`);
  return { engine: new Engine(meta, blobs), meta, blobs, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Loads an image built from layer entry lists and returns its ID. */
export async function loadImage(engine: Engine, tenant: string, layers: readonly (readonly LayerEntry[] | Buffer)[], tags: string[] = []): Promise<string> {
  const { archive } = await dockerArchive(layers, { tags });
  const [image] = await engine.images.load(tenant, [archive]);
  return image.id;
}

export async function text(stream: AsyncIterable<Buffer | Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}
