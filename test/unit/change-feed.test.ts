import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { queryAll, type MetadataStore } from '../../shared/ports/metadata-store.js';
import { feedOwner, FEED_RETENTION_MS, type FeedEntry } from '../../shared/domain/change-feed.js';
import { loadImage, localEngine } from '../support/engine.js';

/**
 * The change feed: every committed change of a tree has one entry, numbered without gaps in
 * commit order, whoever wrote it and however many wrote at once.
 */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let blobs: BlobStore;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, meta, blobs, cleanup } = await localEngine());
  await loadImage(
    engine,
    T,
    [
      [
        { path: 'etc/', dir: true },
        { path: 'etc/hosts', content: 'h' },
        { path: 'd/', dir: true },
        { path: 'd/a', content: 'a' },
      ],
    ],
    ['base:1'],
  );
  await engine.containers.create(T, { image: 'base:1', name: 'box', mounts: [{ target: '/data', volume: 'vol' }] });
});
afterEach(async () => cleanup());

const box = { kind: 'container' as const, ref: 'box' };
const all = async (ref = 'box'): Promise<FeedEntry[]> => (await engine.feedOf(T, { kind: 'container', ref }, { after: 0 })).entries;
const brief = (entries: FeedEntry[]) => entries.map((e) => `${e.seq} ${e.kind} ${e.path}${e.from ? ` <- ${e.from}` : ''}`);

describe('what the feed records', () => {
  it('one entry per change, with its kind, path, type, size and ETag', async () => {
    const written = await engine.files.writeFile(T, box, '/etc/new', Buffer.from('12345'));
    await engine.files.writeRange(T, box, '/etc/new', 'end', Buffer.from('6'));
    await engine.files.truncate(T, box, '/etc/hosts', 0);
    await engine.files.mkdir(T, box, '/made');
    await engine.files.symlink(T, box, '/link', '/etc/new');
    await engine.files.link(T, box, '/etc/new', '/hard');
    await engine.files.setAttributes(T, box, '/d/a', { mode: 0o600 });
    await engine.files.rename(T, box, '/d', '/e');
    await engine.files.rename(T, box, '/link', '/link2');
    await engine.files.remove(T, box, '/made');
    await engine.files.remove(T, box, '/e', { recursive: true });
    const entries = await all();
    expect(brief(entries)).toEqual([
      '1 added /etc/new',
      '2 modified /etc/new',
      '3 modified /etc/hosts',
      '4 added /made',
      '5 added /link',
      '6 added /hard',
      '7 modified /d/a',
      '8 renamed /e <- /d',
      '9 renamed /link2 <- /link',
      '10 deleted /made',
      '11 deleted /e',
    ]);
    expect(entries[0]).toMatchObject({ type: 'file', size: 5, etag: written.etag, time: expect.any(Number) });
    expect(entries[1]).toMatchObject({ size: 6 });
    expect(entries[3]).toMatchObject({ type: 'dir' });
    expect(entries[10]).toMatchObject({ type: 'dir' });
  });

  it('has nothing for a refused change, and writes into a mounted volume go to the volume feed', async () => {
    await expect(engine.files.writeFile(T, box, '/etc/hosts', Buffer.from('x'), { ifMatch: 'stale' })).rejects.toMatchObject({ status: 412 });
    await expect(engine.files.mkdir(T, box, '/etc')).rejects.toMatchObject({ status: 409 });
    await engine.files.writeFile(T, box, '/data/state', Buffer.from('{}'));
    await engine.files.writeFile(T, { kind: 'volume', name: 'vol' }, '/direct', Buffer.from('{}'));
    expect(await all()).toEqual([]);
    expect(brief((await engine.feedOf(T, { kind: 'volume', name: 'vol' })).entries)).toEqual(['1 added /state', '2 added /direct']);
  });

  it('follows the container through a fork: the source goes on numbering, the fork starts its own', async () => {
    await engine.files.writeFile(T, box, '/before', Buffer.from('b'));
    await engine.fork(T, 'box', { name: 'fork' });
    await engine.files.writeFile(T, box, '/after', Buffer.from('a'));
    await engine.files.writeFile(T, { kind: 'container', ref: 'fork' }, '/mine', Buffer.from('m'));
    expect(brief(await all())).toEqual(['1 added /before', '2 added /after']);
    expect(brief(await all('fork'))).toEqual(['1 added /mine']);
  });
});

