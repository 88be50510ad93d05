import type { Readable } from 'node:stream';
import type { ContainerService } from './containers.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { checkFileBytes, checkId, checkMtime, DEFAULT_MAX_FILE_BYTES } from './limits.js';
import type { ItemKey } from '../ports/metadata-store.js';
import type { Proof, Resolver } from './resolver.js';
import type { ImageService } from './images.js';
import type { ReadCopies } from './read-copies.js';
import type { Extent, FileMeta } from './nodes.js';
import { holeBytes, MAX_COPIED_HOLE_BYTES, statOf, type DirPage, type FileStat, type TreeReader } from './tree-read.js';
import { type SetAttributes, StaleViewError, type TreeWriter, type WritePreconditions } from './tree-write.js';
import type { View } from './view.js';
import type { VolumeService } from './volumes.js';

/** Which tree a file operation addresses. */
export type TreeTarget = { readonly kind: 'image'; readonly ref: string } | { readonly kind: 'container'; readonly ref: string } | { readonly kind: 'volume'; readonly name: string };

/**
 * File operations on images (read-only), containers and volumes, by name. It only finds the
 * view; the tree reader and writer do the work.
 */
export class FileService {
  constructor(
    private readonly images: ImageService,
    private readonly containers: ContainerService,
    private readonly volumes: VolumeService,
    private readonly reader: TreeReader,
    private readonly writer: TreeWriter,
    private readonly copies: ReadCopies,
    private readonly maxFileBytes: number = DEFAULT_MAX_FILE_BYTES,
  ) {}

  /**
   * The view a target names. Only reads that fetch the container's record alongside the path
   * (`confirmed`) may use cached container records; everything else looks the container up.
   */
  private async viewOf(
    tenant: string,
    target: TreeTarget,
    options: { cache?: boolean } = {},
  ): Promise<{ view: View; proof?: Proof; cached?: boolean; forget?: () => void; touch?: () => Promise<void> }> {
    switch (target.kind) {
      case 'image':
        return { view: this.images.view(tenant, await this.images.resolve(tenant, target.ref)) };
      case 'volume': {
        const record = await this.volumes.record(tenant, target.name);
        return { view: this.volumes.view(tenant, record), touch: () => this.volumes.touch(tenant, record) };
      }
      case 'container': {
        const { view, record, proof, cached } = await this.containers.view(tenant, target.ref, { cache: options.cache ?? false });
        return { view, proof, cached, forget: () => this.containers.forget(tenant, record), touch: () => this.containers.touch(tenant, record) };
      }
    }
  }

  async stat(tenant: string, target: TreeTarget, path: string, options: { follow?: boolean } = {}): Promise<FileStat> {
    return this.confirmed(tenant, target, async (view, extra, resolver) => {
      const { resolved } = await this.reader.existing(view, path, options.follow ?? true, extra, resolver);
      return statOf(resolved.absolutePath, resolved.node);
    });
  }

  /** Reads a file: one metadata round trip for the container and the path, one ranged GET per extent. */
  async read(tenant: string, target: TreeTarget, path: string, range?: { start: number; end?: number }): Promise<{ stat: FileStat; start: number; end: number; body: Readable; extents: Extent[] }> {
    return this.confirmed(tenant, target, (view, extra, resolver) => this.reader.read(view, path, range, extra, resolver));
  }

  /**
   * Runs a read that fetches the container's record in the same round trip as the path, so a
   * cached record can be used and confirmed at no extra cost. If the record is gone, a cached
   * name may belong to a new container by now: it is looked up afresh once. (The body of a read
   * opens its blob only when read, so a discarded one costs nothing.)
   */
  private async confirmed<T>(tenant: string, target: TreeTarget, attempt: (view: View, extra: ItemKey[], resolver: Resolver) => Promise<T>): Promise<T> {
    for (let round = 0; ; round++) {
      const found = await this.viewOf(tenant, target, { cache: round === 0 });
      const resolver = this.reader.resolver();
      let outcome: { value: T } | { error: unknown };
      try {
        outcome = { value: await attempt(found.view, found.proof ? [found.proof.key] : [], resolver) };
      } catch (error) {
        outcome = { error };
      }
      if (found.proof && resolver.confirms(found.proof) === false) {
        found.forget?.();
        // A fresh record fails its proof when a fork moved the container's top meanwhile.
        if (found.cached || round < 2) continue;
        throw new NotFoundError(`no such container: ${target.kind === 'container' ? target.ref : ''}`);
      }
      if ('error' in outcome) throw outcome.error;
      return outcome.value;
    }
  }

  /** True when a copy of these bytes for a 303 would be refused: more holes than it may write out. */
  tooSparseToCopy(extents: readonly Extent[]): boolean {
    return holeBytes(extents) > MAX_COPIED_HOLE_BYTES;
  }

  /** A blob holding the bytes of a read, for a presigned download that stays valid `validForMs`; made once per content. */
  copyOut(tenant: string, extents: readonly Extent[], validForMs: number): Promise<{ key: string; reused: boolean }> {
    return this.copies.copyOf(tenant, extents, validForMs);
  }

