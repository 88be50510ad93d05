/**
 * Runs the MetadataStore contract against the in-memory store and against DynamoDB Local, then
 * injects the DynamoDB failures that a single local server cannot produce on demand.
 */
import { randomUUID } from 'node:crypto';
import { DeleteTableCommand, DynamoDBClient, ThrottlingException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { DynamoMetadataStore, dynamoDocumentClient, ensureTable } from '../../shared/adapters/dynamo-metadata-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { ConflictError, TransactionConditionError } from '../../shared/errors.js';
import { metadataStoreContract } from './metadata-store.contract.js';

metadataStoreContract('MemoryMetadataStore', async () => new MemoryMetadataStore());

describe('on DynamoDB Local', () => {
  const tableName = `metadata-contract-${randomUUID()}`;
  let tableClient: DynamoDBClient | undefined;
  let documentClient: DynamoDBDocumentClient | undefined;

  afterAll(async () => {
    await tableClient?.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
    tableClient?.destroy();
    documentClient?.destroy();
  });

  metadataStoreContract('DynamoMetadataStore', async () => {
    const endpoint = inject('dynamoEndpoint');
    tableClient = new DynamoDBClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    await ensureTable(tableClient, tableName);
    documentClient = dynamoDocumentClient({ endpoint });
    return new DynamoMetadataStore(documentClient, tableName);
  });

  it('ensureTable is a no-op for an existing table', async () => {
    await ensureTable(tableClient!, tableName);
  });
});

describe('DynamoMetadataStore failure handling (mocked client)', () => {
  function mockedStore() {
    const client = dynamoDocumentClient({ endpoint: 'http://127.0.0.1:1' });
    const mock = mockClient(client);
    return { mock, store: new DynamoMetadataStore(client, 'mocked') };
  }

  const key = { pk: 'p', sk: 's' };
  const cancelled = (codes: string[]) =>
    new TransactionCanceledException({
      message: 'Transaction cancelled',
      $metadata: {},
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it('turns a TransactionConflict cancellation into a ConflictError', async () => {
    const { mock, store } = mockedStore();
    mock.on(TransactWriteCommand).rejects(cancelled(['None', 'TransactionConflict']));
    const attempt = store.transact([
      { op: 'put', item: { ...key, attrs: {} } },
      { op: 'update', key: { pk: 'p', sk: 't' }, add: { n: 1 } },
    ]);
    await expect(attempt).rejects.toBeInstanceOf(ConflictError);
    await expect(attempt).rejects.toThrow('concurrent change, retry');
  });

  it('turns a ConditionalCheckFailed cancellation into a TransactionConditionError naming the op', async () => {
    const { mock, store } = mockedStore();
    mock.on(TransactWriteCommand).rejects(cancelled(['None', 'ConditionalCheckFailed']));
    const error = await store
      .transact([
        { op: 'put', item: { ...key, attrs: {} } },
        { op: 'delete', key: { pk: 'p', sk: 't' }, conditions: [{ kind: 'present' }] },
      ])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TransactionConditionError);
    expect((error as TransactionConditionError).failedIndexes).toEqual([1]);
  });

  it('rethrows other failures unchanged', async () => {
    const { mock, store } = mockedStore();
    const throttled = new ThrottlingException({ message: 'slow down', $metadata: {} });
    mock.on(TransactWriteCommand).rejects(throttled);
    await expect(store.transact([{ op: 'delete', key }])).rejects.toBe(throttled);

    const otherCancellation = cancelled(['None', 'ThrottlingError']);
    mock.on(TransactWriteCommand).rejects(otherCancellation);
    await expect(store.transact([{ op: 'delete', key }])).rejects.toBe(otherCancellation);
  });

  it('sends the whole transaction in one request with generated expression names', async () => {
    const { mock, store } = mockedStore();
    mock.on(TransactWriteCommand).resolves({});
    await store.transact([
      {
        op: 'update',
        key,
        add: { 'a.b': 1 },
        set: { '#x': 'y' },
        remove: [':z'],
        conditions: [{ kind: 'atLeast', field: 'a.b', value: 0 }],
      },
    ]);
    const [call] = mock.commandCalls(TransactWriteCommand);
    const update = call!.args[0].input.TransactItems![0]!.Update!;
    expect(update.UpdateExpression).toBe('ADD #n0 :v1 SET #n1 = :v2 REMOVE #n2');
    expect(update.ConditionExpression).toBe('#n0 >= :v0');
    expect(update.ExpressionAttributeNames).toEqual({ '#n0': 'a.b', '#n1': '#x', '#n2': ':z' });
    expect(update.ExpressionAttributeValues).toEqual({ ':v0': 0, ':v1': 1, ':v2': 'y' });
  });

  it('retries unprocessed keys of a batch read', async () => {
    const { mock, store } = mockedStore();
    mock
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { mocked: [{ pk: 'p', sk: 'a', n: 1 }] },
        UnprocessedKeys: { mocked: { Keys: [{ pk: 'p', sk: 'b' }] } },
      })
      .resolvesOnce({ Responses: { mocked: [{ pk: 'p', sk: 'b', n: 2 }] } });
    const found = await store.getMany([
      { pk: 'p', sk: 'a' },
      { pk: 'p', sk: 'b' },
    ]);
    expect([...found.values()]).toEqual([
      { pk: 'p', sk: 'a', attrs: { n: 1 } },
      { pk: 'p', sk: 'b', attrs: { n: 2 } },
    ]);
    expect(mock.commandCalls(BatchGetCommand)[1]!.args[0].input.RequestItems).toEqual({
      mocked: { Keys: [{ pk: 'p', sk: 'b' }], ConsistentRead: true },
    });
  });

  it('retries unprocessed items of a batch write', async () => {
    const { mock, store } = mockedStore();
    const leftOver = [{ DeleteRequest: { Key: { pk: 'p', sk: 'b' } } }];
    mock
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { mocked: leftOver } })
      .resolvesOnce({});
    await store.writeMany([
      { op: 'put', item: { pk: 'p', sk: 'a', attrs: {} } },
      { op: 'delete', key: { pk: 'p', sk: 'b' } },
    ]);
    const calls = mock.commandCalls(BatchWriteCommand);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.args[0].input.RequestItems).toEqual({ mocked: leftOver });
  });
});
