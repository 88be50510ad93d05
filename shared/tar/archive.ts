import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors.js';
import { layerEntryPath } from './layer-paths.js';

/**
 * Image archive metadata: which images a `docker save` archive or an OCI image layout holds,
 * worked out from its small JSON members (the layer blobs themselves are streamed elsewhere),
 * and the JSON members of a `docker save` archive for images we export.
 */

export interface ArchiveImage {
  /** `sha256:<hex>` of the config bytes: the image ID. */
  configDigest: string;
  /** The config JSON exactly as stored; its digest is the image ID, so never re-serialise it. */
  config: Buffer;
  /** Archive member names (as given by `archiveMemberName`) of the layer blobs, bottom first. */
  layerMembers: string[];
  /** The config's `rootfs.diff_ids`, one per layer member: sha256 of each layer's uncompressed tar. */
  diffIds: string[];
  /** Image references to tag the image with, e.g. `docker.io/library/alpine:3.20` or `alpine:3.20`. */
  repoTags: string[];
  /** The image it was built on, as Docker's manifest.json says (`Parent`); only a hint. */
  parent?: string;
}

/** Members keyed by their name in the archive (any spelling: `./x`, `/x`, `x`). Layer blobs may be left out. */
export type ArchiveMembers = ReadonlyMap<string, Buffer>;

/**
 * The canonical spelling of an archive member name (`./blobs//sha256/x` -> `blobs/sha256/x`),
 * used for every name this module returns; normalise member names read from the archive with it
 * to match them. Names that climb out of the archive (`../x`) are InvalidInputError.
 */
export function archiveMemberName(raw: string): string {
  return layerEntryPath(raw).slice(1);
}

/** Picks the format by the files present; docker 25+ writes both, and then manifest.json wins. */
export function imagesFromArchive(members: ArchiveMembers): ArchiveImage[] {
  const names = byCanonicalName(members);
  if (names.has('manifest.json')) return imagesFromDockerArchive(members);
  if (names.has('index.json')) return imagesFromOciLayout(members);
  throw new InvalidInputError('not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)');
}

/** Images of a `docker save` archive: manifest.json is `[{Config, RepoTags, Layers}]`. */
export function imagesFromDockerArchive(members: ArchiveMembers): ArchiveImage[] {
  const names = byCanonicalName(members);
  const manifest = parseJson(need(names, 'manifest.json'), 'manifest.json');
  if (!Array.isArray(manifest)) throw new InvalidInputError('manifest.json must be a JSON array');
  if (manifest.length === 0) throw new InvalidInputError('manifest.json lists no images');
  return manifest.map((entry: unknown, i) => {
    const where = `manifest.json entry ${i}`;
    if (!isObject(entry)) throw new InvalidInputError(`${where} must be an object`);
    const configName = archiveMemberName(stringField(entry, 'Config', where));
    const config = need(names, configName);
    const configDigest = sha256Digest(config);
    // Docker names the config after its digest (`<hex>.json`, or `blobs/sha256/<hex>` since 25).
    const claimed = /^(?:([0-9a-f]{64})\.json|blobs\/sha256\/([0-9a-f]{64}))$/.exec(configName);
    if (claimed && `sha256:${claimed[1] ?? claimed[2]}` !== configDigest) {
      throw new InvalidInputError(`config ${configName} does not match its digest (it hashes to ${configDigest})`);
    }
    const layers = entry.Layers;
    if (!Array.isArray(layers) || !layers.every((l) => typeof l === 'string')) {
      throw new InvalidInputError(`${where}: Layers must be an array of strings`);
    }
    const tags = entry.RepoTags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t !== '')) {
      throw new InvalidInputError(`${where}: RepoTags must be an array of strings`);
    }
    return {
      configDigest,
      config,
      layerMembers: layers.map((l: string) => layerMemberName(l, where)),
      diffIds: diffIdsOf(config, layers.length, configName),
      repoTags: [...tags],
      ...(typeof entry.Parent === 'string' && /^sha256:[0-9a-f]{64}$/.test(entry.Parent) ? { parent: entry.Parent } : {}),
    };
  });
}

