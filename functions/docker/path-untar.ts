import { Readable } from 'node:stream';
import type { FileService, TreeTarget } from '../../shared/domain/files.js';
import type { FileStat } from '../../shared/domain/tree-read.js';
import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import { layerEntryPath } from '../../shared/tar/layer-paths.js';
import { readTar } from '../../shared/tar/tar-reader.js';

export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory or the reverse (the CLI always asks). */
  readonly noOverwriteDirNonDir: boolean;
  /** Keep the archive's owners (`docker cp -a`); otherwise everything is root's, as the daemon does. */
  readonly copyUidGid: boolean;
}

/**
 * `docker cp ./x c1:/dir`: unpacks a tar into a directory of a container. Names are cleaned
 * and may not climb above the directory; symlinks and hard links resolve inside the container's
 * root. Directory times are set last, after their children changed them. Entries are applied one
 * by one: a bad entry stops the copy with the earlier ones in place, as with the daemon.
 */
export async function extractInto(files: FileService, tenant: string, target: TreeTarget, dir: string, tar: Readable | AsyncIterable<Buffer>, options: ExtractOptions): Promise<void> {
  const join = (inner: string) => (dir === '/' ? inner : inner === '/' ? dir : `${dir}${inner}`);
  const directoryTimes: { path: string; mtime: number }[] = [];
  for await (const entry of readTar(tar)) {
    const { header } = entry;
    if (header.type === 'other') continue;
    const inner = layerEntryPath(header.path);
    const path = join(inner);
    const owner = options.copyUidGid ? { uid: header.uid, gid: header.gid } : { uid: 0, gid: 0 };
    const meta = { mode: header.mode, mtime: header.mtime * 1000, ...owner };
    const existing = await lstat(files, tenant, target, path);
    const replaces = existing && inner !== '/' && !(existing.type === 'dir' && header.type === 'directory');
    if (replaces) {
      // As the daemon does, whatever was there goes first, so a symlink is replaced, never followed.
      if (options.noOverwriteDirNonDir && (existing.type === 'dir') !== (header.type === 'directory')) {
        throw new InvalidInputError(
          existing.type === 'dir' ? `cannot overwrite directory "${path}" with non-directory "${path}"` : `cannot overwrite non-directory "${path}" with directory "${path}"`,
        );
      }
      await files.remove(tenant, target, path, { recursive: existing.type === 'dir' });
    }
    switch (header.type) {
      case 'directory':
        if (!existing || replaces) await files.mkdir(tenant, target, path, meta);
        else await files.setAttributes(tenant, target, path, meta);
        directoryTimes.push({ path, mtime: meta.mtime });
        break;
      case 'file':
        await files.writeFile(tenant, target, path, Readable.from(entry.body), meta);
        break;
      case 'symlink':
        await files.symlink(tenant, target, path, header.linkname ?? '');
        break;
      case 'hardlink':
        await files.link(tenant, target, join(layerEntryPath(header.linkname ?? '')), path);
        break;
    }
  }
  for (const { path, mtime } of directoryTimes.reverse()) await files.setAttributes(tenant, target, path, { mtime });
}

/** The path itself (a symlink is not followed), or undefined when nothing is there. */
export async function lstat(files: FileService, tenant: string, target: TreeTarget, path: string): Promise<FileStat | undefined> {
  try {
    return await files.stat(tenant, target, path, { follow: false });
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}
