import { describe, expect, it } from 'vitest';
import { localEngine, loadImage } from '../support/engine.js';

const T = 'acme';

describe('directory listings', () => {
  it('give a cursor only when more entries follow, so a full last page costs no empty call', async () => {
    const { engine, cleanup } = await localEngine();
    try {
      await loadImage(engine, T, [Array.from({ length: 6 }, (_, i) => ({ path: `d/f${i}`, content: 'x' }))], ['base:1']);
      await engine.containers.create(T, { image: 'base:1', name: 'c' });
      const target = { kind: 'container' as const, ref: 'c' };
      await engine.files.writeFile(T, target, '/d/g', Buffer.from('own'));
      // Seven entries: pages of 7 end at once; pages of 4 take two calls, the second without a cursor.
      const whole = await engine.files.list(T, target, '/d', { limit: 7 });
      expect(whole.entries).toHaveLength(7);
      expect(whole.cursor).toBeUndefined();
      const first = await engine.files.list(T, target, '/d', { limit: 4 });
      expect(first.entries.map((e) => e.name)).toEqual(['f0', 'f1', 'f2', 'f3']);
      expect(first.cursor).toBeDefined();
      const second = await engine.files.list(T, target, '/d', { limit: 4, cursor: first.cursor });
      expect(second.entries.map((e) => e.name)).toEqual(['f4', 'f5', 'g']);
      expect(second.cursor).toBeUndefined();
    } finally {
      await cleanup();
    }
  });
});
