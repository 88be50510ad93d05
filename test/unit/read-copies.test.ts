import { describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { READ_COPY_LIFETIME_MS } from '../../shared/domain/read-copies.js';
import { readAll } from '../../shared/domain/streams.js';
import { Engine } from '../../shared/engine.js';
import { loadImage } from '../support/engine.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const T = 'acme';

describe('copies behind large reads', () => {
  it('are made once per content, reused while they outlive the URL, and swept after their hour', async () => {
    const root = await mkdtemp(join(tmpdir(), 'strata-read-copies-'));
    try {
      let now = Date.now();
      const blobs = new FsBlobStore(root, async (key) => key);
      const engine = new Engine(new MemoryMetadataStore(), blobs, { clock: () => now });
      // Copies made: distinct objects written under reads/ (a copy may be a put inside).
      const written = new Set<string>();
      const put = blobs.put.bind(blobs);
      blobs.put = (key, body) => (key.includes('/reads/') && written.add(key), put(key, body));
      const copy = blobs.copy.bind(blobs);
      blobs.copy = (from, to, range) => (to.includes('/reads/') && written.add(to), copy(from, to, range));
      const copies = () => written.size;
      await loadImage(engine, T, [[{ path: 'big', content: Buffer.alloc(5 << 20, 9) }]], ['base:1']);
      await engine.containers.create(T, { image: 'base:1', name: 'c' });
      const target = { kind: 'container' as const, ref: 'c' };
      const read = async () => {
        const { extents, body } = await engine.files.read(T, target, '/big');
        body.destroy();
        return engine.files.copyOut(T, extents, 15 * 60_000);
      };
      const first = await read();
      const second = await read();
      expect(second).toEqual({ key: first.key, reused: true });
      expect(copies()).toBe(1);
      expect((await readAll(await blobs.get(first.key))).equals(Buffer.alloc(5 << 20, 9))).toBe(true);

      // The sweep keeps a copy younger than its hour.
      await engine.sweeper.sweep(T);
      expect(await blobs.size(first.key)).toBe(5 << 20);

      // Once the copy would not outlive a fresh URL, a new one is made.
      now += READ_COPY_LIFETIME_MS - 15 * 60_000;
      const third = await read();
      expect(third.reused).toBe(false);
      expect(copies()).toBe(2);
      // A write makes new content: a new copy.
      await engine.files.writeFile(T, target, '/big', Buffer.from('small now'));
      const { extents } = await engine.files.read(T, target, '/big');
      expect((await engine.files.copyOut(T, extents, 15 * 60_000)).reused).toBe(false);

      // Past its hour, the sweep drops it.
      now += 16 * 60_000;
      await engine.sweeper.sweep(T);
      await expect(blobs.size(first.key)).rejects.toMatchObject({ status: 404 });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