describe('numbering under concurrency', () => {
  it('8 writers on two engines (two functions) get every number once, in commit order, and none is lost', async () => {
    const engines = [engine, new Engine(meta, blobs)];
    const writers = 8;
    const each = 25;
    const acknowledged: string[] = [];
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < each; i++) {
          const path = `/w${w}-${i}`;
          await engines[w % 2].files.writeFile(T, box, path, Buffer.from(path));
          acknowledged.push(path);
        }
      }),
    );
    const entries = await all();
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: writers * each }, (_, i) => i + 1));
    expect(entries.map((e) => e.path).sort()).toEqual([...acknowledged].sort());
    // Each writer's changes appear in the order it made them.
    for (let w = 0; w < writers; w++) {
      const own = entries.filter((e) => e.path.startsWith(`/w${w}-`)).map((e) => e.path);
      expect(own).toEqual(Array.from({ length: each }, (_, i) => `/w${w}-${i}`));
    }
  });

  it('a reader that has read up to n never meets a number below n later', async () => {
    const seen: number[] = [];
    let after = 0;
    let done = false;
    const reader = (async () => {
      while (!done) {
        const page = await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after });
        seen.push(...page.entries.map((e) => e.seq));
        after = page.next;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
    await Promise.all(
      Array.from({ length: 6 }, (_, w) =>
        (async () => {
          for (let i = 0; i < 15; i++) await engine.files.writeFile(T, box, `/r${w}-${i}`, Buffer.from('x'));
        })(),
      ),
    );
    done = true;
    await reader;
    const page = await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after });
    seen.push(...page.entries.map((e) => e.seq));
    expect(seen).toEqual(Array.from({ length: 90 }, (_, i) => i + 1));
  });
});

describe('reading', () => {
  it('waits for the next change when asked, and answers as soon as it lands', async () => {
    const started = Date.now();
    const waiting = engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: 'latest', waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 150));
    await engine.files.writeFile(T, box, '/late', Buffer.from('l'));
    const page = await waiting;
    expect(brief(page.entries)).toEqual(['1 added /late']);
    expect(Date.now() - started).toBeLessThan(9_000);
    expect(await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: 1, waitMs: 0 })).toEqual({ entries: [], next: 1 });
  });

  it('pages by `next`, trims entries past the retention but keeps the newest, and answers 410 for a cursor behind the trim', async () => {
    for (let i = 0; i < 5; i++) await engine.files.writeFile(T, box, `/p${i}`, Buffer.from('p'));
    const first = await engine.feedOf(T, { kind: 'container', ref: 'box' }, { limit: 2 });
    expect(first.next).toBe(2);
    expect(brief((await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: first.next, limit: 2 })).entries)).toEqual(['3 added /p2', '4 added /p3']);
    const id = (await engine.containers.record(T, 'box')).id;
    expect(await engine.feed.trim(T, feedOwner.container(id), Date.now() + FEED_RETENTION_MS)).toBe(4);
    await expect(engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: 2 })).rejects.toMatchObject({ status: 410, message: expect.stringContaining('follow from 4') });
    expect(brief((await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: 4 })).entries)).toEqual(['5 added /p4']);
    // The numbering goes on from the newest kept.
    await engine.files.writeFile(T, box, '/p5', Buffer.from('p'));
    expect(brief((await engine.feedOf(T, { kind: 'container', ref: 'box' }, { after: 5 })).entries)).toEqual(['6 added /p5']);
  });

  it('goes with its container once the container is removed and swept', async () => {
    await engine.files.writeFile(T, box, '/x', Buffer.from('x'));
    const id = (await engine.containers.record(T, 'box')).id;
    await engine.containers.remove(T, 'box');
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await queryAll(meta, keys.feed(T, feedOwner.container(id)))).toEqual([]);
    await expect(engine.feedOf(T, { kind: 'container', ref: 'box' })).rejects.toMatchObject({ status: 404 });
  });
});
