import { randomUUID } from 'node:crypto';
import { ConflictError, InvalidInputError, StrataError, TooLargeError, TransactionConditionError } from '../errors.js';
import { blobKeys, keys, type NamespaceId } from '../keys.js';
import type { BlobStore } from '../ports/blob-store.js';
import { itemId, MAX_TRANSACTION_OPS, type MetadataStore, type WriteOp } from '../ports/metadata-store.js';
import type { EventLog, EventType } from './events.js';
import type { IdempotencyOps } from './idempotency.js';
import type { IngestedLayer } from './layer-ingest.js';
import { undoLoad, type LoadJournal } from './load-journal.js';
import { applyLayer, layerNodes, LayerTree } from './layer-tree.js';
import type { Node } from './nodes.js';
import { indexItems } from './packs.js';
import type { ImageRecord, LayerRecord } from './records.js';
import { chainIds, normalizeReference, sha256Digest } from './refs.js';
import type { TreeReader } from './tree-read.js';

/**
 * Persists images: layer records (one per DiffID and tenant), the indexes reads resolve through
 * (a merged chain index, or a committed layer's own index on its parent's stack), then the
 * image record and its tags, last, so nothing points at what is not there yet.
 */
export class ImageStore {
  constructor(
    private readonly meta: MetadataStore,
    private readonly blobs: BlobStore,
    private readonly reader: TreeReader,
    private readonly events: EventLog,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * The merged tree of a loaded image's layers, built in memory with the freshly ingested blob
   * keys. Throws InvalidInputError for a layer the OCI rules refuse (a path twice, a hard link
   * to nothing), so an archive is checked whole before anything of it is recorded.
   */
  mergeLoaded(ingested: readonly IngestedLayer[]): LayerTree {
    return mergeLayers(ingested, (layer) => layer.blobKey);
  }

  /**
   * Records the layers of a loaded image (deduplicated by DiffID) and its merged chain index,
   * and returns the ops that record the image itself (see recordImages). `merged` is what
   * mergeLoaded gave; it is rebuilt only when a layer was already stored under another blob key.
   */
  async prepareLoaded(tenant: string, config: Buffer, ingested: IngestedLayer[], repoTags: readonly string[], merged?: LayerTree, parent?: string): Promise<PreparedImage> {
    const now = this.clock();
    const blobKeyOf = new Map<string, string>();
    // Distinct layers are recorded side by side: a 127-layer image should not pay 127 round trips in a row.
    const distinct = [...new Map(ingested.map((l) => [l.diffId, l])).values()];
    for (let i = 0; i < distinct.length; i += 16) {
      const batch = distinct.slice(i, i + 16);
      const recorded = await Promise.all(batch.map((layer) => this.recordLayer(tenant, layer, now)));
      batch.forEach((layer, j) => {
        blobKeyOf.set(layer.diffId, recorded[j]);
      });
    }
    const chain = chainIds(ingested.map((l) => l.diffId));
    const chainId = chain[chain.length - 1];
    if (await this.meta.get(keys.chain(tenant, chainId))) await this.touchChain(tenant, chainId);
    else {
      const reusable = merged && ingested.every((l) => blobKeyOf.get(l.diffId) === l.blobKey);
      await this.writeChainIndex(tenant, chainId, reusable ? merged : mergeLayers(ingested, (l) => blobKeyOf.get(l.diffId)!));
    }
    return this.imageOps(tenant, config, { diffIds: ingested.map((l) => l.diffId), layerSizes: ingested.map((l) => l.contentBytes), stack: [`k:${chainId}`], ...(parent ? { parent } : {}) }, repoTags);
  }

  /**
   * Records a committed layer and the image on top of `parent`. The new layer gets its own small
   * index on top of the parent's stack, so the cost follows what changed, not the image's size;
   * once a stack is MAX_STACK deep, one merged chain index replaces it.
   */
  async storeCommit(
    tenant: string,
    parent: ImageRecord,
    config: Buffer,
    layer: IngestedLayer,
    repoTags: readonly string[],
    container: { readonly id: string; readonly name: string },
    idempotency?: IdempotencyOps,
  ): Promise<string> {
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
        applyLayer(
          merged,
          layerNodes(layer.toc, blobKey, layer.diffId.slice(7, 19), (p) => visible(merged.get(p))),
        );
        await this.writeChainIndex(tenant, chainId, merged);
      }
      stack = [`k:${chainId}`];
    }
    // The config blob first, then the image record, its tags and the event in one transaction (last, so nothing points at a missing object).
    const image = await this.imageOps(tenant, config, { diffIds, layerSizes: [...parent.layerSizes, layer.contentBytes], stack, parent: parent.id }, repoTags);
    await this.recordImages(tenant, [image], { type: 'container.committed', detail: { container: container.id, name: container.name } }, idempotency);
    return image.id;
  }

  /**
   * Records images in one transaction when they fit, so an archive's images appear together or
   * not at all. A larger archive is recorded in several, under a load journal (load-journal.ts)
   * that undoes the recorded part if a later transaction fails, or after a crash, by the sweep.
   * On a refused or failed transaction, config blobs written for the images are removed.
   */
  async recordImages(
    tenant: string,
    images: readonly PreparedImage[],
    event: { type: EventType; detail: Record<string, unknown> } = { type: 'image.loaded', detail: {} },
    idempotency?: IdempotencyOps,
  ): Promise<void> {
    const tenantOp: WriteOp = { op: 'put', item: { ...keys.tenant(tenant), attrs: { tenant } } };
    // A tag named by two images goes to the last, as if they had been loaded one after another.
    const owner = new Map(images.flatMap((i) => i.tags.map((tag) => [tag, i.id] as const)));
    const ownTags = new Map(images.map((image) => [image, image.tags.filter((t) => owner.get(t) === image.id)]));
    // A tag written under a journal carries its id, so an undo removes only what this load wrote.
    const opsOf = (image: PreparedImage, journalId?: string): WriteOp[] => {
      const tags = ownTags.get(image)!;
      return [
        image.recordOp,
        ...tags.map((tag): WriteOp => ({ op: 'put', item: { ...keys.tag(tenant, tag), attrs: { image: image.id, ...(journalId ? { loadedBy: journalId } : {}) } } })),
        this.events.op(tenant, event.type, { ...event.detail, image: image.id, tags, size: image.size, layers: image.layers, new: image.newConfigKey !== undefined }),
      ];
    };
    const dropConfigs = () => this.blobs.delete(images.flatMap((i) => (i.newConfigKey ? [i.newConfigKey] : []))).catch(() => undefined);
    const extra = idempotency ? 1 : 0;
    // Each image is its record, its own tags and its event; with the tenant item and the key's record.
    const total = images.reduce((n, image) => n + 2 + ownTags.get(image)!.length, 1 + extra);
    if (total <= MAX_TRANSACTION_OPS) {
      try {
        await this.meta.transact([...images.flatMap((image) => opsOf(image)), tenantOp, ...(idempotency ? [idempotency.whole] : [])]);
      } catch (error) {
        if (error instanceof StrataError) await dropConfigs();
        throw error;
      }
      return;
    }

    const journalId = randomUUID();
    const previous = await this.meta.getMany([...owner.keys()].map((tag) => keys.tag(tenant, tag)));
    const journal: LoadJournal = {
      started: this.clock(),
      images: images.flatMap((i) => (i.newConfigKey ? [{ id: i.id, configKey: i.newConfigKey }] : [])),
      tags: [...owner].map(([tag, image]) => {
        const before = previous.get(itemId(keys.tag(tenant, tag)))?.attrs.image as string | undefined;
        return { tag, image, ...(before && before !== image ? { previous: before } : {}) };
      }),
      ...(idempotency ? { idempotency: { key: idempotency.key.sk, fingerprint: idempotency.fingerprint } } : {}),
    };
    if (Buffer.byteLength(JSON.stringify(journal)) > MAX_JOURNAL_BYTES) {
      await dropConfigs();
      throw new TooLargeError(`an archive of ${images.length} images with ${owner.size} tags is too much to load at once; load it in parts`);
    }
    const journalKey = keys.loadJournal(tenant, journalId);
    // Whole images per transaction, as many as fit; the last one also drops the journal.
    const transactions: WriteOp[][] = [[]];
    for (const ops of images.map((image) => opsOf(image, journalId))) {
      if (transactions.at(-1)!.length + ops.length > MAX_TRANSACTION_OPS - 1 - extra) transactions.push([]);
      transactions.at(-1)!.push(...ops);
    }
    transactions.at(-1)!.push({ op: 'delete', key: journalKey }, ...(idempotency ? [idempotency.finish] : []));
    try {
      await this.meta.transact([{ op: 'put', item: { ...journalKey, attrs: { ...journal } }, conditions: [{ kind: 'absent' }] }, tenantOp, ...(idempotency ? [idempotency.begin] : [])]);
      for (const ops of transactions) await this.meta.transact(ops);
    } catch (error) {
      // Undo what was recorded, whether the failure was a refusal or an unknown outcome (the
      // load is not acknowledged either way); if the undo fails too, the sweep does it later.
      await undoLoad(this.meta, this.blobs, this.events, tenant, journalId, journal).catch(() => undefined);
      throw error;
    }
  }

  /** The ops that record an image and its tags; a new image's config blob is written first. */
  private async imageOps(tenant: string, config: Buffer, shape: ImageShape, repoTags: readonly string[]): Promise<PreparedImage> {
    const id = sha256Digest(config);
    const tags = [...new Set(repoTags.map(normalizeReference))];
    if (tags.length > MAX_TAGS_PER_IMAGE) throw new InvalidInputError(`an image may have at most ${MAX_TAGS_PER_IMAGE} tags`);
    if (await this.meta.get(keys.image(tenant, id))) {
      // The same image again: keep what is stored, only move the tags.
      return { id, tags, size: shape.layerSizes.reduce((a, b) => a + b, 0), layers: shape.diffIds.length, recordOp: { op: 'check', key: keys.image(tenant, id), conditions: [{ kind: 'present' }] } };
    }
    const configKey = blobKeys.config(tenant);
    await this.blobs.put(configKey, config);
    const record: Omit<ImageRecord, 'containers'> = {
      id,
      configKey,
      configSize: config.length,
      ...shape,
      size: shape.layerSizes.reduce((a, b) => a + b, 0),
      created: createdOf(config) ?? this.clock(),
    };
    return { id, tags, size: record.size, layers: shape.diffIds.length, newConfigKey: configKey, recordOp: { op: 'update', key: keys.image(tenant, id), set: { ...record }, add: { containers: 0 } } };
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
}

