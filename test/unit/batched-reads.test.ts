import { describe, expect, it } from 'vitest';
import { BatchedReads } from '../../shared/domain/batched-reads.js';
import type { Extent } from '../../shared/domain/nodes.js';
import { readAll } from '../../shared/domain/streams.js';
import type { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { localEngine, loadImage } from '../support/engine.js';

/** Counts blob GETs: the figure batching exists to bring down. */
function countGets(blobs: BlobStore): { gets: number } {
  const counter = { gets: 0 };
  const get = blobs.get.bind(blobs);
  blobs.get = (key, range) => {
    counter.gets++;
    return get(key, range);
  };
  return counter;
}

async function exportEntries(engine: Engine, ref: string): Promise<Map<string, string>> {
  const { readTar } = await import('../../shared/tar/tar-reader.js');
  const { Readable } = await import('node:stream');
  const out = new Map<string, string>();
  for await (const entry of readTar(Readable.from(await readAll(await engine.export('acme', ref))))) {
    out.set(entry.header.path, entry.header.type === 'file' ? (await readAll(entry.body)).toString('latin1') : entry.header.type);
  }
  return out;
}

describe('batched reads', () => {
  it('export a 2,000-file container in a handful of GETs, with every byte where it belongs', async () => {
    const { engine, blobs, cleanup } = await localEngine();
    try {
      const files = Array.from({ length: 2000 }, (_, i) => ({ path: `d${i % 7}/f${i}`, content: `file ${i} `.repeat(1 + (i % 50)) }));
      // A second layer changes some files, and a big file streams on its own.
      await loadImage(
        engine,
        'acme',
        [
          files,
          [
            { path: 'd1/f1', content: 'changed' },
            { path: 'big', content: Buffer.alloc(3 << 20, 7) },
          ],
        ],
        ['many:1'],
      );
      await engine.containers.create('acme', { image: 'many:1', name: 'c' });
      await engine.files.writeFile('acme', { kind: 'container', ref: 'c' }, '/d2/own', Buffer.from('own'));
      const counter = countGets(blobs);
      const entries = await exportEntries(engine, 'c');
      console.log(`export of 2,002 files: ${counter.gets} blob GETs`);
      expect(counter.gets).toBeLessThan(20);
      for (const { path, content } of files) if (path !== 'd1/f1') expect(entries.get(path), path).toBe(content);
      expect(entries.get('d1/f1')).toBe('changed');
      expect(entries.get('d2/own')).toBe('own');
      expect(entries.get('big')).toBe(Buffer.alloc(3 << 20, 7).toString('latin1'));
    } finally {
      await cleanup();
    }
  });

  it('export files in the order their layer stores them, so a tree whose tar is not in name order still costs a few GETs', async () => {
    const { engine, blobs, cleanup } = await localEngine();
    try {
      // 40 MiB in 2,000 files of 20 KiB, stored in a shuffled order: in name order, neighbours in
      // the listing lie far apart in the layer (as with the benchmark's tree).
      const files = Array.from({ length: 2000 }, (_, i) => ({ path: `d${i % 10}/f${String(i).padStart(4, '0')}`, content: Buffer.alloc(20 << 10, i % 251) }));
      const shuffled = files
        .map((f, i) => ({ f, k: (i * 7919) % 2000 }))
        .sort((a, b) => a.k - b.k)
        .map(({ f }) => f);
      await loadImage(engine, 'acme', [shuffled], ['scattered:1']);
      await engine.containers.create('acme', { image: 'scattered:1', name: 's' });
      const counter = countGets(blobs);
      const entries = await exportEntries(engine, 's');
      console.log(`export of 2,000 scattered 20 KiB files: ${counter.gets} blob GETs`);
      // 40 MiB in runs of at most 8 MiB: a handful; in name order it took hundreds.
      expect(counter.gets).toBeLessThanOrEqual(8);
      for (const { path, content } of files) expect(entries.get(path) === content.toString('latin1'), path).toBe(true);
      expect(entries.get('d0/')).toBe('directory');
    } finally {
      await cleanup();
    }
  });

  it('merge extents only within a blob, across small gaps, and give each file its own bytes in any order', async () => {
    const { blobs, cleanup } = await localEngine();
    try {
      const counter = countGets(blobs);
      const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
      await blobs.put('t/x/a', data);
      await blobs.put('t/x/b', data);
      const reads = new BatchedReads(blobs, () => expect.fail('every file here is small'), { maxGapBytes: 1000 });
      const lists: Extent[][] = [
        [['t/x/a', 5000, 100]],
        [['t/x/a', 0, 100]],
        [
          ['t/x/b', 0, 10],
          ['t/x/a', 5600, 50],
        ],
        [['t/x/a', 90_000, 10]],
      ];
      counter.gets = 0;
      const bodies = reads.read(lists);
      const got = await Promise.all(bodies.map(async (body) => readAll(body())));
      // Both blobs hold the same bytes, so each file's expected bytes come from `data`.
      lists.forEach((extents, i) => {
        expect(got[i]).toEqual(Buffer.concat(extents.map(([, offset, length]) => data.subarray(offset, offset + length))));
      });
      // a: [0,100) alone (gap 4,900), [5000,5650) together, [90000,...) alone; b: one.
      expect(counter.gets).toBe(4);
    } finally {
      await cleanup();
    }
  });

  it('read scattered files without their gaps when the gaps would be most of what is held', async () => {
    const { blobs, cleanup } = await localEngine();
    try {
      const counter = countGets(blobs);
      await blobs.put('t/x/a', Buffer.alloc(200_000, 3));
      // Ten 10-byte files 20,000 bytes apart: with gaps, one run of 180 KB for 100 useful bytes.
      const lists: Extent[][] = Array.from({ length: 10 }, (_, i) => [['t/x/a', i * 20_000, 10]]);
      counter.gets = 0;
      const merged = new BatchedReads(blobs, () => expect.fail('small'), { maxGapBytes: 32_000 }).read(lists);
      for (const body of merged) expect(await readAll(body())).toEqual(Buffer.alloc(10, 3));
      expect(counter.gets).toBe(1);
      counter.gets = 0;
      const bounded = new BatchedReads(blobs, () => expect.fail('small'), { maxGapBytes: 32_000, maxHeldBytes: 100_000 }).read(lists);
      for (const body of bounded) expect(await readAll(body())).toEqual(Buffer.alloc(10, 3));
      expect(counter.gets).toBe(10);
    } finally {
      await cleanup();
    }
  });
});
