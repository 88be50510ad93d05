import { createTwoFilesPatch } from 'diff';
import type { FileNode, VisibleNode } from './nodes.js';
import type { TreeChange } from './tree-diff.js';
import type { TreeReader } from './tree-read.js';

/** A file above this size on either side gets no patch (a diff of it would not help a reader). */
export const MAX_PATCHED_FILE_BYTES = 256 * 1024;
/** Patches in one answer, so that it stays well under the 6 MB a response may carry. */
export const MAX_PATCHED_FILES = 200;
export const MAX_PATCH_BYTES = 2 * 1024 * 1024;

export interface PatchedChange extends TreeChange {
  /** A unified diff of the file's text (`a/<path>` against `b/<path>`). */
  readonly patch?: string;
  /** Why a file change has no patch. */
  readonly patchOmitted?: 'binary' | 'too-large' | 'limit';
}

/**
 * Unified diffs for the regular files among `changes`: text (valid UTF-8 without NUL bytes) of
 * at most MAX_PATCHED_FILE_BYTES on both sides, up to MAX_PATCHED_FILES files and
 * MAX_PATCH_BYTES in all; a file past a limit says which.
 */
export async function withPatches(reader: TreeReader, changes: readonly TreeChange[]): Promise<PatchedChange[]> {
  let files = 0;
  let bytes = 0;
  const out: PatchedChange[] = [];
  for (const change of changes) {
    const sides = [change.from, change.to];
    if (!sides.some(isFile) || sides.some((node) => node !== undefined && !isFile(node))) {
      out.push(change);
      continue;
    }
    if (sides.some((node) => node && (node as FileNode).size > MAX_PATCHED_FILE_BYTES)) {
      out.push({ ...change, patchOmitted: 'too-large' });
      continue;
    }
    if (files >= MAX_PATCHED_FILES || bytes >= MAX_PATCH_BYTES) {
      out.push({ ...change, patchOmitted: 'limit' });
      continue;
    }
    const [before, after] = await Promise.all(sides.map((node) => (node ? textOf(reader, node as FileNode) : '')));
    if (before === undefined || after === undefined) {
      out.push({ ...change, patchOmitted: 'binary' });
      continue;
    }
    const patch = createTwoFilesPatch(change.from ? `a${change.path}` : '/dev/null', change.to ? `b${change.path}` : '/dev/null', before, after);
    files++;
    bytes += Buffer.byteLength(patch);
    out.push({ ...change, patch });
  }
  return out;
}

function isFile(node: VisibleNode | undefined): boolean {
  return node?.type === 'file';
}

/** The file's text, or undefined when it is not text. */
async function textOf(reader: TreeReader, node: FileNode): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of reader.extentStream(node.extents)) chunks.push(Buffer.from(chunk as Uint8Array));
  const bytes = Buffer.concat(chunks);
  if (bytes.includes(0)) return undefined;
  const text = new TextDecoder('utf-8', { fatal: true });
  try {
    return text.decode(bytes);
  } catch {
    return undefined;
  }
}
