import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishable, publishStream } from '../../functions/handlers/events.js';
import { EventBridgeEventBus } from '../../shared/adapters/eventbridge-event-bus.js';
import type { StrataEvent } from '../../shared/domain/events.js';
import { EventBridgeRecorder } from '../support/eventbridge-recorder.js';

const recorder = new EventBridgeRecorder();
let endpoint: string;
beforeAll(async () => {
  endpoint = await recorder.start();
});
afterAll(async () => recorder.stop());

const client = () => new EventBridgeClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'k', secretAccessKey: 's' } });
const event = (i: number, detail: Record<string, unknown> = { volume: `v${i}`, anonymous: false }): StrataEvent => ({
  id: `${String(i).padStart(9, '0')}-${'0'.repeat(12)}`,
  type: 'volume.created',
  tenant: 'acme',
  time: 1_700_000_000_000 + i,
  detail,
});

describe('the EventBridge bus adapter', () => {
  it('sends 10 entries a request, in order, each with the whole event as detail', async () => {
    recorder.accepted.length = 0;
    recorder.requests.length = 0;
    const events = Array.from({ length: 23 }, (_, i) => event(i));
    expect(await new EventBridgeEventBus(client(), 'bus').publish(events)).toBe(23);
    expect(recorder.requests).toEqual([10, 10, 3]);
    expect(recorder.accepted.map((e) => JSON.parse(e.Detail))).toEqual(events);
    expect(recorder.accepted[0]).toMatchObject({ Source: 'strata', DetailType: 'volume.created', EventBusName: 'bus' });
  });

  it('keeps each request under 256 KiB however few entries that makes', async () => {
    recorder.requests.length = 0;
    const big = Array.from({ length: 5 }, (_, i) => event(i, { volume: 'x'.repeat(100_000), anonymous: false }));
    expect(await new EventBridgeEventBus(client(), 'bus').publish(big)).toBe(5);
    expect(recorder.requests).toEqual([2, 2, 1]);
  });

  it('answers how many went out before the first refused entry', async () => {
    recorder.refuse.clear();
    recorder.requests.length = 0;
    const bus = new EventBridgeEventBus(client(), 'bus');
    // The 14th entry this recorder sees from now is refused: the second request's fourth.
    recorder.refuse.add(recorder.receivedCount + 13);
    expect(await bus.publish(Array.from({ length: 20 }, (_, i) => event(i)))).toBe(13);
    // It stops there: the third request is never sent.
    expect(recorder.requests).toEqual([10, 10]);
  });

  it('rejects when the first request fails, and answers what went out when a later one does', async () => {
    const mocked = new EventBridgeClient({ region: 'us-east-1' });
    const mock = mockClient(mocked);
    mock.on(PutEventsCommand).rejects(Object.assign(new Error('unreachable'), { name: 'TimeoutError' }));
    await expect(new EventBridgeEventBus(mocked, 'bus').publish([event(1)])).rejects.toThrow('unreachable');
    mock.reset();
    mock
      .on(PutEventsCommand)
      .resolvesOnce({ FailedEntryCount: 0, Entries: Array.from({ length: 10 }, () => ({ EventId: 'x' })) })
      .rejects(new Error('gone'));
    expect(await new EventBridgeEventBus(mocked, 'bus').publish(Array.from({ length: 15 }, (_, i) => event(i)))).toBe(10);
  });
});

