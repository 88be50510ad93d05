/**
 * The behaviour every BlobStore must show, run against each implementation (like lakeFS's
 * blocktest). Every test writes under a prefix of its own, so implementations may share a bucket.
 */
import { createCipheriv, createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, RangeNotSatisfiableError } from '../../shared/errors.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';

const MiB = 1024 * 1024;

export function blobStoreContract(name: string, makeStore: () => Promise<{ store: BlobStore; cleanup?: () => Promise<void> }>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let store: BlobStore;
    let cleanup: (() => Promise<void>) | undefined;

    beforeAll(async () => {
      ({ store, cleanup } = await makeStore());
    });

    afterAll(async () => {
      await cleanup?.();
    });

    /** A key prefix no other test (or earlier run) uses, shaped like Strata's tenant prefixes. */
    const newPrefix = () => `contract/${randomUUID()}/`;

    const read = async (key: string, range?: { start: number; end: number }) => readAll(await store.get(key, range));

    describe('put and get', () => {
      it('round-trips a Buffer', async () => {
        const key = `${newPrefix()}small`;
        const content = Buffer.from('hello, blob');
        expect(await store.put(key, content)).toEqual({ size: content.length });
        expectSameBytes(await read(key), content);
        expect(await store.size(key)).toBe(content.length);
      });

      it('round-trips an empty Buffer', async () => {
        const key = `${newPrefix()}empty`;
        expect(await store.put(key, Buffer.alloc(0))).toEqual({ size: 0 });
        expect(await read(key)).toHaveLength(0);
        expect(await store.size(key)).toBe(0);
      });

      it('round-trips a 20 MiB stream', async () => {
        const key = `${newPrefix()}large`;
        const size = 20 * MiB + 123; // several upload parts and a ragged end
        expect(await store.put(key, Readable.from(pseudoRandomChunks(size, 'large')))).toEqual({ size });
        expect(await store.size(key)).toBe(size);
        expect(await sha256(await store.get(key))).toBe(await sha256(Readable.from(pseudoRandomChunks(size, 'large'))));
      });

      it('throws NotFoundError for a missing key', async () => {
        const key = `${newPrefix()}missing`;
        await expect(store.get(key)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.get(key, { start: 0, end: 1 })).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.size(key)).rejects.toBeInstanceOf(NotFoundError);
      });

      it('refuses to overwrite an existing key and keeps the original content', async () => {
        const key = `${newPrefix()}once`;
        await store.put(key, Buffer.from('original'));
        await expect(store.put(key, Buffer.from('replacement'))).rejects.toBeInstanceOf(ConflictError);
        await expect(store.put(key, Readable.from([Buffer.from('streamed replacement')]))).rejects.toBeInstanceOf(ConflictError);
        expect((await read(key)).toString()).toBe('original');
      });

      it('leaves no object behind when the body fails part-way', async () => {
        const prefix = newPrefix();
        const key = `${prefix}broken`;
        // More than one S3 upload part arrives before the failure, so a multipart upload is under way.
        await expect(store.put(key, failingStream(10 * MiB))).rejects.toThrow('body failed');
        await expect(store.size(key)).rejects.toBeInstanceOf(NotFoundError);
        expect((await store.list(prefix)).keys).toEqual([]);
      });

      it('settles, storing nothing, when its source was ended and destroyed without an error before the put', async () => {
        const prefix = newPrefix();
        const source = new PassThrough();
        source.write(Buffer.alloc(1000, 7));
        source.end();
        source.destroy();
        expect(await outcomeWithin(store.put(`${prefix}destroyed`, source), 10_000)).toBe('rejected');
        expect((await store.list(prefix)).keys).toEqual([]);
      });

      it('settles, storing nothing, when its source is destroyed without an error while it is read', async () => {
        const prefix = newPrefix();
        const source = new PassThrough();
        source.write(Buffer.alloc(3 * MiB, 7));
        setTimeout(() => source.destroy(), 50);
        expect(await outcomeWithin(store.put(`${prefix}destroyed`, source), 10_000)).toBe('rejected');
        expect((await store.list(prefix)).keys).toEqual([]);
      });
    });

    describe('ranged get', () => {
      const content = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      let key: string;

      beforeAll(async () => {
        key = `${newPrefix()}ranged`;
        await store.put(key, content);
      });

      it.each([
        { start: 0, end: 1 },
        { start: 0, end: 1000 },
        { start: 10, end: 20 },
        { start: 999, end: 1000 },
      ])('returns exactly bytes $start to $end', async (range) => {
        expectSameBytes(await read(key, range), content.subarray(range.start, range.end));
      });

      it('returns the bytes up to the end when the range runs past it', async () => {
        expectSameBytes(await read(key, { start: 990, end: 5000 }), content.subarray(990));
      });

      it('returns nothing for an empty range', async () => {
        expect(await read(key, { start: 5, end: 5 })).toHaveLength(0);
      });

      it('throws RangeNotSatisfiableError when the range starts at or past the end', async () => {
        await expect(store.get(key, { start: 1000, end: 1001 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
        await expect(store.get(key, { start: 5000, end: 6000 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
      });
    });

    describe('copy', () => {
      const content = Buffer.concat(Array.from(pseudoRandomChunks(MiB + 7, 'copy')));

      it('copies a whole blob and leaves the source intact', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}source`, content);
        expect(await store.copy(`${prefix}source`, `${prefix}target`)).toEqual({ size: content.length });
        expectSameBytes(await read(`${prefix}target`), content);
        expectSameBytes(await read(`${prefix}source`), content);
      });

      it('copies a range into a new blob and leaves the source intact', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}source`, content);
        const range = { start: 1000, end: 700_000 };
        expect(await store.copy(`${prefix}source`, `${prefix}target`, range)).toEqual({ size: range.end - range.start });
        expectSameBytes(await read(`${prefix}target`), content.subarray(range.start, range.end));
        expect(await store.size(`${prefix}target`)).toBe(range.end - range.start);
        expectSameBytes(await read(`${prefix}source`), content);
      });

      it('copies a range that runs past the end up to the end', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}source`, content);
        const start = content.length - 10;
        expect(await store.copy(`${prefix}source`, `${prefix}target`, { start, end: content.length + 100 })).toEqual({
          size: 10,
        });
        expectSameBytes(await read(`${prefix}target`), content.subarray(start));
      });

      it('copies an empty range into an empty blob', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}source`, Buffer.from('abc'));
        expect(await store.copy(`${prefix}source`, `${prefix}target`, { start: 1, end: 1 })).toEqual({ size: 0 });
        expect(await store.size(`${prefix}target`)).toBe(0);
      });

      it('throws RangeNotSatisfiableError for a range past the end of the source', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}source`, Buffer.from('abc'));
        await expect(store.copy(`${prefix}source`, `${prefix}target`, { start: 3, end: 4 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
      });

      it('throws NotFoundError for a missing source and creates nothing', async () => {
        const prefix = newPrefix();
        await expect(store.copy(`${prefix}missing`, `${prefix}target`)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.copy(`${prefix}missing`, `${prefix}target`, { start: 0, end: 1 })).rejects.toBeInstanceOf(NotFoundError);
        expect((await store.list(prefix)).keys).toEqual([]);
      });
    });

    describe('delete', () => {
      it('removes the given keys and keeps the others', async () => {
        const prefix = newPrefix();
        await Promise.all(['a', 'b', 'c'].map((name) => store.put(`${prefix}${name}`, Buffer.from(name))));
        await store.delete([`${prefix}a`, `${prefix}c`]);
        await expect(store.size(`${prefix}a`)).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.get(`${prefix}c`)).rejects.toBeInstanceOf(NotFoundError);
        expect((await read(`${prefix}b`)).toString()).toBe('b');
      });

      it('accepts missing keys and an empty list', async () => {
        const prefix = newPrefix();
        await store.delete([`${prefix}never-written`, `${prefix}also/missing`]);
        await store.delete([]);
      });
    });

    describe('list', () => {
      it('returns nothing for an unused prefix', async () => {
        expect(await store.list(newPrefix())).toEqual({ keys: [] });
      });

      it('pages through more than 1000 keys, each exactly once, and deletes them all in one call', async () => {
        const prefix = newPrefix();
        const keys = Array.from({ length: 1003 }, (_, i) => `${prefix}${i % 3}/k${String(i).padStart(4, '0')}`);
        await inBatches(keys, 64, (key) => store.put(key, Buffer.from(key)));

        const pages = await listAllPages(store, prefix);
        expect(pages.length).toBeGreaterThan(1);
        expect(pages.at(-1)!.cursor).toBeUndefined();
        expect(pages.slice(0, -1).every((page) => page.cursor !== undefined && page.keys.length > 0)).toBe(true);
        const listed = pages.flatMap((page) => page.keys);
        expect(listed).toHaveLength(keys.length);
        expect(new Set(listed)).toEqual(new Set(keys));

        await store.delete(keys);
        expect(await store.list(prefix)).toEqual({ keys: [] });
      });

      it('does not return keys of a sibling prefix', async () => {
        const tenants = newPrefix();
        await Promise.all(['a/one', 'a/two', 'ab/one', 'b/one', 'a-one'].map((name) => store.put(`${tenants}${name}`, Buffer.from(name))));
        const listed = async (prefix: string) => (await listAllPages(store, `${tenants}${prefix}`)).flatMap((page) => page.keys).sort();

        expect(await listed('a/')).toEqual([`${tenants}a/one`, `${tenants}a/two`]);
        expect(await listed('ab/')).toEqual([`${tenants}ab/one`]);
        // Without a trailing slash a prefix is a plain string prefix, as in S3.
        expect(await listed('a')).toEqual([`${tenants}a-one`, `${tenants}a/one`, `${tenants}a/two`, `${tenants}ab/one`]);
      });

      it('includes a key equal to the prefix', async () => {
        const prefix = newPrefix();
        await store.put(`${prefix}exact`, Buffer.from('x'));
        expect((await store.list(`${prefix}exact`)).keys).toEqual([`${prefix}exact`]);
      });
    });

    describe('presign', () => {
      it('gives a GET URL that plain fetch can read', async () => {
        const key = `${newPrefix()}shared`;
        await store.put(key, Buffer.from('fetched without credentials'));
        const response = await fetch(await store.presign(key, 'GET', 60));
        expect(response.status).toBe(200);
        expect(await response.text()).toBe('fetched without credentials');
      });

      it('gives a PUT URL that plain fetch can upload to', async () => {
        const key = `${newPrefix()}uploaded`;
        const response = await fetch(await store.presign(key, 'PUT', 60), { method: 'PUT', body: 'sent directly' });
        expect(response.ok).toBe(true);
        expect((await read(key)).toString()).toBe('sent directly');
      });
    });
  });
}

/** Buffer equality without vitest's element-by-element deep compare, which takes seconds per MiB. */
function expectSameBytes(actual: Buffer, expected: Buffer): void {
  let firstDifference = -1;
  if (!actual.equals(expected)) {
    firstDifference = 0;
    while (actual[firstDifference] === expected[firstDifference]) firstDifference++;
  }
  expect({ length: actual.length, firstDifference }).toEqual({ length: expected.length, firstDifference: -1 });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return hash.digest('hex');
}

/**
 * Deterministic, non-repeating bytes (AES-CTR of zeros keyed by `seed`) in 64 KiB chunks, so two
 * calls give the same stream and a misplaced range never matches by accident.
 */
function* pseudoRandomChunks(size: number, seed: string): Generator<Buffer> {
  const cipher = createCipheriv('aes-128-ctr', createHash('sha256').update(seed).digest().subarray(0, 16), Buffer.alloc(16));
  const chunkSize = 64 * 1024;
  for (let offset = 0; offset < size; offset += chunkSize) {
    yield cipher.update(Buffer.alloc(Math.min(chunkSize, size - offset)));
  }
}

/** Emits `bytesBeforeFailure` bytes, then fails. */
function failingStream(bytesBeforeFailure: number): Readable {
  return Readable.from(
    (async function* () {
      yield* pseudoRandomChunks(bytesBeforeFailure, 'failing');
      throw new Error('body failed');
    })(),
  );
}

async function listAllPages(store: BlobStore, prefix: string): Promise<{ keys: string[]; cursor?: string }[]> {
  const pages = [];
  let cursor: string | undefined;
  do {
    const page = await store.list(prefix, cursor);
    pages.push(page);
    cursor = page.cursor;
  } while (cursor !== undefined && pages.length < 100);
  return pages;
}

async function inBatches<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += concurrency) {
    await Promise.all(items.slice(i, i + concurrency).map(work));
  }
}

/** 'stored', 'rejected', or 'pending' if the promise has not settled within `ms`. */
async function outcomeWithin(promise: Promise<unknown>, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const pending = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  try {
    return await Promise.race([
      promise.then(
        () => 'stored',
        () => 'rejected',
      ),
      pending,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
