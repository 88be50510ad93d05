import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reclaimStream } from '../../functions/handlers/reclaim.js';
import { servicesOver } from '../../functions/composition.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import { keys } from '../../shared/keys.js';
import { queryAll } from '../../shared/ports/metadata-store.js';
import { loadImage, text } from '../support/engine.js';
import { serverConfig } from '../support/server-config.js';

/**
 * Expiry: a container or volume past its time is gone at once for every reader, and its removal
 * follows (TTL through the stream deployed, the sweep or the local server's timer here).
 */
const T = 'acme';
const HOUR = 3600_000;
let now = Date.UTC(2030, 0, 1);
let dir: string;
let meta: MemoryMetadataStore;
let blobs: FsBlobStore;
let engine: Engine;

beforeEach(async () => {
  now = Date.UTC(2030, 0, 1);
  dir = await mkdtemp(join(tmpdir(), 'strata-expiry-'));
  meta = new MemoryMetadataStore();
  blobs = new FsBlobStore(dir, async (key) => key);
  engine = new Engine(meta, blobs, { clock: () => now });
  await loadImage(engine, T, [[{ path: 'etc/hosts', content: 'h' }]], ['base:1']);
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const box = (ref: string) => ({ kind: 'container' as const, ref });
const names = async () => (await engine.containers.list(T)).map((c) => c.name);

describe('containers', () => {
  it('are gone for every reader at once when their time passes, then removed with their anonymous volumes', async () => {
    const created = await engine.containers.create(T, { image: 'base:1', name: 'brief', expiry: { ttlSeconds: 3600 }, mounts: [{ target: '/scratch' }] });
    expect(created).toMatchObject({ expiresAt: now + HOUR, ttlSeconds: 3600 });
    await engine.files.writeFile(T, box('brief'), '/x', Buffer.from('x'));
    expect(await names()).toEqual(['brief']);
    now += HOUR;
    // The writer's engine caches the record: it is still refused.
    expect(await names()).toEqual([]);
    await expect(engine.containers.inspect(T, 'brief')).rejects.toMatchObject({ status: 404 });
    await expect(engine.files.read(T, box('brief'), '/x')).rejects.toMatchObject({ status: 404 });
    await expect(engine.files.writeFile(T, box('brief'), '/y', Buffer.from('y'))).rejects.toMatchObject({ status: 404 });
    expect((await engine.diskUsage(T)).containers.count).toBe(0);
    // Its storage goes with the next expiry run, and its events say why.
    expect(await engine.expirations.expireDue(T)).toBe(1);
    expect(await queryAll(meta, keys.containers(T))).toEqual([]);
    expect(await queryAll(meta, keys.expiries(T))).toEqual([]);
    expect(await engine.volumes.list(T)).toEqual([]);
    const removed = (await engine.events.list(T)).events.filter((e) => e.type.endsWith('.removed'));
    // The anonymous volume went with its container; it did not expire itself.
    expect(removed.map((e) => [e.type, e.detail.expired])).toEqual([
      ['container.removed', true],
      ['volume.removed', undefined],
    ]);
    await engine.sweeper.sweep(T, { graceMs: 0 });
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('with extendOnWrite, each write pushes the expiry back, so only an idle container expires', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'active', expiry: { ttlSeconds: 100, extendOnWrite: true } });
    for (let i = 0; i < 5; i++) {
      now += 60_000;
      await engine.files.writeFile(T, box('active'), `/f${i}`, Buffer.from('x'));
    }
    expect((await engine.containers.inspect(T, 'active')).expiresAt).toBe(now + 100_000);
    // A write soon after the last push does not touch the record again.
    now += 5_000;
    await engine.files.writeFile(T, box('active'), '/soon', Buffer.from('x'));
    expect((await engine.containers.inspect(T, 'active')).expiresAt).toBe(now - 5_000 + 100_000);
    expect(await engine.expirations.expireDue(T)).toBe(0);
    now += 100_000;
    expect(await engine.expirations.expireDue(T)).toBe(1);
    expect(await names()).toEqual([]);
  });

  it('PATCH sets, moves or clears the expiry; bad settings are refused with 400', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'c' });
    expect(await engine.containers.setExpiry(T, 'c', { expiresAt: now + 10_000 })).toMatchObject({ expiresAt: now + 10_000 });
    expect(await engine.containers.setExpiry(T, 'c', { ttlSeconds: 60, extendOnWrite: true })).toMatchObject({ expiresAt: now + 60_000, ttlSeconds: 60, extendOnWrite: true });
    expect(await engine.containers.setExpiry(T, 'c', { extendOnWrite: false })).toEqual(expect.not.objectContaining({ extendOnWrite: true }));
    const cleared = await engine.containers.setExpiry(T, 'c', { expiresAt: null });
    expect(cleared.expiresAt).toBeUndefined();
    expect(await queryAll(meta, keys.expiries(T))).toEqual([]);
    now += 10 * HOUR;
    expect(await names()).toEqual(['c']);
    for (const bad of [{ expiresAt: now - 1 }, { expiresAt: now + 1, ttlSeconds: 5 }, { extendOnWrite: true }, { ttlSeconds: 0 }, { expiresAt: now + 5, extendOnWrite: true }]) {
      await expect(engine.containers.create(T, { image: 'base:1', expiry: bad })).rejects.toMatchObject({ status: 400 });
    }
  });

  it('a fork lives as its source does, with its own expiry from now', async () => {
    await engine.containers.create(T, { image: 'base:1', name: 'src', expiry: { ttlSeconds: 600, extendOnWrite: true } });
    now += 300_000;
    expect(await engine.fork(T, 'src', { name: 'copy' })).toMatchObject({ expiresAt: now + 600_000, ttlSeconds: 600, extendOnWrite: true });
    now += 300_001;
    expect(await names()).toEqual(['copy']);
  });
});

