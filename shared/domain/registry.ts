import { createHash } from 'node:crypto';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { keys } from '../keys.js';
import { itemId, queryAll, type MetadataStore } from '../ports/metadata-store.js';
import type { ImageRecord, LayerRecord } from './records.js';
import { normalizeReference } from './refs.js';

/**
 * The pull side of the OCI Distribution API over the images Strata already holds: a manifest
 * is made from an image's record (its config blob and its layers, uncompressed, each named by
 * the digest of its bytes: the image ID and the DiffIDs), and blobs are the stored config and
 * layer tars themselves, so any loaded or committed image can be pulled with no second copy.
 * Repositories are the tenant's tag names (`repo:tag` is tag `tag` of repository `repo`).
 */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
} as const;

export interface ManifestDocument {
  readonly mediaType: string;
  readonly digest: string;
  readonly bytes: Buffer;
}

export interface BlobLocation {
  readonly key: string;
  readonly size: number;
  readonly mediaType: string;
}

/** Repository names as the distribution spec allows them (path components of lowercase alphanumerics and separators). */
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function checkRepository(name: string): string {
  if (name.length > 255 || !REPOSITORY.test(name)) throw new InvalidInputError(`invalid repository name ${JSON.stringify(name)}`);
  return name;
}

export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

export class Registry {
  constructor(private readonly meta: MetadataStore) {}

  /**
   * The manifest of `repository:reference` (a tag, or a manifest digest one of the repository's
   * tags has), as an OCI image manifest, or a Docker one when `accept` asks only for that.
   * Throws NotFoundError (no such repository, tag or manifest) and InvalidInputError.
   */
  async manifest(tenant: string, repository: string, reference: string, accept: readonly string[] = []): Promise<ManifestDocument> {
    checkRepository(repository);
    const docker = accept.includes(MEDIA.dockerManifest) && !accept.includes(MEDIA.ociManifest);
    if (isDigest(reference)) {
      for (const image of await this.imagesOf(tenant, repository)) {
        for (const form of [docker, !docker]) {
          const document = await this.document(tenant, image, form);
          if (document.digest === reference) return document;
        }
      }
      throw new NotFoundError(`manifest ${reference} is not in repository ${repository}`);
    }
    if (!TAG.test(reference)) throw new InvalidInputError(`invalid tag ${JSON.stringify(reference)}`);
    const tag = await this.meta.get(keys.tag(tenant, normalizeReference(`${repository}:${reference}`)));
    if (!tag) throw new NotFoundError(`no tag ${reference} in repository ${repository}`);
    const image = (await this.meta.get(keys.image(tenant, tag.attrs.image as string)))?.attrs as unknown as ImageRecord | undefined;
    if (!image) throw new NotFoundError(`no tag ${reference} in repository ${repository}`);
    return this.document(tenant, image, docker);
  }

  /**
   * Where a blob's bytes are: an image's config, or a layer's uncompressed tar, by the digest
   * of those bytes. Throws NotFoundError and InvalidInputError.
   */
  async blob(tenant: string, repository: string, digest: string): Promise<BlobLocation> {
    checkRepository(repository);
    if (!isDigest(digest)) throw new InvalidInputError(`invalid digest ${JSON.stringify(digest)}`);
    const found = await this.meta.getMany([keys.image(tenant, digest), keys.layer(tenant, digest)]);
    const image = found.get(itemId(keys.image(tenant, digest)))?.attrs as unknown as ImageRecord | undefined;
    if (image) return { key: image.configKey, size: image.configSize, mediaType: MEDIA.ociConfig };
    const layer = found.get(itemId(keys.layer(tenant, digest)))?.attrs as unknown as LayerRecord | undefined;
    if (layer) return { key: layer.blobKey, size: layer.tarSize, mediaType: MEDIA.ociLayer };
    throw new NotFoundError(`blob ${digest} is not in repository ${repository}`);
  }

  /** The tags of a repository, in order, after `last` and at most `limit`. Throws NotFoundError for a repository with none. */
  async tags(tenant: string, repository: string, options: { last?: string; limit?: number } = {}): Promise<string[]> {
    checkRepository(repository);
    const prefix = `${normalizeReference(`${repository}:latest`).slice(0, -'latest'.length)}`;
    const names = (await queryAll(this.meta, keys.tags(tenant))).map((item) => item.sk).filter((sk) => sk.startsWith(prefix) && !sk.slice(prefix.length).includes('/'));
    if (names.length === 0) throw new NotFoundError(`no repository ${repository}`);
    const tags = names.map((sk) => sk.slice(prefix.length)).sort();
    const after = options.last === undefined ? tags : tags.filter((t) => t > options.last!);
    return after.slice(0, options.limit ?? after.length);
  }

  /** The tenant's repositories, in order, after `last` and at most `limit`. */
  async catalog(tenant: string, options: { last?: string; limit?: number } = {}): Promise<string[]> {
    const repositories = new Set((await queryAll(this.meta, keys.tags(tenant))).map((item) => item.sk.slice(0, item.sk.lastIndexOf(':'))));
    const sorted = [...repositories].sort();
    const after = options.last === undefined ? sorted : sorted.filter((r) => r > options.last!);
    return after.slice(0, options.limit ?? after.length);
  }

  /** The config and layer tars' bytes are stored as they are named: the image ID and the DiffIDs. */
  private async document(tenant: string, image: ImageRecord, docker: boolean): Promise<ManifestDocument> {
    const layers = await this.meta.getMany(image.diffIds.map((d) => keys.layer(tenant, d)));
    const manifest = {
      schemaVersion: 2,
      mediaType: docker ? MEDIA.dockerManifest : MEDIA.ociManifest,
      config: { mediaType: docker ? MEDIA.dockerConfig : MEDIA.ociConfig, digest: image.id, size: image.configSize },
      layers: image.diffIds.map((diffId) => {
        const layer = layers.get(itemId(keys.layer(tenant, diffId)))?.attrs as unknown as LayerRecord | undefined;
        if (!layer) throw new NotFoundError(`layer ${diffId} of image ${image.id} is missing`);
        return { mediaType: docker ? MEDIA.dockerLayer : MEDIA.ociLayer, digest: diffId, size: layer.tarSize };
      }),
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    return { mediaType: manifest.mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, bytes };
  }

  /** The images the repository's tags name. */
  private async imagesOf(tenant: string, repository: string): Promise<ImageRecord[]> {
    const tags = await this.tags(tenant, repository).catch(() => [] as string[]);
    const ids = new Set<string>();
    for (const tag of tags) {
      const item = await this.meta.get(keys.tag(tenant, normalizeReference(`${repository}:${tag}`)));
      if (item) ids.add(item.attrs.image as string);
    }
    const records = await this.meta.getMany([...ids].map((id) => keys.image(tenant, id)));
    return [...records.values()].map((item) => item.attrs as unknown as ImageRecord);
  }
}
