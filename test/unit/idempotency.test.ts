import { afterEach, describe, expect, it } from 'vitest';
import { Idempotency } from '../../shared/domain/idempotency.js';
import { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { localEngine, loadImage } from '../support/engine.js';
import { FaultPlan, faultyStores } from '../support/fault-injection.js';

const T = 'acme';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function world(): Promise<{ engine: Engine; meta: MetadataStore; blobs: BlobStore }> {
  const { engine, meta, blobs, cleanup } = await localEngine();
  cleanups.push(cleanup);
  await loadImage(engine, T, [[{ path: 'etc/motd', content: 'hi' }]], ['base:1']);
  await engine.containers.create(T, { image: 'base:1', name: 'c1' });
  await engine.files.writeFile(T, { kind: 'container', ref: 'c1' }, '/note', Buffer.from('note'));
  return { engine, meta, blobs };
}

const fingerprint = Idempotency.fingerprint('commit c1', '{"reference":"snap:1"}');
const commitOnce = (engine: Engine) => engine.idempotency.once<{ id: string; tags: string[] }>(T, 'key-1', fingerprint, (recordAlso) => engine.commit(T, 'c1', { reference: 'snap:1' }, recordAlso));

describe('a commit under an Idempotency-Key', () => {
  it('retried after a crash that lost its answer makes one image, and the retry answers it', async () => {
    // Find the commit's recording transaction: the last transact it makes.
    const counting = await world();
    const plan = new FaultPlan();
    const stores = faultyStores(counting.meta, counting.blobs, plan);
    await commitOnce(new Engine(stores.meta, stores.blobs));
    const recording = plan.log.lastIndexOf('meta.transact') + 1;

    const { engine, meta, blobs } = await world();
    const before = (await engine.images.list(T)).length;
    const crashing = faultyStores(meta, blobs, new FaultPlan(recording, 'crash-after'));
    await expect(commitOnce(new Engine(crashing.meta, crashing.blobs))).rejects.toThrow(/injected crash/);
    const made = (await engine.images.list(T)).length;
    expect(made).toBe(before + 1);

    const retry = await commitOnce(engine);
    expect(retry.replayed).toBe(true);
    expect((await engine.images.list(T)).length).toBe(made);
    expect((await engine.images.inspect(T, 'snap:1')).id).toBe(retry.result.id);
  });

  it('failed before it recorded, the retry does the work', async () => {
    const { engine, meta, blobs } = await world();
    const counting = new FaultPlan();
    const stores = faultyStores(meta, blobs, counting);
    const failing = faultyStores(meta, blobs, new FaultPlan(3, 'fail'));
    await expect(commitOnce(new Engine(failing.meta, failing.blobs))).rejects.toThrow(/injected fault/);
    const retry = await commitOnce(new Engine(stores.meta, stores.blobs));
    expect(retry.replayed).toBe(false);
    expect((await engine.images.inspect(T, 'snap:1')).id).toBe(retry.result.id);
  });

  it('is forgotten after a day, and refused under a different request before that', async () => {
    let now = Date.now();
    const { meta, blobs } = await world();
    const engine = new Engine(meta, blobs, { clock: () => now });
    const first = await commitOnce(engine);
    await expect(engine.idempotency.once(T, 'key-1', Idempotency.fingerprint('other'), async () => 'x')).rejects.toMatchObject({ status: 422 });
    now += 24 * 3600_000 + 1000;
    const later = await commitOnce(engine);
    expect(later.replayed).toBe(false);
    expect(later.result.id).not.toBe(first.result.id);
  });
});
