import { readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { dockerArchive } from '../support/images.js';
import { localEngine, text } from '../support/engine.js';

/**
 * A blob stream that fails part-way (S3 resets the connection, a disk read fails) must end every
 * stream built on it with an error, never leave its reader waiting, and release what it opened.
 * The same for a source that fails while a load or a write reads it.
 */
const T = 'acme';
let engine: Engine;
let blobs: BlobStore;
let cleanup: () => Promise<void>;
let failReads = false;

beforeEach(async () => {
  ({ engine, blobs, cleanup } = await localEngine());
  const { archive } = await dockerArchive(
    [
      [
        { path: 'etc/hosts', content: 'h'.repeat(300_000) },
        { path: 'etc/passwd', content: 'p'.repeat(300_000) },
      ],
    ],
    { tags: ['base:1'] },
  );
  await engine.images.load(T, [archive]);
  await engine.containers.create(T, { image: 'base:1', name: 'box' });
  await engine.files.writeFile(T, { kind: 'container', ref: 'box' }, '/own', Buffer.alloc(200_000, 1));
  const get = blobs.get.bind(blobs);
  // The injected fault: every blob stream fails after its first chunk.
  blobs.get = async (key, range) => {
    const stream = await get(key, range);
    if (!failReads) return stream;
    return Readable.from(
      (async function* () {
        try {
          for await (const chunk of stream) {
            yield chunk as Buffer;
            throw new Error('injected: connection reset while reading a blob');
          }
        } finally {
          stream.destroy();
        }
      })(),
    );
  };
});
afterEach(async () => {
  failReads = false;
  await cleanup();
});

async function openDescriptors(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

/** 'done', 'failed: …', or 'pending' if the stream has not ended within 10 s. */
async function drain(stream: Readable | Promise<Readable>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), 10_000)));
  try {
    return await Promise.race([
      (async () => text(await stream))().then(
        () => 'done',
        (error: Error) => `failed: ${error.message}`,
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const streams: [string, () => Promise<Readable>][] = [
  ['a file read', async () => (await engine.files.read(T, { kind: 'container', ref: 'box' }, '/etc/hosts')).body],
  ['a read of the container’s own file', async () => (await engine.files.read(T, { kind: 'container', ref: 'box' }, '/own')).body],
  ['an export', () => engine.export(T, 'box')],
  ['a save', () => engine.images.save(T, ['base:1'])],
];

describe('a blob stream that fails part-way', () => {
  it.each(streams)('ends %s with the error and releases its descriptors', async (_name, open) => {
    const before = await openDescriptors();
    failReads = true;
    expect(await drain(open())).toMatch(/^failed: .*connection reset/);
    failReads = false;
    // Descriptors are closed asynchronously; give them a moment (no timing is asserted).
    for (let i = 0; i < 50 && (await openDescriptors()) > before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await openDescriptors()).toBeLessThanOrEqual(before);
  });

  it('fails a commit cleanly, leaving no new image and no blob behind', async () => {
    const images = await engine.images.list(T);
    const usage = await engine.diskUsage(T);
    failReads = true;
    await expect(engine.commit(T, 'box', { reference: 'snap:1' })).rejects.toThrow(/connection reset/);
    failReads = false;
    expect(await engine.images.list(T)).toEqual(images);
    expect(await engine.diskUsage(T)).toEqual(usage);
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });
});

describe('a source that fails part-way', () => {
  it('fails a load with the source’s error and stores nothing', async () => {
    const { archive } = await dockerArchive([[{ path: 'big', content: Buffer.alloc(2 << 20, 3) }]], { tags: ['new:1'] });
    const before = await engine.images.list(T);
    const source = Readable.from(
      (async function* () {
        yield archive.subarray(0, 1 << 20);
        throw new Error('injected: client went away');
      })(),
    );
    expect(await drain(engine.images.load(T, source).then(() => Readable.from([])))).toMatch(/^failed: injected: client went away/);
    expect(await engine.images.list(T)).toEqual(before);
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('fails a streamed write with the source’s error and keeps the old content', async () => {
    const source = Readable.from(
      (async function* () {
        yield Buffer.alloc(100_000, 9);
        throw new Error('injected: client went away');
      })(),
    );
    await expect(engine.files.writeFile(T, { kind: 'container', ref: 'box' }, '/own', source)).rejects.toThrow(/client went away/);
    expect((await engine.files.read(T, { kind: 'container', ref: 'box' }, '/own')).stat.size).toBe(200_000);
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });
});

describe('holes', () => {
  it('an export or commit of a tree with more than 1 GiB of holes is refused before writing them, leaving nothing', async () => {
    const box = { kind: 'container' as const, ref: 'box' };
    await engine.files.writeFile(T, box, '/sparse', Buffer.from('start'));
    await engine.files.truncate(T, box, '/sparse', 2 * 1024 ** 3);
    expect(await drain(engine.export(T, 'box'))).toMatch(/^failed: the tree holds more holes/);
    const images = await engine.images.list(T);
    await expect(engine.commit(T, 'box')).rejects.toMatchObject({ status: 413 });
    expect(await engine.images.list(T)).toEqual(images);
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
    // A small sparse file still exports, its hole as zeros.
    await engine.files.truncate(T, box, '/sparse', 100_000);
    expect(await drain(engine.export(T, 'box'))).toBe('done');
  });
});
