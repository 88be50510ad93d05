import { execFileSync } from 'node:child_process';
import { chmod, chown, link, lutimes, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** One path of a layer, written to disk both as a tar source and as an overlayfs lower. */
export type DirEntry =
  | { path: string; content: string; mode?: number; uid?: number; gid?: number }
  | { path: string; dir: true; mode?: number }
  | { path: string; symlink: string }
  | { path: string; hardlink: string }
  | { path: string; whiteout: true }
  | { path: string; opaque: true };

/** Every entry's mtime, in seconds: tar keeps whole seconds, so both sides see the same time. */
export const LAYER_MTIME = 1_700_000_000;

/**
 * Writes a layer twice: `tarDir` as an OCI layer's file list (whiteouts as `.wh.` files), which
 * GNU tar then packs, and `kernelDir` as overlayfs wants a lower (whiteouts as 0/0 character
 * devices, opaque directories marked with the trusted.overlay.opaque xattr). Returns the tar.
 */
export async function writeLayer(entries: readonly DirEntry[], tarDir: string, kernelDir: string): Promise<Buffer> {
  for (const root of [tarDir, kernelDir]) await mkdir(root, { recursive: true });
  for (const entry of entries) {
    for (const [root, forKernel] of [
      [tarDir, false],
      [kernelDir, true],
    ] as const) {
      const path = join(root, entry.path);
      await mkdir(dirname(path), { recursive: true });
      if ('content' in entry) {
        await writeFile(path, entry.content);
        await chmod(path, entry.mode ?? 0o644);
        await chown(path, entry.uid ?? 0, entry.gid ?? 0);
      } else if ('dir' in entry) {
        await mkdir(path, { recursive: true });
        await chmod(path, entry.mode ?? 0o755);
      } else if ('symlink' in entry) {
        await symlink(entry.symlink, path);
      } else if ('hardlink' in entry) {
        await link(join(root, entry.hardlink), path);
      } else if ('whiteout' in entry) {
        if (forKernel) execFileSync('mknod', [path, 'c', '0', '0']);
        else await writeFile(join(dirname(path), `.wh.${entry.path.split('/').pop()}`), '');
      } else {
        await mkdir(path, { recursive: true });
        if (forKernel) execFileSync('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], "trusted.overlay.opaque", b"y")', path]);
        else await writeFile(join(path, '.wh..wh..opq'), '');
      }
    }
  }
  // Times last, deepest first, so creating children does not move a directory's mtime.
  for (const root of [tarDir, kernelDir]) {
    const all = execFileSync('find', [root, '-mindepth', '1', '-print0']).toString().split('\0').filter(Boolean);
    all.sort((a, b) => b.length - a.length);
    for (const path of all) await lutimes(path, LAYER_MTIME, LAYER_MTIME);
    await utimes(root, LAYER_MTIME, LAYER_MTIME);
  }
  return execFileSync('tar', ['--sort=name', '--numeric-owner', '-C', tarDir, '-cf', '-', '.'], { maxBuffer: 64 << 20 });
}