describe('volumes', () => {
  it('an expired volume in use lives on until its last container goes, and goes with it', async () => {
    await engine.volumes.create(T, 'cache', { expiry: { ttlSeconds: 60 } });
    await engine.containers.create(T, { image: 'base:1', name: 'user', mounts: [{ target: '/cache', volume: 'cache' }] });
    now += 120_000;
    expect(await engine.expirations.expireDue(T)).toBe(0);
    expect((await engine.volumes.list(T)).map((v) => v.name)).toEqual(['cache']);
    await engine.files.writeFile(T, box('user'), '/cache/still', Buffer.from('usable'));
    await engine.containers.remove(T, 'user');
    expect(await engine.volumes.list(T)).toEqual([]);
    expect(await queryAll(meta, keys.volumes(T))).toEqual([]);
  });

  it('an expired volume nobody uses is gone at once, and its name makes a new one', async () => {
    await engine.volumes.create(T, 'tmp', { expiry: { expiresAt: now + 1000 } });
    await engine.files.writeFile(T, { kind: 'volume', name: 'tmp' }, '/old', Buffer.from('old'));
    now += 1000;
    await expect(engine.volumes.inspect(T, 'tmp')).rejects.toMatchObject({ status: 404 });
    expect(await engine.volumes.list(T)).toEqual([]);
    const fresh = await engine.volumes.create(T, 'tmp');
    expect(fresh.expiresAt).toBeUndefined();
    await expect(engine.files.read(T, { kind: 'volume', name: 'tmp' }, '/old')).rejects.toMatchObject({ status: 404 });
  });
});

describe('the stream handing over what TTL deleted', () => {
  async function ttlDeletes(owner: string) {
    const item = (await meta.get(keys.expiry(T, owner)))!;
    await meta.transact([{ op: 'delete', key: keys.expiry(T, owner) }]);
    const handler = reclaimStream(() => ({ ...servicesOver(serverConfig(dir), meta, blobs), engine }));
    const image = { pk: { S: item.pk }, sk: { S: item.sk }, name: { S: item.attrs.name as string }, expiry: { S: 'c' }, at: { N: String(item.attrs.at) } };
    return handler({ Records: [{ eventName: 'REMOVE', dynamodb: { SequenceNumber: '1', Keys: { pk: image.pk, sk: image.sk }, OldImage: image } }] } as never, {} as never);
  }

  it('removes an expired container, and re-arms one whose expiry a write pushed back', async () => {
    const gone = await engine.containers.create(T, { image: 'base:1', name: 'gone', expiry: { ttlSeconds: 10 } });
    const kept = await engine.containers.create(T, { image: 'base:1', name: 'kept', expiry: { ttlSeconds: 10, extendOnWrite: true } });
    now += 9_500;
    await engine.files.writeFile(T, box('kept'), '/busy', Buffer.from('b'));
    now += 1_000;
    expect(await ttlDeletes(`c:${gone.id}`)).toEqual({ batchItemFailures: [] });
    expect(await ttlDeletes(`c:${kept.id}`)).toEqual({ batchItemFailures: [] });
    expect((await queryAll(meta, keys.containers(T))).map((i) => i.attrs.name)).toEqual(['kept']);
    expect((await meta.get(keys.expiry(T, `c:${kept.id}`)))?.attrs.at).toBe(now - 1_000 + 10_000);
    expect(await text((await engine.files.read(T, box('kept'), '/busy')).body)).toBe('b');
  });
});