  async list(tenant: string, target: TreeTarget, path: string, options: { cursor?: string; limit?: number } = {}): Promise<DirPage> {
    return this.confirmed(tenant, target, (view, extra, resolver) => this.reader.list(view, path, options, extra, resolver));
  }

  async writeFile(tenant: string, target: TreeTarget, path: string, body: Readable | Buffer | { readonly copyOf: string }, options: WritePreconditions & Partial<FileMeta> = {}): Promise<FileStat> {
    checkMeta(options);
    if (Buffer.isBuffer(body)) checkFileBytes(body.length, 'file size', this.maxFileBytes);
    return this.confirmedWrite(tenant, target, Buffer.isBuffer(body) || 'copyOf' in body, (view, proof) => this.writer.writeFile(view, path, body, options, proof));
  }

  async writeRange(tenant: string, target: TreeTarget, path: string, position: number | 'end', body: Readable | Buffer, options: WritePreconditions = {}): Promise<FileStat> {
    if (position !== 'end') checkFileBytes(position + (Buffer.isBuffer(body) ? body.length : 0), 'offset + length', this.maxFileBytes);
    return this.confirmedWrite(tenant, target, Buffer.isBuffer(body), (view, proof) => this.writer.writeRange(view, path, position, body, options, proof));
  }

  /**
   * A write on a cached container record, confirmed as reads are: the writer fetches the proof
   * with the path's nodes before any byte moves and refuses (StaleViewError) if it fails, and
   * the write is then tried once on a fresh lookup. The transaction itself fails if the
   * container goes after that (its size counter is gone).
   */
  private async confirmedWrite<T>(tenant: string, target: TreeTarget, resendable: boolean, write: (view: View, proof: Proof | undefined) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.viewOf(tenant, target, { cache: attempt === 0 });
      try {
        const result = await write(found.view, found.proof);
        await found.touch?.();
        return result;
      } catch (error) {
        if (!(error instanceof StaleViewError)) throw error;
        found.forget?.();
        // A stream already read cannot be written again: the client sends it again.
        if (error.afterUpload && !resendable) throw new ConflictError('the container this name gave was replaced or forked while the write ran; send it again');
        // A fresh record can be stale too: a fork moved its top meanwhile.
        if (attempt >= 2) throw new ConflictError('the container was forked repeatedly while the write ran; try again');
      }
    }
  }

  /**
   * A change on a freshly looked-up view, run once more on a new lookup if a fork sealed the
   * container's layer between the lookup and the change's transaction (nothing was written).
   * A change that lands pushes back the expiry of a tree that asks for it.
   */
  private async onFreshView<T>(tenant: string, target: TreeTarget, change: (view: View) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const found = await this.viewOf(tenant, target);
        const result = await change(found.view);
        await found.touch?.();
        return result;
      } catch (error) {
        if (!(error instanceof StaleViewError) || attempt > 0) throw staleAsConflict(error);
      }
    }
  }

  async truncate(tenant: string, target: TreeTarget, path: string, size: number, options: WritePreconditions = {}): Promise<FileStat> {
    checkFileBytes(size, 'size', this.maxFileBytes);
    return this.onFreshView(tenant, target, (view) => this.writer.truncate(view, path, size, options));
  }

  async mkdir(tenant: string, target: TreeTarget, path: string, options: Partial<FileMeta> & { parents?: boolean } = {}): Promise<FileStat> {
    return this.onFreshView(tenant, target, (view) => this.writer.mkdir(view, path, options));
  }

  async symlink(tenant: string, target: TreeTarget, path: string, linkTarget: string): Promise<FileStat> {
    return this.onFreshView(tenant, target, (view) => this.writer.symlink(view, path, linkTarget));
  }

  async link(tenant: string, target: TreeTarget, existing: string, path: string): Promise<FileStat> {
    return this.onFreshView(tenant, target, (view) => this.writer.link(view, existing, path));
  }

  async rename(tenant: string, target: TreeTarget, from: string, to: string): Promise<FileStat> {
    return this.onFreshView(tenant, target, (view) => this.writer.rename(view, from, to));
  }

  async setAttributes(tenant: string, target: TreeTarget, path: string, attributes: SetAttributes, options: WritePreconditions = {}): Promise<FileStat> {
    checkMeta(attributes);
    return this.onFreshView(tenant, target, (view) => this.writer.setAttributes(view, path, attributes, options));
  }

  async remove(tenant: string, target: TreeTarget, path: string, options: WritePreconditions & { recursive?: boolean } = {}): Promise<void> {
    return this.onFreshView(tenant, target, (view) => this.writer.remove(view, path, options));
  }
}

function staleAsConflict(error: unknown): unknown {
  return error instanceof StaleViewError ? new ConflictError('the container was forked twice while the change ran; try again') : error;
}

function checkMeta(meta: { readonly uid?: number; readonly gid?: number; readonly mtime?: number }): void {
  if (meta.uid !== undefined) checkId(meta.uid, 'uid');
  if (meta.gid !== undefined) checkId(meta.gid, 'gid');
  if (meta.mtime !== undefined) checkMtime(meta.mtime);
}