/**
 * Images of an OCI image layout: index.json -> manifest (through nested indexes, picking
 * linux/amd64 or else the first platform present) -> config and layer blobs under
 * `blobs/<alg>/<hex>`. Every JSON blob read is checked against its descriptor's digest and size.
 */
export function imagesFromOciLayout(members: ArchiveMembers): ArchiveImage[] {
  const names = byCanonicalName(members);
  const index = parseJson(need(names, 'index.json'), 'index.json');
  if (!isObject(index) || !Array.isArray(index.manifests)) throw new InvalidInputError('index.json must hold a manifests array');
  if (index.manifests.length === 0) throw new InvalidInputError('index.json lists no images');

  // Several tags of one image appear as several descriptors of the same manifest.
  const byManifest = new Map<string, ArchiveImage>();
  for (const [i, descriptor] of index.manifests.entries()) {
    const where = `index.json manifests[${i}]`;
    const desc = parseDescriptor(descriptor, where);
    const { manifestDigest, image } = resolveImage(names, desc, where, 0);
    const seen = byManifest.get(manifestDigest);
    const target = seen ?? image;
    if (!seen) byManifest.set(manifestDigest, image);
    const tag = tagOf(desc.annotations);
    if (tag !== undefined && !target.repoTags.includes(tag)) target.repoTags.push(tag);
  }
  return [...byManifest.values()];
}

/**
 * The JSON members of a classic `docker save` archive for these images: `<hex>.json` configs,
 * `manifest.json` naming the layers `<diffhex>/layer.tar`, and `repositories` when any image is
 * tagged. The caller adds each layer's uncompressed tar as `<diffhex>/layer.tar` (once per DiffID).
 * Loading the result gives back the same image IDs and DiffIDs.
 */
export function dockerArchiveMetadata(images: readonly { config: Buffer; configDigest: string; diffIds: readonly string[]; repoTags: readonly string[] }[]): Map<string, Buffer> {
  const members = new Map<string, Buffer>();
  const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories = new Map<string, Map<string, string>>(); // a Map: tags like `__proto__:x` must stay data
  for (const image of images) {
    const digest = sha256Digest(image.config);
    if (digest !== image.configDigest) throw new InvalidInputError(`config bytes hash to ${digest}, not ${image.configDigest}`);
    const diffIds = diffIdsOf(image.config, image.diffIds.length, image.configDigest);
    if (diffIds.some((d, i) => d !== image.diffIds[i])) throw new InvalidInputError(`diffIds do not match rootfs.diff_ids of ${image.configDigest}`);
    const configName = `${hexOf(digest)}.json`;
    const layers = diffIds.map((d) => `${hexOf(d)}/layer.tar`);
    members.set(configName, image.config);
    manifest.push({ Config: configName, RepoTags: image.repoTags.length > 0 ? [...image.repoTags] : null, Layers: layers });
    const top = diffIds.at(-1);
    for (const ref of image.repoTags) {
      const split = splitTag(ref);
      if (!split || !top) continue;
      if (!repositories.has(split.repo)) repositories.set(split.repo, new Map());
      repositories.get(split.repo)!.set(split.tag, hexOf(top));
    }
  }
  members.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
  if (repositories.size > 0) {
    const json = Object.fromEntries([...repositories].map(([repo, tags]) => [repo, Object.fromEntries(tags)]));
    members.set('repositories', Buffer.from(JSON.stringify(json)));
  }
  return members;
}

