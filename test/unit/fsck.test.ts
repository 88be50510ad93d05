import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobKeys, keys } from '../../shared/keys.js';
import { containerNamespace } from '../../shared/domain/containers.js';
import { statsKeys } from '../../shared/domain/stats.js';
import type { Engine } from '../../shared/engine.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { loadImage, localEngine } from '../support/engine.js';

/** fsck finds each kind of damage it claims to, and repairs only what is safe. */
const T = 'acme';
let engine: Engine;
let meta: MetadataStore;
let blobs: BlobStore;
let cleanup: () => Promise<void>;
let id: string;

beforeEach(async () => {
  ({ engine, meta, blobs, cleanup } = await localEngine());
  await loadImage(engine, T, [[{ path: 'etc/hosts', content: 'original' }]], ['base:1']);
  id = (await engine.containers.create(T, { image: 'base:1', name: 'box' })).id;
  await engine.files.writeFile(T, { kind: 'container', ref: 'box' }, '/f', Buffer.from('12345'));
});
afterEach(async () => cleanup());

describe('fsck', () => {
  it('finds nothing in a healthy store', async () => {
    const report = await engine.fsck.check(T, { graceMs: 0 });
    expect(report.problems).toEqual([]);
    expect(report.checked.items).toBeGreaterThan(5);
    expect(report.checked.blobs).toBeGreaterThanOrEqual(3);
  });

  it('reports a node whose blob is gone as dangling, and does not "repair" it', async () => {
    const own = (await blobs.list(blobKeys.namespacePrefix(T, containerNamespace(id)))).keys;
    await blobs.delete(own);
    const report = await engine.fsck.check(T, { graceMs: 0, repair: true });
    expect(report.problems).toEqual([{ kind: 'dangling', detail: expect.stringContaining(`points at missing blob ${own[0]}`), repaired: false }]);
  });

  it('reports an orphan blob only once it is past the grace period, and removes it on repair', async () => {
    const key = blobKeys.namespaceObject(T, containerNamespace(id));
    await blobs.put(key, Buffer.from('nobody points here'));
    expect((await engine.fsck.check(T)).problems).toEqual([]);
    const report = await engine.fsck.check(T, { graceMs: 0, repair: true });
    expect(report.problems).toEqual([{ kind: 'orphan', detail: `blob ${key} is not used by anything`, repaired: true }]);
    await expect(blobs.size(key)).rejects.toMatchObject({ status: 404 });
    expect((await engine.fsck.check(T, { graceMs: 0 })).problems).toEqual([]);
  });

  it('reports a size counter that differs from a recount, and sets it right on repair', async () => {
    await meta.transact([{ op: 'update', key: statsKeys(T, containerNamespace(id))[2], add: { size: 100 } }]);
    const report = await engine.fsck.check(T, { repair: true });
    expect(report.problems).toEqual([{ kind: 'counter', detail: 'container box counts 105 bytes but holds 5', repaired: true }]);
    expect((await engine.containers.inspect(T, 'box')).size).toBe(5);
    expect((await engine.fsck.check(T)).problems).toEqual([]);
  });

  it('reports a tag of a missing image and removes it on repair', async () => {
    await meta.transact([{ op: 'put', item: { ...keys.tag(T, 'docker.io/library/ghost:1'), attrs: { image: 'sha256:gone' } } }]);
    const report = await engine.fsck.check(T, { repair: true });
    expect(report.problems).toEqual([{ kind: 'dangling', detail: 'tag docker.io/library/ghost:1 names missing image sha256:gone', repaired: true }]);
    expect((await engine.fsck.check(T)).problems).toEqual([]);
  });

  it('reports an image whose layer record is gone', async () => {
    const [layer] = (await meta.query(keys.layers(T))).items;
    await meta.transact([{ op: 'delete', key: { pk: layer.pk, sk: layer.sk } }]);
    const report = await engine.fsck.check(T, { graceMs: 0 });
    // Its blob is still used by the image's index, so it is not an orphan.
    expect(report.problems.map((p) => p.kind)).toEqual(['dangling']);
    expect(report.problems[0].detail).toMatch(/uses missing layer record sha256:/);
  });
});
