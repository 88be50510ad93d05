import { Readable } from 'node:stream';
import { ConflictError, InvalidInputError, NotFoundError, TooLargeError, TransactionConditionError } from '../errors.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { MetadataStore, WriteOp } from '../ports/metadata-store.js';
import { archiveMemberName, imagesFromArchive, dockerArchiveMetadata } from '../tar/archive.js';
import { symlinkDestination } from '../paths.js';
import { decompressing } from '../tar/decompress.js';
import { readTar } from '../tar/tar-reader.js';
import { TarWriter } from '../tar/tar-writer.js';
import { ingestLayer, type IngestedLayer, type IngestLimits } from './layer-ingest.js';
import { applyLayer, layerNodes, LayerTree } from './layer-tree.js';
import type { Node } from './nodes.js';
import { indexItems } from './packs.js';
import type { TreeReader } from './tree-read.js';
import type { ImageRecord, LayerRecord } from './records.js';
import { chainIds, looksLikeImageId, normalizeReference, sha256Digest } from './refs.js';
import type { View } from './view.js';

/** JSON members of an archive (manifests, configs) are small; anything larger is a layer. */
const MAX_JSON_MEMBER = 8 << 20;
/** Manifests and configs are held in memory until the end of the archive, so their total is capped. */
const MAX_JSON_TOTAL = 64 << 20;

export interface ImageSummary {
  readonly id: string;
  readonly tags: string[];
  readonly created: number;
  readonly size: number;
  /** Bytes of layers this image shares with at least one other image. */
  readonly sharedSize: number;
  readonly containers: number;
  readonly layers: { diffId: string; size: number }[];
  readonly parent?: string;
}

/**
 * Images: load from docker-archive or OCI layout tars, save back to docker-archive, tags, and
 * the read-only view of an image's files. Layers are stored once per tenant, keyed by DiffID.
 */