// ---- OCI descriptors -------------------------------------------------------------------------

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);
const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
const CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
const LAYER_TYPE = /^application\/vnd\.(?:oci\.image\.layer(?:\.nondistributable)?\.v1\.tar(?:\+gzip|\+zstd)?|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar(?:\.gzip)?)$/;
/** Nested indexes deeper than this are not something a real tool writes. */
const MAX_INDEX_DEPTH = 4;

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw new InvalidInputError(`${where} must be a descriptor object`);
  const { mediaType, digest, size, annotations, platform } = value;
  if (mediaType !== undefined && typeof mediaType !== 'string') throw new InvalidInputError(`${where}: mediaType must be a string`);
  if (typeof digest !== 'string' || !/^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/.test(digest)) {
    throw new InvalidInputError(`${where}: unsupported or malformed digest ${JSON.stringify(String(digest).slice(0, 80))}`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new InvalidInputError(`${where}: size must be a non-negative integer`);
  const notes: Record<string, string> = Object.create(null);
  if (annotations !== undefined) {
    if (!isObject(annotations)) throw new InvalidInputError(`${where}: annotations must be an object`);
    for (const [k, v] of Object.entries(annotations)) if (typeof v === 'string') notes[k] = v;
  }
  return {
    mediaType,
    digest,
    size,
    annotations: notes,
    platform: isObject(platform) ? { os: stringOr(platform.os), architecture: stringOr(platform.architecture) } : undefined,
  };
}

function blobName(digest: string): string {
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

/** The blob a descriptor points to, checked against the descriptor's digest and size. */
function blobOf(names: Map<string, Buffer>, desc: Descriptor, where: string): Buffer {
  const blob = need(names, blobName(desc.digest));
  const [alg, hex] = desc.digest.split(':');
  if (blob.length !== desc.size) throw new InvalidInputError(`${where}: blob ${desc.digest} is ${blob.length} bytes, descriptor says ${desc.size}`);
  if (createHash(alg!).update(blob).digest('hex') !== hex) throw new InvalidInputError(`${where}: blob ${blobName(desc.digest)} does not match its digest`);
  return blob;
}

function resolveImage(names: Map<string, Buffer>, desc: Descriptor, where: string, depth: number): { manifestDigest: string; image: ArchiveImage } {
  const doc = parseJson(blobOf(names, desc, where), blobName(desc.digest));
  if (!isObject(doc)) throw new InvalidInputError(`${where}: ${desc.digest} is not a JSON object`);
  if (typeof doc.mediaType === 'string' && desc.mediaType !== undefined && doc.mediaType !== desc.mediaType) {
    throw new InvalidInputError(`${where}: descriptor says ${desc.mediaType} but the blob says ${doc.mediaType}`);
  }
  const mediaType = desc.mediaType ?? stringOr(doc.mediaType);
  const isIndex = mediaType ? INDEX_TYPES.has(mediaType) : Array.isArray(doc.manifests);
  const isManifest = mediaType ? MANIFEST_TYPES.has(mediaType) : isObject(doc.config) && Array.isArray(doc.layers);

  if (isIndex) {
    if (depth >= MAX_INDEX_DEPTH) throw new InvalidInputError(`${where}: image indexes nested too deeply`);
    if (!Array.isArray(doc.manifests)) throw new InvalidInputError(`${where}: index ${desc.digest} has no manifests array`);
    const choices = doc.manifests.map((m, i) => parseDescriptor(m, `${where} -> manifests[${i}]`));
    const chosen = pickPlatform(names, choices);
    if (!chosen) throw new InvalidInputError(`${where}: none of the platforms of index ${desc.digest} is in the archive`);
    return resolveImage(names, chosen, `${where} -> ${chosen.digest}`, depth + 1);
  }
  if (!isManifest) throw new InvalidInputError(`${where}: unsupported manifest media type ${JSON.stringify(mediaType ?? 'unknown')}`);

  const configDesc = parseDescriptor(doc.config, `${where} config`);
  if (!configDesc.mediaType || !CONFIG_TYPES.has(configDesc.mediaType)) {
    throw new InvalidInputError(`${where}: not a container image (config media type ${JSON.stringify(configDesc.mediaType ?? 'missing')})`);
  }
  const config = blobOf(names, configDesc, `${where} config`);
  if (!Array.isArray(doc.layers)) throw new InvalidInputError(`${where}: manifest has no layers array`);
  const layers = doc.layers.map((l, i) => parseDescriptor(l, `${where} layers[${i}]`));
  for (const layer of layers) {
    if (!layer.mediaType || !LAYER_TYPE.test(layer.mediaType)) {
      throw new InvalidInputError(`${where}: unsupported layer media type ${JSON.stringify(layer.mediaType ?? 'missing')}`);
    }
  }
  return {
    manifestDigest: desc.digest,
    image: {
      configDigest: sha256Digest(config),
      config,
      layerMembers: layers.map((l) => blobName(l.digest)),
      diffIds: diffIdsOf(config, layers.length, blobName(configDesc.digest)),
      repoTags: [],
    },
  };
}

/**
 * linux/amd64 if present, else the first manifest present. Archives often hold one platform of a
 * multi-platform index, and BuildKit adds attestation manifests that are not images.
 */
function pickPlatform(names: Map<string, Buffer>, choices: Descriptor[]): Descriptor | undefined {
  const present = choices.filter((d) => names.has(blobName(d.digest)) && d.annotations['vnd.docker.reference.type'] !== 'attestation-manifest' && d.platform?.os !== 'unknown');
  return present.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64') ?? present[0];
}

/** containerd's annotation holds the full reference; the OCI one is often only the tag. */
function tagOf(annotations: Record<string, string>): string | undefined {
  const tag = annotations['io.containerd.image.name'] ?? annotations['org.opencontainers.image.ref.name'];
  return tag === '' ? undefined : tag;
}

// ---- shared helpers ------------------------------------------------------------------------

/** The config's rootfs.diff_ids, which must name exactly one DiffID per layer. */
function diffIdsOf(config: Buffer, layerCount: number, where: string): string[] {
  const json = parseJson(config, where);
  const rootfs = isObject(json) ? json.rootfs : undefined;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids)) {
    throw new InvalidInputError(`${where}: config has no rootfs of type layers with diff_ids`);
  }
  const diffIds = rootfs.diff_ids;
  if (!diffIds.every((d): d is string => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d))) {
    throw new InvalidInputError(`${where}: rootfs.diff_ids must be sha256 digests`);
  }
  if (diffIds.length !== layerCount) {
    throw new InvalidInputError(`${where}: config lists ${diffIds.length} layers in rootfs.diff_ids but the manifest has ${layerCount}`);
  }
  return diffIds;
}

