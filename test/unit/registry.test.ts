import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MEDIA, Registry } from '../../shared/domain/registry.js';
import type { Engine } from '../../shared/engine.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { loadImage, localEngine } from '../support/engine.js';

/** The registry's model: manifests made from image records, blobs where the stored bytes are. */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let blobs: BlobStore;
let cleanup: () => Promise<void>;
let registry: Registry;
let imageId: string;

beforeEach(async () => {
  ({ engine, meta, blobs, cleanup } = await localEngine());
  registry = new Registry(meta);
  imageId = await loadImage(engine, T, [[{ path: 'a', content: 'A' }], [{ path: 'b', content: 'B' }]], ['org/app:1', 'org/app:latest', 'other:2']);
});
afterEach(async () => cleanup());

const digestOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('the registry model', () => {
  it('makes an OCI manifest of the config and the uncompressed layers, named by the digest of its bytes', async () => {
    const manifest = await registry.manifest(T, 'org/app', '1');
    expect(manifest.mediaType).toBe(MEDIA.ociManifest);
    expect(manifest.digest).toBe(digestOf(manifest.bytes));
    const body = JSON.parse(manifest.bytes.toString());
    const image = await engine.images.inspect(T, 'org/app:1');
    expect(body.config).toEqual({ mediaType: MEDIA.ociConfig, digest: imageId, size: expect.any(Number) });
    expect(body.layers.map((l: { digest: string }) => l.digest)).toEqual(image.layers.map((l) => l.diffId));
    // Each blob is where its bytes are: they hash to the digest that names them.
    for (const digest of [body.config.digest, ...body.layers.map((l: { digest: string }) => l.digest)]) {
      const location = await registry.blob(T, 'org/app', digest);
      const chunks: Buffer[] = [];
      for await (const chunk of await blobs.get(location.key)) chunks.push(Buffer.from(chunk));
      const bytes = Buffer.concat(chunks);
      expect(bytes.length).toBe(location.size);
      expect(digestOf(bytes)).toBe(digest);
    }
  });

  it('gives a Docker manifest to a client that accepts only that, and finds either by its digest', async () => {
    const docker = await registry.manifest(T, 'org/app', 'latest', [MEDIA.dockerManifest]);
    const oci = await registry.manifest(T, 'org/app', 'latest', [MEDIA.dockerManifest, MEDIA.ociManifest]);
    expect(docker.mediaType).toBe(MEDIA.dockerManifest);
    expect(oci.mediaType).toBe(MEDIA.ociManifest);
    expect(docker.digest).not.toBe(oci.digest);
    expect((await registry.manifest(T, 'org/app', docker.digest)).bytes).toEqual(docker.bytes);
    expect((await registry.manifest(T, 'org/app', oci.digest)).bytes).toEqual(oci.bytes);
    await expect(registry.manifest(T, 'other', oci.digest)).resolves.toBeDefined();
    await expect(registry.manifest(T, 'org/app', `sha256:${'1'.repeat(64)}`)).rejects.toMatchObject({ status: 404 });
  });

  it('lists tags and repositories in order, in pages, and keeps tenants apart', async () => {
    expect(await registry.tags(T, 'org/app')).toEqual(['1', 'latest']);
    expect(await registry.tags(T, 'org/app', { limit: 1 })).toEqual(['1']);
    expect(await registry.tags(T, 'org/app', { last: '1' })).toEqual(['latest']);
    expect(await registry.catalog(T)).toEqual(['org/app', 'other']);
    await expect(registry.tags(T, 'org')).rejects.toMatchObject({ status: 404 });
    await expect(registry.manifest('someone-else', 'org/app', '1')).rejects.toMatchObject({ status: 404 });
    await expect(registry.blob('someone-else', 'org/app', imageId)).rejects.toMatchObject({ status: 404 });
    await expect(registry.manifest(T, 'Org/App', '1')).rejects.toMatchObject({ status: 400 });
  });
});
