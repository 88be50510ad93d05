import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Event } from '../../functions/http/event-schemas.js';
import { EVENT_SCHEMA_FILE, eventSchemaText } from '../../functions/openapi/write-event-schema.js';
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
      { type: 'image.loaded', image, tags: ['base:1'], size: 2, layers: 1, new: true },
      { type: 'image.tagged', image, tag: 'base:latest' },
      { type: 'volume.created', volume: 'keep', anonymous: false },
      { type: 'container.created', container: c.id, name: 'c1', image, volumes: ['keep'] },
      { type: 'container.renamed', container: c.id, name: 'c2', previousName: 'c1' },
      { type: 'container.committed', container: c.id, name: 'c2', image: committed.id, tags: ['snap:1'], size: expect.any(Number), layers: 2, new: true },
      { type: 'container.removed', container: c.id, name: 'c2', image },
      { type: 'volume.removed', volume: 'keep', anonymous: false },
      { type: 'image.untagged', image, tags: ['base:latest'] },
      { type: 'image.removed', image: committed.id, tags: ['snap:1'] },
    ]);
  });

  it('matches the published schema, which is the checked-in events.schema.json', async () => {
    expect(readFileSync(EVENT_SCHEMA_FILE, 'utf8')).toBe(eventSchemaText());
    const image = await loadImage(engine, T, [[{ path: 'a', content: 'a' }]], ['base:1']);
    await engine.images.tag(T, image, 'base:2');
    await engine.containers.create(T, { image: 'base:1', name: 'c1' });
    await engine.containers.rename(T, 'c1', 'c2');
    await engine.commit(T, 'c2', { reference: 'snap:1' });
    await engine.images.remove(T, 'base:1', { force: true });
    await engine.containers.remove(T, 'c2');
    await engine.images.remove(T, image);
    await engine.volumes.create(T, 'v');
    await engine.volumes.remove(T, 'v');
    const { events } = await engine.events.list(T);
    expect(new Set(events.map((e) => e.type)).size).toBe(10);
    for (const event of events) expect(Event.safeParse(event).error).toBeUndefined();
    // The schema is strict where it matters: an unknown detail field or a wrong id is refused.
    expect(Event.safeParse({ ...events[0], detail: { ...events[0].detail, extra: 1 } }).success).toBe(false);
    expect(Event.safeParse({ ...events[0], id: 'x' }).success).toBe(false);
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
