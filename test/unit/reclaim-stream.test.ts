import { describe, expect, it } from 'vitest';
import { reclaimStream } from '../../functions/handlers/reclaim.js';
import type { Services } from '../../functions/composition.js';
import { keys } from '../../shared/keys.js';
import { localEngine, loadImage } from '../support/engine.js';

const T = 'acme';
const context = { awsRequestId: 'test', getRemainingTimeInMillis: () => 60_000 } as never;

const garbageInsert = (sequence: string, tenant: string, id: string) => ({
  eventName: 'INSERT',
  dynamodb: { SequenceNumber: sequence, Keys: { pk: { S: keys.garbage(tenant, id).pk }, sk: { S: id } }, NewImage: { blobPrefix: { S: 'x' } } },
});

describe('the reclaim stream handler', () => {
  it("drops a removed container's namespace and a removed image's layers, and ignores other records", async () => {
    const { engine, meta, cleanup } = await localEngine();
    try {
      await loadImage(engine, T, [[{ path: 'a', content: 'A' }]], ['base:1']);
      await engine.containers.create(T, { image: 'base:1', name: 'c1' });
      await engine.files.writeFile(T, { kind: 'container', ref: 'c1' }, '/own', Buffer.alloc(100_000, 1));
      await engine.containers.remove(T, 'c1');
      const [garbage] = (await meta.query(keys.garbageList(T))).items;
      const image = (await engine.images.records(T))[0];
      await engine.images.remove(T, 'base:1');

      const handler = reclaimStream(() => ({ engine, config: { sweepGraceMs: 0 } }) as unknown as Services);
      const answer = await handler(
        {
          Records: [
            garbageInsert('1', T, garbage.sk),
            { eventName: 'MODIFY', dynamodb: { SequenceNumber: '2', Keys: { pk: { S: `${T}#containers` }, sk: { S: 'x' } } } },
            {
              eventName: 'REMOVE',
              dynamodb: {
                SequenceNumber: '3',
                Keys: { pk: { S: keys.image(T, image.id).pk }, sk: { S: image.id } },
                OldImage: { diffIds: { L: image.diffIds.map((d) => ({ S: d })) }, stack: { L: image.stack.map((n) => ({ S: n })) }, configKey: { S: image.configKey } },
              },
            },
          ],
        } as never,
        context,
      );
      expect(answer).toEqual({ batchItemFailures: [] });
      // Nothing is left for the sweep.
      expect(await engine.sweeper.sweep(T, { graceMs: 0 })).toMatchObject({ namespaces: 0, layers: 0, chains: 0 });
      expect((await meta.query(keys.layers(T))).items).toEqual([]);
    } finally {
      await cleanup();
    }
  });

  it('reports the records that failed, so only they are retried', async () => {
    let calls = 0;
    const failing = {
      engine: { sweeper: { reclaimGarbage: async (_: string, id: string) => (calls++, id === 'bad' ? Promise.reject(new Error('injected')) : undefined) } },
      config: { sweepGraceMs: 0 },
    } as unknown as Services;
    const answer = await reclaimStream(() => failing)({ Records: [garbageInsert('1', T, 'good'), garbageInsert('2', T, 'bad'), garbageInsert('3', T, 'good2')] } as never, context);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: '2' }] });
    expect(calls).toBe(3);
  });
});
