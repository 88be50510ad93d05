import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { localEngine, loadImage } from '../support/engine.js';

const T = 'acme';
let engine: Engine;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, cleanup } = await localEngine());
});
afterEach(async () => cleanup());

const feed = async (since?: string) => (await engine.events.list(T, { since })).events.map((e) => ({ type: e.type, ...e.detail }));

describe('the event feed', () => {
  it('reports each change once, in order, with the ids an integrator needs', async () => {
    const image = await loadImage(engine, T, [[{ path: 'etc/motd', content: 'hi' }]], ['base:1']);
    await engine.images.tag(T, 'base:1', 'base:latest');
    const c = await engine.containers.create(T, { image: 'base:1', name: 'c1', mounts: [{ target: '/data', volume: 'keep' }] });
    await engine.containers.rename(T, 'c1', 'c2');
    const committed = await engine.commit(T, 'c2', { reference: 'snap:1' });
    await engine.containers.remove(T, 'c2');
    await engine.volumes.remove(T, 'keep');
    await engine.images.untag(T, 'base:latest');
    await engine.images.remove(T, 'snap:1');

    expect(await feed()).toEqual([
      { type: 'image.loaded', image, tags: ['base:1'], new: true },
      { type: 'image.tagged', image, tag: 'base:latest' },
      { type: 'volume.created', volume: 'keep', anonymous: false },
      { type: 'container.created', container: c.id, name: 'c1', image, volumes: ['keep'] },
      { type: 'container.renamed', container: c.id, name: 'c2', previousName: 'c1' },
      { type: 'container.committed', container: c.id, image: committed.id, tags: ['snap:1'], new: true },
      { type: 'container.removed', container: c.id, name: 'c2', image },
      { type: 'volume.removed', volume: 'keep', anonymous: false },
      { type: 'image.untagged', image, tag: 'base:latest' },
      { type: 'image.removed', image: committed.id, tags: ['snap:1'] },
    ]);
  });

  it('has no event for a refused change', async () => {
    await loadImage(engine, T, [[{ path: 'a', content: 'a' }]], ['base:1']);
    await engine.containers.create(T, { image: 'base:1', name: 'c1' });
    const before = (await engine.events.list(T)).events.length;
    await expect(engine.images.tag(T, 'missing:1', 'x:1')).rejects.toMatchObject({ status: 404 });
    await expect(engine.containers.create(T, { image: 'base:1', name: 'c1' })).rejects.toMatchObject({ status: 409 });
    await expect(engine.images.remove(T, 'base:1')).rejects.toMatchObject({ status: 409 });
    await expect(engine.images.untag(T, 'never:1')).rejects.toMatchObject({ status: 404 });
    await expect(engine.volumes.remove(T, 'nope')).rejects.toMatchObject({ status: 404 });
    expect((await engine.events.list(T)).events).toHaveLength(before);
  });

  it('pages from a cursor and keeps the cursor when nothing is new', async () => {
    for (let i = 0; i < 5; i++) await engine.volumes.create(T, `v${i}`);
    const first = await engine.events.list(T, { limit: 2 });
    expect(first.events.map((e) => e.detail.volume)).toEqual(['v0', 'v1']);
    const rest = await engine.events.list(T, { since: first.cursor });
    expect(rest.events.map((e) => e.detail.volume)).toEqual(['v2', 'v3', 'v4']);
    expect(await engine.events.list(T, { since: rest.cursor })).toEqual({ events: [], cursor: rest.cursor });
    expect(new Set([...first.events, ...rest.events].map((e) => e.id)).size).toBe(5);
  });

  it('keeps tenants apart', async () => {
    await engine.volumes.create(T, 'mine');
    await engine.volumes.create('other', 'theirs');
    expect((await engine.events.list(T)).events.map((e) => e.detail.volume)).toEqual(['mine']);
    expect((await engine.events.list('other')).events.map((e) => e.tenant)).toEqual(['other']);
  });
});