/** Canonical name -> bytes; two members that name the same file make the archive ambiguous. */
function byCanonicalName(members: ArchiveMembers): Map<string, Buffer> {
  const names = new Map<string, Buffer>();
  for (const [raw, bytes] of members) {
    const name = archiveMemberName(raw);
    if (names.has(name)) throw new InvalidInputError(`archive holds ${JSON.stringify(name)} more than once`);
    names.set(name, bytes);
  }
  return names;
}

function layerMemberName(raw: string, where: string): string {
  const name = archiveMemberName(raw);
  if (name === '') throw new InvalidInputError(`${where}: layer ${JSON.stringify(raw)} names no file`);
  return name;
}

/** A member the metadata names is not among the members given; `member` says which. */
export class MissingMemberError extends InvalidInputError {
  constructor(readonly member: string) {
    super(`archive is missing ${JSON.stringify(member)}`);
  }
}

function need(names: Map<string, Buffer>, name: string): Buffer {
  const bytes = names.get(name);
  if (!bytes) throw new MissingMemberError(name);
  return bytes;
}

function parseJson(bytes: Buffer, name: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new InvalidInputError(`${name} is not valid JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringField(obj: Record<string, unknown>, key: string, where: string): string {
  const value = obj[key];
  if (typeof value !== 'string' || value === '') throw new InvalidInputError(`${where}: ${key} must be a non-empty string`);
  return value;
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function hexOf(digest: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!match) throw new InvalidInputError(`malformed digest ${JSON.stringify(digest.slice(0, 80))}`);
  return match[1]!;
}

/** `repo:tag` -> parts; the tag is after the last ':' that follows the last '/'. Digest references have no tag. */
function splitTag(ref: string): { repo: string; tag: string } | undefined {
  if (ref.includes('@')) return undefined;
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}