type ImageShape = Pick<ImageRecord, 'diffIds' | 'layerSizes' | 'stack' | 'parent'>;

/** An image ready to be recorded: the op for its record, its tags, and the config blob written for it if it is new. */
export interface PreparedImage {
  readonly id: string;
  readonly tags: readonly string[];
  /** Bytes of its layers' contents, and how many layers: for the event. */
  readonly size: number;
  readonly layers: number;
  readonly recordOp: WriteOp;
  readonly newConfigKey?: string;
}

/** A load journal stays well inside DynamoDB's 400 KB item. */
const MAX_JOURNAL_BYTES = 300_000;

/** Tags are written in the image's transaction (with its record, event and tenant item), which DynamoDB caps at 100 items. */
export const MAX_TAGS_PER_IMAGE = 90;

/** Beyond this many namespaces in a stack, a commit rebuilds one merged chain index instead. */
export const MAX_STACK = 8;

function mergeLayers(ingested: readonly IngestedLayer[], blobKeyOf: (layer: IngestedLayer) => string): LayerTree {
  const merged = new LayerTree();
  for (const layer of ingested) {
    applyLayer(
      merged,
      layerNodes(layer.toc, blobKeyOf(layer), layer.diffId.slice(7, 19), (p) => visible(merged.get(p))),
    );
  }
  return merged;
}

function visible(node: Node | undefined) {
  return node && node.type !== 'whiteout' ? node : undefined;
}

/** The config's `created` (what `docker image ls` shows), in ms; undefined when absent or not a date. */
function createdOf(config: Buffer): number | undefined {
  try {
    const created = Date.parse((JSON.parse(config.toString('utf8')) as { created?: unknown }).created as string);
    return Number.isFinite(created) ? created : undefined;
  } catch {
    return undefined;
  }
}
