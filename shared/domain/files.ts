import type { Readable } from 'node:stream';
import type { ContainerService } from './containers.js';
import { NotFoundError } from '../errors.js';
import type { ImageService } from './images.js';
import type { Extent, FileMeta } from './nodes.js';
import { statOf, type DirPage, type FileStat, type TreeReader } from './tree-read.js';
import type { SetAttributes, TreeWriter, WritePreconditions } from './tree-write.js';
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
  ) {}

  /**
   * The view a target names. Only reads that fetch the container's record alongside the path
   * (`confirmed`) may use cached container records; everything else looks the container up.
   */
  private async viewOf(tenant: string, target: TreeTarget, options: { cache?: boolean } = {}): Promise<{ view: View; proof?: { pk: string; sk: string }; cached?: boolean; check?: (found: boolean) => void }> {
    switch (target.kind) {
      case 'image':
        return { view: this.images.view(tenant, await this.images.resolve(tenant, target.ref)) };
      case 'volume':
        return { view: this.volumes.view(tenant, await this.volumes.record(tenant, target.name)) };
      case 'container': {
        const { view, record, proof, cached } = await this.containers.view(tenant, target.ref, { cache: options.cache ?? false });
        return { view, proof, cached, check: (found: boolean) => this.containers.checkProof(tenant, record, found) };
      }
    }
  }

  async stat(tenant: string, target: TreeTarget, path: string, options: { follow?: boolean } = {}): Promise<FileStat> {
    return this.confirmed(tenant, target, async ({ view, proof, check }) => {
      const { resolved, resolver } = await this.reader.existing(view, path, options.follow ?? true, proof ? [proof] : []).catch(async (error) => {
        // A cached container that has gone away must answer 404 for the container, not for the path.
        if (check) await this.stillThere(tenant, target);
        throw error;
      });
      if (check && proof) check(resolver.extraItem(proof) !== undefined);
      return statOf(resolved.absolutePath, resolved.node);
    });
  }

  /** Reads a file: one metadata round trip for the container and the path, one ranged GET per extent. */
  async read(tenant: string, target: TreeTarget, path: string, range?: { start: number; end?: number }): Promise<{ stat: FileStat; start: number; end: number; body: Readable; extents: Extent[] }> {
    return this.confirmed(tenant, target, async ({ view, proof, check }) => {
      const result = await this.reader.read(view, path, range, proof ? [proof] : []).catch(async (error) => {
        if (check) await this.stillThere(tenant, target);
        throw error;
      });
      if (check && proof) {
        try {
          check(result.resolver.extraItem(proof) !== undefined);
        } catch (error) {
          result.body.destroy();
          throw error;
        }
      }
      return result;
    });
  }

  /**
   * Runs a read with the container's cached record; if the store says that container is gone,
   * the name may belong to a new one by now, so it is looked up afresh once.
   */
  private async confirmed<T>(tenant: string, target: TreeTarget, attempt: (found: Awaited<ReturnType<FileService['viewOf']>>) => Promise<T>): Promise<T> {
    const found = await this.viewOf(tenant, target, { cache: true });
    try {
      return await attempt(found);
    } catch (error) {
      if (!(error instanceof NotFoundError) || !found.cached) throw error;
      return attempt(await this.viewOf(tenant, target, { cache: false }));
    }
  }

  /** Copies the bytes of a read to `blobKey` for a presigned download, server-side where it can. */
  copyOut(extents: readonly Extent[], blobKey: string): Promise<void> {
    return this.reader.copyOut(extents, blobKey);
  }

  /** After a failed lookup, a container that has gone away answers 404 for itself, not for the path. */
  private async stillThere(tenant: string, target: TreeTarget) {
    if (target.kind === 'container') await this.containers.inspect(tenant, target.ref);
  }

  async list(tenant: string, target: TreeTarget, path: string, options: { cursor?: string; limit?: number } = {}): Promise<DirPage> {
    const { view } = await this.viewOf(tenant, target);
    return this.reader.list(view, path, options);
  }

  async writeFile(tenant: string, target: TreeTarget, path: string, body: Readable | Buffer | { readonly copyOf: string }, options: WritePreconditions & Partial<FileMeta> = {}): Promise<FileStat> {
    return this.writer.writeFile((await this.viewOf(tenant, target)).view, path, body, options);
  }

  async writeRange(tenant: string, target: TreeTarget, path: string, position: number | 'end', body: Readable | Buffer, options: WritePreconditions = {}): Promise<FileStat> {
    return this.writer.writeRange((await this.viewOf(tenant, target)).view, path, position, body, options);
  }

  async truncate(tenant: string, target: TreeTarget, path: string, size: number, options: WritePreconditions = {}): Promise<FileStat> {
    return this.writer.truncate((await this.viewOf(tenant, target)).view, path, size, options);
  }

  async mkdir(tenant: string, target: TreeTarget, path: string, options: Partial<FileMeta> & { parents?: boolean } = {}): Promise<FileStat> {
    return this.writer.mkdir((await this.viewOf(tenant, target)).view, path, options);
  }

  async symlink(tenant: string, target: TreeTarget, path: string, linkTarget: string): Promise<FileStat> {
    return this.writer.symlink((await this.viewOf(tenant, target)).view, path, linkTarget);
  }

  async link(tenant: string, target: TreeTarget, existing: string, path: string): Promise<FileStat> {
    return this.writer.link((await this.viewOf(tenant, target)).view, existing, path);
  }

  async rename(tenant: string, target: TreeTarget, from: string, to: string): Promise<FileStat> {
    return this.writer.rename((await this.viewOf(tenant, target)).view, from, to);
  }

  async setAttributes(tenant: string, target: TreeTarget, path: string, attributes: SetAttributes, options: WritePreconditions = {}): Promise<FileStat> {
    return this.writer.setAttributes((await this.viewOf(tenant, target)).view, path, attributes, options);
  }

  async remove(tenant: string, target: TreeTarget, path: string, options: WritePreconditions & { recursive?: boolean } = {}): Promise<void> {
    return this.writer.remove((await this.viewOf(tenant, target)).view, path, options);
  }
}