export class ImageService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly reader: TreeReader,
    private readonly limits: IngestLimits = {},
    private readonly clock: () => number = Date.now,
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
        layers.set(name, await ingestLayer(chain(first, rest), this.blobs, blobKeys.layer(tenant), this.limits));
      }
      const images = imagesFromArchive(json);
      const results: { id: string; tags: string[] }[] = [];
      const used = new Set<string>();
      for (const image of images) {
        const ingested = image.layerMembers.map((member) => {
          const name = aliases.get(member) ?? member;
          const layer = layers.get(name);
          if (!layer) throw new InvalidInputError(`archive lists layer ${member} but does not contain it`);
          used.add(name);
          return layer;
        });
        ingested.forEach((layer, i) => {
          if (image.diffIds[i] !== layer.diffId) throw new InvalidInputError(`layer ${i} has DiffID ${layer.diffId} but the config says ${image.diffIds[i]}`);
        });
        const id = await this.storeImage(tenant, image.config, ingested, image.repoTags);
        results.push({ id, tags: image.repoTags.map(normalizeReference) });
      }
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

  /** Records the layers of a loaded image (deduplicated by DiffID), its merged chain index, then the image. */
  private async storeImage(tenant: string, config: Buffer, ingested: IngestedLayer[], repoTags: readonly string[]): Promise<string> {
    const now = this.clock();
    const blobKeyOf = new Map<string, string>();
    // Distinct layers are recorded side by side: a 127-layer image should not pay 127 round trips in a row.
    const distinct = [...new Map(ingested.map((l) => [l.diffId, l])).values()];
    for (let i = 0; i < distinct.length; i += 16) {
      const batch = distinct.slice(i, i + 16);
      const recorded = await Promise.all(batch.map((layer) => this.recordLayer(tenant, layer, now)));
      batch.forEach((layer, j) => blobKeyOf.set(layer.diffId, recorded[j]));
    }
    const chain = chainIds(ingested.map((l) => l.diffId));
    const chainId = chain[chain.length - 1];
    if (await this.meta.get(keys.chain(tenant, chainId))) await this.touchChain(tenant, chainId);
    else {
      const merged = new LayerTree();
      for (const layer of ingested) {
        applyLayer(merged, layerNodes(layer.toc, blobKeyOf.get(layer.diffId)!, layer.diffId.slice(7, 19), (p) => visible(merged.get(p))));
      }
      await this.writeChainIndex(tenant, chainId, merged);
    }
    return this.putImage(tenant, config, { diffIds: ingested.map((l) => l.diffId), layerSizes: ingested.map((l) => l.contentBytes), stack: [`k:${chainId}`] }, repoTags);
  }

  /**
   * Records a committed layer and the image on top of `parent`. The new layer gets its own small
   * index on top of the parent's stack, so the cost follows what changed, not the image's size;
   * once a stack is MAX_STACK deep, one merged chain index replaces it.
   */
  async storeCommit(tenant: string, parent: ImageRecord, config: Buffer, layer: IngestedLayer, repoTags: readonly string[]): Promise<string> {
    const blobKey = await this.recordLayer(tenant, layer, this.clock());
    const diffIds = [...parent.diffIds, layer.diffId];
    let stack: NamespaceId[];
    if (parent.stack.length < MAX_STACK) {
      await this.writeLayerIndex(tenant, layer, blobKey);
      stack = [`l:${layer.diffId}`, ...parent.stack];
    } else {
      const chain = chainIds(diffIds);
      const chainId = chain[chain.length - 1];
      if (await this.meta.get(keys.chain(tenant, chainId))) await this.touchChain(tenant, chainId);
      else {
        const merged = await this.flatten(tenant, parent);
        applyLayer(merged, layerNodes(layer.toc, blobKey, layer.diffId.slice(7, 19), (p) => visible(merged.get(p))));
        await this.writeChainIndex(tenant, chainId, merged);
      }
      stack = [`k:${chainId}`];
    }
    return this.putImage(tenant, config, { diffIds, layerSizes: [...parent.layerSizes, layer.contentBytes], stack, parent: parent.id }, repoTags);
  }

  /** Writes the config blob, then the image record and its tags in one transaction (last, so nothing points at a missing object). */
  private async putImage(tenant: string, config: Buffer, shape: Pick<ImageRecord, 'diffIds' | 'layerSizes' | 'stack' | 'parent'>, repoTags: readonly string[]): Promise<string> {
    const id = sha256Digest(config);
    const tags = [...new Set(repoTags.map(normalizeReference))];
    const tagOps = tags.map((tag): WriteOp => ({ op: 'put', item: { ...keys.tag(tenant, tag), attrs: { image: id } } }));
    if (tagOps.length > 90) throw new InvalidInputError('at most 90 tags per image');
    const tenantOp: WriteOp = { op: 'put', item: { ...keys.tenant(tenant), attrs: { tenant } } };
    if (await this.meta.get(keys.image(tenant, id))) {
      // The same image again: keep what is stored, only move the tags.
      await this.meta.transact([{ op: 'check', key: keys.image(tenant, id), conditions: [{ kind: 'present' }] }, tenantOp, ...tagOps]);
      return id;
    }
    const configKey = blobKeys.config(tenant);
    await this.blobs.put(configKey, config);
    const record: Omit<ImageRecord, 'containers'> = {
      id,
      configKey,
      configSize: config.length,
      ...shape,
      size: shape.layerSizes.reduce((a, b) => a + b, 0),
      created: this.clock(),
    };
    await this.meta.transact([{ op: 'update', key: keys.image(tenant, id), set: { ...record }, add: { containers: 0 } }, tenantOp, ...tagOps]);
    return id;
  }

  /** Records a layer once per tenant; a second copy of the same DiffID is dropped. Returns the blob key in use. */
  private async recordLayer(tenant: string, layer: IngestedLayer, now: number): Promise<string> {
    const record: LayerRecord = { diffId: layer.diffId, blobKey: layer.blobKey, tarSize: layer.tarSize, contentBytes: layer.contentBytes, created: now, lastUsed: now };
    try {
      await this.meta.transact([{ op: 'put', item: { ...keys.layer(tenant, layer.diffId), attrs: { ...record } }, conditions: [{ kind: 'absent' }] }]);
      return layer.blobKey;
    } catch (error) {
      if (!(error instanceof TransactionConditionError)) throw error;
      const existing = await this.meta.get(keys.layer(tenant, layer.diffId));
      await this.meta.transact([{ op: 'update', key: keys.layer(tenant, layer.diffId), set: { lastUsed: now }, conditions: [{ kind: 'present' }] }]);
      if (existing!.attrs.blobKey !== layer.blobKey) await this.blobs.delete([layer.blobKey]);
      return existing!.attrs.blobKey as string;
    }
  }

  /** The merged index of a chain of layers: one item per visible path, built once per ChainID. */
  private async writeChainIndex(tenant: string, chainId: string, merged: LayerTree): Promise<void> {
    await this.writeNodes(tenant, `k:${chainId}`, merged);
    await this.meta.transact([{ op: 'put', item: { ...keys.chain(tenant, chainId), attrs: { chainId, built: this.clock(), paths: merged.nodes.size } } }]);
  }

  /** A reused chain index counts as new for the sweep's grace period; if it was swept meanwhile, it is rebuilt. */
  private async touchChain(tenant: string, chainId: string): Promise<void> {
    try {
      await this.meta.transact([{ op: 'update', key: keys.chain(tenant, chainId), set: { built: this.clock() }, conditions: [{ kind: 'present' }] }]);
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new ConflictError('the image index was being reclaimed; load again');
      throw error;
    }
  }

  private async writeLayerIndex(tenant: string, layer: IngestedLayer, blobKey: string): Promise<void> {
    const tree = layerNodes(layer.toc, blobKey, layer.diffId.slice(7, 19), () => undefined);
    await this.writeNodes(tenant, `l:${layer.diffId}`, tree);
    await this.meta.transact([{ op: 'update', key: keys.layer(tenant, layer.diffId), set: { indexed: true }, conditions: [{ kind: 'present' }] }]);
  }

  private async writeNodes(tenant: string, ns: NamespaceId, tree: LayerTree): Promise<void> {
    await this.meta.writeMany(indexItems(tenant, ns, tree).map((item) => ({ op: 'put' as const, item })));
  }

  /** Every visible node of an image, for rebuilding a chain index when a stack grows too deep. */
  private async flatten(tenant: string, image: ImageRecord): Promise<LayerTree> {
    const tree = new LayerTree();
    for (const ns of [...image.stack].reverse()) {
      const layer = new LayerTree();
      const pending = ['/'];
      while (pending.length) {
        const dir = pending.pop()!;
        for await (const [name, node] of this.reader.partition(tenant, ns, dir)) {
          const path = dir === '/' ? `/${name}` : `${dir}/${name}`;
          layer.set(path, node);
          if (node.type === 'dir') pending.push(path);
        }
      }
      applyLayer(tree, layer);
    }
    return tree;
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

  view(tenant: string, image: ImageRecord): View {
    return { tenant, lowers: image.stack, mounts: [], readOnly: true };
  }

  async tagsByImage(tenant: string): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    let after: string | undefined;
    for (;;) {
      const page = await this.meta.query(keys.tags(tenant), { after });
      for (const item of page.items) {
        const id = item.attrs.image as string;
        out.set(id, [...(out.get(id) ?? []), item.sk]);
      }
      if (!page.last) return out;
      after = page.last;
    }
  }

  async records(tenant: string): Promise<ImageRecord[]> {
    const out: ImageRecord[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.meta.query(keys.images(tenant), { after });
      out.push(...page.items.map((i) => i.attrs as unknown as ImageRecord));
      if (!page.last) return out;
      after = page.last;
    }
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
    ]);
    return tag;
  }

  async untag(tenant: string, rawTag: string): Promise<void> {
    const tag = normalizeReference(rawTag);
    try {
      await this.meta.transact([{ op: 'delete', key: keys.tag(tenant, tag), conditions: [{ kind: 'present' }] }]);
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new NotFoundError(`no such tag: ${rawTag}`);
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
      await this.meta.transact(untag.slice(0, 100));
      return { untagged: tags, deleted: [] };
    }
    try {
      const ops: WriteOp[] = [{ op: 'delete', key: keys.image(tenant, image.id), conditions: [{ kind: 'equals', field: 'containers', value: 0 }] }, ...untag];
      await this.meta.transact(ops.slice(0, 100));
    } catch (error) {
      if (error instanceof TransactionConditionError) throw new ConflictError(`image ${image.id} is now used by a container`);
      throw error;
    }
    return { untagged: tags, deleted: [image.id] };
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

/** Beyond this many namespaces in a stack, a commit rebuilds one merged chain index instead. */
export const MAX_STACK = 8;

function visible(node: Node | undefined) {
  return node && node.type !== 'whiteout' ? node : undefined;
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

