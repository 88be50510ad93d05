import type { Readable } from 'node:stream';
import type { FileService, TreeTarget } from '../../shared/domain/files.js';
import type { FileStat } from '../../shared/domain/tree-read.js';
import { TarWriter } from '../../shared/tar/tar-writer.js';
import type { TarHeader } from '../../shared/tar/tar-reader.js';

/**
 * `docker cp c1:/path -`: a tar of one path as the daemon writes it. The path's own name is the
 * root of every entry (`etc`, `etc/hosts`); a symlink is archived as the link itself; a second
 * name of a hard-linked file becomes a hard link to the first. Volumes mounted below the path are
 * included, as in the daemon's view of the container.
 */
export function tarOfPath(files: FileService, tenant: string, target: TreeTarget, stat: FileStat, rootName: string): Readable {
  const writer = new TarWriter();
  const firstNames = new Map<string, string>();

  const add = async (node: FileStat, name: string): Promise<void> => {
    const header: TarHeader = { path: node.type === 'dir' ? `${name}/` : name, type: 'file', mode: node.mode, uid: node.uid, gid: node.gid, size: 0, mtime: Math.floor(node.mtime / 1000) };
    if (node.type === 'symlink') return writer.entry({ ...header, type: 'symlink', linkname: node.target ?? '' });
    if (node.type === 'dir') {
      await writer.entry({ ...header, type: 'directory' });
      for (let cursor: string | undefined, first = true; first || cursor; first = false) {
        const page = await files.list(tenant, target, node.path, { cursor });
        for (const child of page.entries) await add(child, `${name}/${child.name}`);
        cursor = page.cursor;
      }
      return;
    }
    const linkedTo = node.inode && firstNames.get(node.inode);
    if (linkedTo) return writer.entry({ ...header, type: 'hardlink', linkname: linkedTo });
    if (node.inode) firstNames.set(node.inode, name);
    const read = await files.read(tenant, target, node.path);
    return writer.entry({ ...header, size: read.stat.size }, read.body as AsyncIterable<Uint8Array>);
  };

  add(stat, rootName).then(
    () => writer.finish(),
    (error: Error) => writer.abort(error),
  );
  return writer.stream;
}
