import type { Readable } from 'node:stream';
import { joinPath } from '../paths.js';
import type { MetadataStore } from '../ports/metadata-store.js';
import { TarWriter } from '../tar/tar-writer.js';
import type { Node, VisibleNode } from './nodes.js';
import { Resolver } from './resolver.js';
import type { TreeReader } from './tree-read.js';
import type { View } from './view.js';

/** Docker's change kinds: 0 changed, 1 added, 2 deleted. */
export const enum ChangeKind {
  Modified = 0,
  Added = 1,
  Deleted = 2,
}

export interface Change {
  readonly path: string;
  readonly kind: ChangeKind;
}

/**
 * What a container changed, read from its own namespace only (cost follows the changes, not
 * the image). Volumes are not part of it, as in Docker.
 */
export class Changeset {
  constructor(
    private readonly meta: MetadataStore,
    private readonly reader: TreeReader,
  ) {}

  /** `docker diff`: paths in order, parents of changes as changed, a deleted directory as one entry. */
  async changes(view: View): Promise<Change[]> {
    const out: Change[] = [];
    for await (const { path, node } of this.topNodes(view, '/')) {
      if (node.type === 'whiteout') out.push({ path, kind: ChangeKind.Deleted });
      else if (node.type === 'dir' && node.redirect) {
        out.push({ path, kind: node.overLower ? ChangeKind.Modified : ChangeKind.Added });
        // A renamed directory's lower contents are new at this path.
        for await (const [child] of this.mergedBelow(view, path)) out.push({ path: child, kind: ChangeKind.Added });
      } else out.push({ path, kind: node.overLower ? ChangeKind.Modified : ChangeKind.Added });
    }
    return dedupe(out);
  }

  /**
   * The container layer as an OCI changeset tar: whiteouts as `.wh.<name>` written before their
   * siblings, opaque directories as `.wh..wh..opq`, and a renamed directory as an opaque
   * directory holding its full contents (OCI layers have no rename).
   */
  commitTar(view: View): Readable {
    const writer = new TarWriter();
    (async () => {
      for await (const { path, node } of this.topNodes(view, '/', true)) {
        await this.writeNode(writer, path, node);
        if (node.type === 'dir' && node.redirect) {
          for await (const [child, childNode] of this.mergedBelow(view, path)) await this.writeNode(writer, child, childNode);
        }
      }
      await writer.finish();
    })().catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }

  /** The merged file tree (what `docker export` writes), without volume contents. */
  exportTar(view: View): Readable {
    const writer = new TarWriter();
    (async () => {
      // The flattened tree: whiteouts and opaque markers belong in a layer, never in an export.
      for await (const [path, node] of this.mergedBelow(view, '/', true)) await this.writeNode(writer, path, node, { markers: false });
      await writer.finish();
    })().catch((error) => writer.stream.destroy(error));
    return writer.stream;
  }

  /** One entry; with `markers` (a commit's layer), opaque and renamed directories carry their opaque marker. */
  private async writeNode(writer: TarWriter, path: string, node: Node, { markers = true } = {}): Promise<void> {
    const name = path.slice(1);
    if (node.type === 'whiteout') {
      const slash = name.lastIndexOf('/');
      const markerPath = slash < 0 ? `.wh.${name}` : `${name.slice(0, slash)}/.wh.${name.slice(slash + 1)}`;
      await writer.entry({ path: markerPath, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
      return;
    }
    const meta = { mode: node.mode, uid: node.uid, gid: node.gid, mtime: Math.floor(node.mtime / 1000) };
    switch (node.type) {
      case 'dir':
        await writer.entry({ path: `${name}/`, type: 'directory', ...meta, size: 0 });
        if (markers && (node.opaque || node.redirect)) await writer.entry({ path: `${name}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0 });
        return;
      case 'symlink':
        await writer.entry({ path: name, type: 'symlink', ...meta, size: 0, linkname: node.target });
        return;
      case 'file':
        await writer.entry({ path: name, type: 'file', ...meta, size: node.size }, this.reader.extentStream(node.extents) as AsyncIterable<Buffer>);
        return;
    }
  }

  /**
   * The top namespace's own nodes, depth first in name order, each directory's whiteouts first
   * (writers put whiteouts before their siblings).
   */
  private async *topNodes(view: View, dir: string, skipRedirected = false): AsyncGenerator<{ path: string; node: Node }> {
    const entries: [string, Node][] = [];
    for await (const entry of this.reader.partition(view.tenant, view.top!, dir)) entries.push(entry);
    entries.sort((a, b) => Number(b[1].type === 'whiteout') - Number(a[1].type === 'whiteout') || (a[0] < b[0] ? -1 : 1));
    for (const [name, node] of entries) {
      const path = joinPath(dir, name);
      yield { path, node };
      // A renamed directory's contents are written from the merged view instead.
      if (node.type === 'dir' && !(node.redirect && skipRedirected)) yield* this.topNodes(view, path, skipRedirected);
    }
  }

  /** Every visible node below `dir` in the merged view, parents first; mount points are skipped. */
  async *mergedBelow(view: View, dir: string, skipMounts = false): AsyncGenerator<[string, VisibleNode]> {
    const resolved = await new Resolver(this.meta).resolve(view, dir, { follow: false });
    if (resolved.mount && skipMounts) return;
    const children: [string, VisibleNode][] = [];
    for await (const child of this.reader.children(resolved, undefined)) children.push(child);
    for (const [name, node] of children) {
      const path = joinPath(dir, name);
      if (skipMounts && view.mounts.some((m) => m.target === path)) continue;
      yield [path, node];
      if (node.type === 'dir') yield* this.mergedBelow(view, path, skipMounts);
    }
  }
}

function dedupe(changes: Change[]): Change[] {
  const seen = new Set<string>();
  return changes.filter((c) => (seen.has(c.path) ? false : (seen.add(c.path), true))).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
