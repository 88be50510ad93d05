import { randomUUID } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, open, opendir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobStore, ByteRange, PutResult } from '../ports/blob-store.js';
import { ConflictError, NotFoundError, RangeNotSatisfiableError } from '../errors.js';

const listPageSize = 1000;
/** Names of files still being written; never a key segment, so `list` can skip them. */
const partialPrefix = '.strata-partial-';

export type Presigner = (key: string, method: 'GET' | 'PUT', expiresInSeconds: number) => Promise<string>;

/**
 * BlobStore in a local folder, the embedded default for one machine (like the Docker registry's
 * filesystem driver): key `a/b/c` is the file `<root>/a/b/c`. As on any filesystem, a key cannot
 * also be the folder of another key (`a/b` and `a/b/c` cannot both exist). Presigned URLs come from
 * the injected presigner, since only the server in front of this folder can honour them.
 */
export class FsBlobStore implements BlobStore {
  constructor(
    private readonly root: string,
    private readonly presigner: Presigner,
  ) {}

  async put(key: string, body: Readable | Buffer): Promise<PutResult> {
    const path = this.pathOf(key);
    return this.publish(key, path, async (partial) => {
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      // A pipeline attached to a stream destroyed without an error never settles (Node 20).
      if (source.destroyed) throw new Error(`the source of blob ${key} was destroyed before it was stored`);
      const out = createWriteStream(partial, { flags: 'wx' });
      await pipeline(source, out);
      return out.bytesWritten;
    });
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    if (range) assertRange(range);
    // Like the S3 store: an empty range needs no request, so it is not checked against the blob.
    if (range && range.start === range.end) return Readable.from([]);
    const file = await openBlob(key, path);
    try {
      const { size } = await file.stat();
      if (range && range.start >= size) {
        throw new RangeNotSatisfiableError(`range ${range.start}-${range.end} is past the end of blob ${key} (${size} bytes)`);
      }
      return file.createReadStream({ start: range?.start, end: range ? Math.min(range.end, size) - 1 : undefined });
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  async size(key: string): Promise<number> {
    const file = await openBlob(key, this.pathOf(key));
    try {
      return (await file.stat()).size;
    } finally {
      await file.close();
    }
  }

  async copy(source: string, target: string, range?: ByteRange): Promise<PutResult> {
    const sourcePath = this.pathOf(source);
    const targetPath = this.pathOf(target);
    if (range) assertRange(range);
    const sourceSize = await this.size(source);
    if (!range) {
      // A reflink where the filesystem supports one, a plain copy elsewhere.
      return this.publish(target, targetPath, async (partial) => {
        await copyFile(sourcePath, partial, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
        return sourceSize;
      });
    }
    if (range.start === range.end) return this.put(target, Buffer.alloc(0));
    if (range.start >= sourceSize) {
      throw new RangeNotSatisfiableError(`range ${range.start}-${range.end} is past the end of blob ${source} (${sourceSize} bytes)`);
    }
    const end = Math.min(range.end, sourceSize);
    return this.put(target, createReadStream(sourcePath, { start: range.start, end: end - 1 }));
  }

  async delete(keys: readonly string[]): Promise<void> {
    const paths = keys.map((key) => this.pathOf(key));
    for (const path of paths) {
      try {
        await unlink(path);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
  }

  async list(prefix: string, cursor?: string): Promise<{ keys: string[]; cursor?: string }> {
    // `t/a/` walks the folder t/a; `t/a` walks t and keeps only the names that start with `a`.
    const slash = prefix.lastIndexOf('/');
    const folderKey = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    if (folderKey) this.pathOf(folderKey.slice(0, -1));

    const keys: string[] = [];
    for await (const key of walk(join(this.root, folderKey), folderKey, namePrefix, cursor)) {
      if (keys.length === listPageSize) return { keys, cursor: keys[keys.length - 1] };
      keys.push(key);
    }
    return { keys };
  }

  async abortIncomplete(prefix: string, before: number): Promise<number> {
    const slash = prefix.lastIndexOf('/');
    const folderKey = prefix.slice(0, slash + 1);
    if (folderKey) this.pathOf(folderKey.slice(0, -1));
    let removed = 0;
    for await (const path of partialFiles(join(this.root, folderKey))) {
      try {
        if ((await stat(path)).mtimeMs >= before) continue;
        await unlink(path);
        removed++;
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    return removed;
  }

  async presign(key: string, method: 'GET' | 'PUT', expiresInSeconds: number): Promise<string> {
    this.pathOf(key);
    return this.presigner(key, method, expiresInSeconds);
  }

  /**
   * Writes a blob to a partial file next to its final place, then links it in: link fails if the
   * key exists, and a crash never leaves a half-written file under the final name.
   */
  private async publish(key: string, path: string, write: (partial: string) => Promise<number>): Promise<PutResult> {
    await mkdir(dirname(path), { recursive: true });
    const partial = join(dirname(path), `${partialPrefix}${randomUUID()}`);
    try {
      const size = await write(partial);
      await syncFile(partial); // the data must be on disk before the name that promises it
      await link(partial, path);
      return { size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ConflictError(`blob ${key} already exists`);
      throw error;
    } finally {
      await unlink(partial).catch(() => {});
    }
  }

  /** Keys come from Strata itself; rejecting odd ones is defence in depth against escaping the root. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    const unsafe = key.includes('\0') || segments.some((segment) => segment === '' || segment === '.' || segment === '..' || segment.startsWith(partialPrefix));
    if (unsafe) throw new Error(`unsafe blob key ${JSON.stringify(key)}`);
    return join(this.root, ...segments);
  }
}

/**
 * Yields the keys under a folder in byte order of the keys, after `cursor`. A folder sorts as its
 * name plus `/`, so `a-c` (0x2d) comes before `a/b` (0x2f) as it does in S3.
 */
async function* walk(folder: string, folderKey: string, namePrefix: string, cursor?: string): AsyncGenerator<string> {
  let entries: Awaited<ReturnType<typeof readFolder>>;
  try {
    entries = await readFolder(folder);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  const children = entries
    .filter(({ name }) => name.startsWith(namePrefix) && !name.startsWith(partialPrefix))
    .map(({ name, isFolder }) => ({ key: folderKey + name + (isFolder ? '/' : ''), name, isFolder }))
    .sort((a, b) => compareBytes(a.key, b.key));
  for (const child of children) {
    if (!child.isFolder) {
      if (cursor === undefined || compareBytes(child.key, cursor) > 0) yield child.key;
      continue;
    }
    // Every key in the folder starts with child.key, so the whole folder lies before the cursor
    // when child.key does and the cursor is not inside it.
    if (cursor !== undefined && compareBytes(child.key, cursor) < 0 && !cursor.startsWith(child.key)) continue;
    yield* walk(join(folder, child.name), child.key, '', cursor);
  }
}

/** Partial files anywhere below a folder. */
async function* partialFiles(folder: string): AsyncGenerator<string> {
  let entries: Awaited<ReturnType<typeof opendir>>;
  try {
    entries = await opendir(folder);
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for await (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* partialFiles(path);
    else if (entry.isFile() && entry.name.startsWith(partialPrefix)) yield path;
  }
}

async function readFolder(folder: string): Promise<{ name: string; isFolder: boolean }[]> {
  const entries = [];
  for await (const entry of await opendir(folder)) {
    if (entry.isFile() || entry.isDirectory()) entries.push({ name: entry.name, isFolder: entry.isDirectory() });
  }
  return entries;
}

/** S3 orders keys by their UTF-8 bytes; JavaScript's `<` compares UTF-16 units, which differs. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function openBlob(key: string, path: string) {
  try {
    const file = await open(path, 'r');
    if ((await file.stat()).isFile()) return file;
    await file.close();
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  throw new NotFoundError(`blob ${key} not found`);
}

async function syncFile(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

function assertRange({ start, end }: ByteRange): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new Error(`invalid byte range ${start}-${end}`);
  }
}