describe('the stream publisher', () => {
  const record = (sequence: number, pk: string, attrs: Record<string, unknown>, eventName = 'INSERT') => ({
    eventName,
    dynamodb: {
      SequenceNumber: String(sequence),
      Keys: { pk: { S: pk }, sk: { S: `${String(sequence).padStart(9, '0')}-${'0'.repeat(12)}` } },
      NewImage: { pk: { S: pk }, sk: { S: `${String(sequence).padStart(9, '0')}-${'0'.repeat(12)}` }, ...attrs },
    },
  });
  const eventAttrs = { type: { S: 'volume.created' }, time: { N: '5' }, detail: { M: { volume: { S: 'v' }, anonymous: { BOOL: false } } }, expiresAt: { N: '9' } };

  it('publishes only INSERTs of event items, and reports every record from the first unpublished one', async () => {
    const published: StrataEvent[][] = [];
    const handler = publishStream(() => ({ publish: async (events) => (published.push([...events]), 1) }));
    const answer = await handler({
      Records: [
        record(1, 'acme#events', eventAttrs),
        record(2, 'acme#images', { type: { S: 'volume.created' } }),
        record(3, 'acme#events', eventAttrs, 'MODIFY'),
        record(4, 'acme#events', eventAttrs),
        record(5, 'bad tenant#events', eventAttrs),
        record(6, 'acme#events', eventAttrs),
      ],
    } as never);
    expect(published).toEqual([
      [
        { id: '000000001-000000000000', type: 'volume.created', tenant: 'acme', time: 5, detail: { volume: 'v', anonymous: false } },
        expect.objectContaining({ id: '000000004-000000000000' }),
        expect.objectContaining({ id: '000000006-000000000000' }),
      ],
    ]);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: '4' }, { itemIdentifier: '6' }] });
  });

  it("batches a feed's entries into tree.changed events, and reports every record of an unpublished event", async () => {
    const container = 'c'.repeat(64);
    const feedRecord = (sequence: number, owner: string, seq: number, path: string, extra: Record<string, unknown> = {}) => ({
      eventName: 'INSERT',
      dynamodb: {
        SequenceNumber: String(sequence),
        Keys: { pk: { S: `acme#feed#${owner}` }, sk: { S: String(seq).padStart(15, '0') } },
        NewImage: {
          pk: { S: `acme#feed#${owner}` },
          sk: { S: String(seq).padStart(15, '0') },
          kind: { S: 'added' },
          path: { S: path },
          type: { S: 'file' },
          size: { N: '1' },
          time: { N: String(100 + seq) },
          ...extra,
        },
      },
    });
    const published: StrataEvent[][] = [];
    const handler = publishStream(() => ({ publish: async (events) => (published.push([...events]), 2) }));
    const answer = await handler({
      Records: [
        feedRecord(1, `c:${container}`, 7, '/a'),
        record(2, 'acme#events', eventAttrs),
        feedRecord(3, 'v:0123abcd', 1, '/v', { volume: { S: 'data' } }),
        feedRecord(4, `c:${container}`, 8, '/b'),
      ],
    } as never);
    expect(published[0].map((e) => e.type)).toEqual(['tree.changed', 'volume.created', 'tree.changed']);
    expect(published[0][0]).toMatchObject({
      tenant: 'acme',
      time: 108,
      detail: {
        container,
        first: 7,
        last: 8,
        changes: [
          { seq: 7, kind: 'added', path: '/a', type: 'file', size: 1, time: 107 },
          { seq: 8, path: '/b' },
        ],
      },
    });
    expect(published[0][2]).toMatchObject({ detail: { volume: 'data', first: 1, last: 1, changes: [{ path: '/v' }] } });
    expect(published[0][2].detail.changes).toEqual([expect.not.objectContaining({ volume: 'data' })]);
    // The same batch again makes the same ids.
    expect(publishable([feedRecord(1, `c:${container}`, 7, '/a'), feedRecord(4, `c:${container}`, 8, '/b')] as never)[0].event.id).toBe(published[0][0].id);
    expect(answer).toEqual({ batchItemFailures: [{ itemIdentifier: '3' }] });
  });

  it('reports the whole batch when the bus cannot be reached', async () => {
    const handler = publishStream(() => ({ publish: async () => Promise.reject(new Error('down')) }));
    expect(await handler({ Records: [record(1, 'acme#events', eventAttrs), record(2, 'acme#events', eventAttrs)] } as never)).toEqual({
      batchItemFailures: [{ itemIdentifier: '1' }, { itemIdentifier: '2' }],
    });
  });
});
