import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { TreeEntry } from './fs-ops.js';

/** A directory on disk (an unpacked bundle, a mounted image) walked in byte order, like strataTree walks Strata. */
export async function diskTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(join(root, dir))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const path = `${dir === '/' ? '' : dir}/${name}`;
      const st = await lstat(join(root, path), { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
      const entry: TreeEntry = { path, type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeMs: Number(st.mtimeNs / 1_000_000n) };
      if (type === 'file') Object.assign(entry, { size: Number(st.size), content: (await readFile(join(root, path))).toString('latin1'), nlink: Number(st.nlink), inode: String(st.ino) });
      if (type === 'symlink') entry.target = await readlink(join(root, path));
      out.push(entry);
      if (type === 'dir') await walk(path);
    }
  };
  await walk('/');
  return out;
}
