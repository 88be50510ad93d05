import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { dockerArchive } from '../support/images.js';
import { text } from '../support/engine.js';

/**
 * Crashes and failures at each step: a failed change loses no acknowledged data and leaves no
 * metadata pointing at a missing object. Faults are injected by wrapping the real adapters.
 */
const T = 'acme';
let dir: string;
let meta: MemoryMetadataStore;
let blobs: FsBlobStore;
let engine: Engine;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-faults-'));
  meta = new MemoryMetadataStore();
  blobs = new FsBlobStore(dir, async (k) => k);
  engine = new Engine(meta, blobs);
  const { archive } = await dockerArchive([[{ path: 'etc/hosts', content: 'original' }]], { tags: ['base:1'] });
  await engine.images.load(T, [archive]);
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

async function allBlobs(store: BlobStore, prefix = 't/'): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.list(prefix, cursor);
    out.push(...page.keys);
    cursor = page.cursor;
  } while (cursor);
  return out;
}

/** Every file extent the metadata mentions must exist in the blob store. */
async function danglingExtents(): Promise<string[]> {
  const keys = new Set(await allBlobs(blobs));
  const dump = JSON.stringify((meta as unknown as { partitions: Map<string, { items: Map<string, unknown> }> }).partitions, (_k, v) => (v instanceof Map ? [...v.values()] : v));
  // Index packs hold their nodes as JSON strings: unescape them so their keys are seen too.
  const mentioned = [...dump.replace(/\\"/g, '"').matchAll(/"(t\/[^"]+)"/g)].map((m) => m[1]).filter((k) => !k.endsWith('/'));
  if (mentioned.length === 0) throw new Error('the metadata mentions no blob at all: the check would prove nothing');
  return mentioned.filter((k) => !keys.has(k));
}

describe('faults', () => {
  it('a file written into a volume through a container survives the container and the sweep', async () => {
    const { id } = await engine.containers.create(T, { image: 'base:1', name: 'writer', mounts: [{ target: '/data', volume: 'kept' }] });
    await engine.files.writeFile(T, { kind: 'container', ref: id }, '/data/state.json', Buffer.from('{"n":1}'));
    await engine.files.writeRange(T, { kind: 'container', ref: id }, '/data/state.json', 'end', Buffer.from(' '));
    await engine.containers.remove(T, id);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await text((await engine.files.read(T, { kind: 'volume', name: 'kept' }, '/state.json')).body)).toBe('{"n":1} ');
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('a write whose metadata transaction fails keeps the old content; its object is an orphan the sweep reclaims', async () => {
    const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'base:1' })).id };
    await engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('acknowledged'));
    const before = await allBlobs(blobs);
    const transact = meta.transact.bind(meta);
    meta.transact = async () => {
      throw new Error('injected: DynamoDB unavailable');
    };
    await expect(engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('lost'))).rejects.toThrow(/injected/);
    meta.transact = transact;
    expect(await text((await engine.files.read(T, c, '/etc/hosts')).body)).toBe('acknowledged');
    expect(await danglingExtents()).toEqual([]);
    // The outcome of a failed call is unknown (it may have committed), so the object stays until the sweep.
    expect((await allBlobs(blobs)).length).toBe(before.length + 1);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(await allBlobs(blobs)).toEqual(before);
    expect(await text((await engine.files.read(T, c, '/etc/hosts')).body)).toBe('acknowledged');
  });

  it('a write whose upload fails changes no metadata', async () => {
    const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'base:1' })).id };
    const put = blobs.put.bind(blobs);
    blobs.put = async () => {
      throw new Error('injected: S3 unavailable');
    };
    await expect(engine.files.writeFile(T, c, '/etc/hosts', Buffer.from('never'))).rejects.toThrow(/injected/);
    blobs.put = put;
    expect(await text((await engine.files.read(T, c, '/etc/hosts')).body)).toBe('original');
    expect(await engine.changes(T, c.ref)).toEqual([]);
  });

  it('a load that fails when recording the image leaves no image and no dangling metadata, and the sweep reclaims the rest', async () => {
    const { archive } = await dockerArchive([[{ path: 'x', content: 'new layer' }]], { tags: ['fails:1'] });
    const transact = meta.transact.bind(meta);
    meta.transact = async (ops) => {
      if (ops.some((op) => op.op === 'update' && op.key.pk.endsWith('#images'))) throw new Error('injected: crash before the image record');
      return transact(ops);
    };
    await expect(engine.images.load(T, [archive])).rejects.toThrow(/injected/);
    meta.transact = transact;
    await expect(engine.images.resolve(T, 'fails:1')).rejects.toMatchObject({ status: 404 });
    expect(await danglingExtents()).toEqual([]);
    const report = await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(report.layers).toBe(1);
    expect(await danglingExtents()).toEqual([]);
    expect((await engine.images.list(T)).map((i) => i.tags)).toEqual([['base:1']]);
  });

  it('a commit that fails midway leaves the container as it was and no new image', async () => {
    const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'base:1' })).id };
    await engine.files.writeFile(T, c, '/new', Buffer.from('data'));
    const put = blobs.put.bind(blobs);
    let calls = 0;
    blobs.put = async (key, body) => {
      if (key.includes('/configs/') && calls++ === 0) throw new Error('injected: config upload failed');
      return put(key, body);
    };
    await expect(engine.commit(T, c.ref, { reference: 'snap:1' })).rejects.toThrow(/injected/);
    blobs.put = put;
    await expect(engine.images.resolve(T, 'snap:1')).rejects.toMatchObject({ status: 404 });
    expect(await text((await engine.files.read(T, c, '/new')).body)).toBe('data');
    expect(await danglingExtents()).toEqual([]);
    const { tags } = await engine.commit(T, c.ref, { reference: 'snap:1' });
    expect(tags).toEqual(['snap:1']);
  });

  it('a removed container leaves nothing pointing at its objects once swept', async () => {
    const c = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'base:1' })).id };
    await engine.files.writeFile(T, c, '/a', Buffer.from('a'));
    await engine.files.writeFile(T, c, '/a', Buffer.from('b'));
    await engine.containers.remove(T, c.ref);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await allBlobs(blobs)).filter((k) => k.includes('/ns/'))).toEqual([]);
    expect(await danglingExtents()).toEqual([]);
  });
});
