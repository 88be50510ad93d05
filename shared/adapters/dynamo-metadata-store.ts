/**
 * The metadata port on DynamoDB: one table, partition key `pk`, sort key `sk`, every other
 * attribute stored top-level beside them.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateTableCommand, DescribeTableCommand, UpdateTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  type QueryCommandInput,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { ConcurrentChangeError, TransactionConditionError } from '../errors.js';
import { compareNames } from '../paths.js';
import { checkTransaction, checkUpdateFields, itemId, type Condition, type Item, type ItemKey, type MetadataStore, type QueryOptions, type QueryPage, type WriteOp } from '../ports/metadata-store.js';

const BATCH_GET_KEYS = 100;
const BATCH_WRITE_ITEMS = 25;
const BATCHES_IN_FLIGHT = 8;
const DEFAULT_QUERY_LIMIT = 1000;
/** Unprocessed batch entries mean throttling; give up only after a long, growing wait. */
const MAX_BATCH_RETRIES = 10;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
type PutOrDelete = Extract<WriteOp, { op: 'put' }> | Extract<WriteOp, { op: 'delete' }>;

export class DynamoMetadataStore implements MetadataStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(key: ItemKey): Promise<Item | undefined> {
    const { Item: stored } = await this.client.send(new GetCommand({ TableName: this.tableName, Key: keyOf(key), ConsistentRead: true }));
    return stored === undefined ? undefined : toItem(stored);
  }

  async getMany(keys: readonly ItemKey[]): Promise<Map<string, Item>> {
    const unique = [...new Map(keys.map((key) => [itemId(key), keyOf(key)])).values()];
    const found = new Map<string, Item>();
    await inBatches(chunk(unique, BATCH_GET_KEYS), async (batch) => {
      let pending: Record<string, unknown>[] = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) await backoff(attempt, 'BatchGetItem');
        const response = await this.client.send(new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }));
        for (const stored of response.Responses?.[this.tableName] ?? []) {
          const item = toItem(stored);
          found.set(itemId(item), item);
        }
        pending = response.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    });
    return found;
  }

  async query(pk: string, options: QueryOptions = {}): Promise<QueryPage> {
    const { prefix, limit = DEFAULT_QUERY_LIMIT } = options;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`query limit must be a positive integer, got ${limit}`);
    let after = options.after;
    // DynamoDB rejects a start key outside the begins_with range, so settle those cases here.
    if (prefix !== undefined && after !== undefined && !after.startsWith(prefix)) {
      if (compareNames(after, prefix) > 0) return { items: [] }; // every key with the prefix sorts before `after`
      after = undefined; // every key with the prefix sorts after `after`
    }

    const input: QueryCommandInput = {
      TableName: this.tableName,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': 'pk' },
      ExpressionAttributeValues: { ':pk': pk },
      ConsistentRead: true,
      Limit: limit,
    };
    if (prefix !== undefined && prefix !== '') {
      input.KeyConditionExpression += ' AND begins_with(#sk, :prefix)';
      input.ExpressionAttributeNames!['#sk'] = 'sk';
      input.ExpressionAttributeValues![':prefix'] = prefix;
    }
    if (after !== undefined) input.ExclusiveStartKey = { pk, sk: after };

    const response = await this.client.send(new QueryCommand(input));
    const items = (response.Items ?? []).map(toItem);
    if (response.LastEvaluatedKey === undefined) return { items };
    return { items, last: items.at(-1)?.sk ?? (response.LastEvaluatedKey.sk as string) };
  }

  async last(pk: string): Promise<Item | undefined> {
    const response = await this.client.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: '#pk = :pk',
        ExpressionAttributeNames: { '#pk': 'pk' },
        ExpressionAttributeValues: { ':pk': pk },
        ConsistentRead: true,
        ScanIndexForward: false,
        Limit: 1,
      }),
    );
    const stored = response.Items?.[0];
    return stored === undefined ? undefined : toItem(stored);
  }

  async transact(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return;
    checkTransaction(ops);
    const TransactItems = ops.map((op) => this.transactItem(op));
    try {
      // The token makes the SDK's own retries idempotent: a retried commit is not seen as a failed condition.
      await this.client.send(new TransactWriteCommand({ TransactItems, ClientRequestToken: randomUUID() }));
    } catch (error) {
      throw translateTransactionError(error);
    }
  }

  async writeMany(ops: readonly PutOrDelete[]): Promise<void> {
    // BatchWriteItem refuses two requests for one key, and batches run concurrently: keep the last op per key.
    const lastPerKey = new Map<string, PutOrDelete>();
    for (const op of ops) {
      const key = op.op === 'put' ? op.item : op.key;
      lastPerKey.delete(itemId(key));
      lastPerKey.set(itemId(key), op);
    }
    const requests = [...lastPerKey.values()].map((op) => (op.op === 'put' ? { PutRequest: { Item: storedItem(op.item) } } : { DeleteRequest: { Key: keyOf(op.key) } }));
    await inBatches(chunk(requests, BATCH_WRITE_ITEMS), async (batch) => {
      let pending: typeof batch = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) await backoff(attempt, 'BatchWriteItem');
        const response = await this.client.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }));
        pending = (response.UnprocessedItems?.[this.tableName] ?? []) as typeof batch;
      }
    });
  }

  private transactItem(op: WriteOp): TransactItem {
    const TableName = this.tableName;
    const expression = new ExpressionBuilder();
    const condition = op.conditions === undefined ? undefined : expression.conditions(op.conditions);
    switch (op.op) {
      case 'put':
        return { Put: { TableName, Item: storedItem(op.item), ...expression.parts(condition) } };
      case 'delete':
        return { Delete: { TableName, Key: keyOf(op.key), ...expression.parts(condition) } };
      case 'check': {
        if (condition === undefined) throw new Error(`check of ${itemId(op.key)} has no conditions`);
        const parts = { ...expression.parts(condition), ConditionExpression: condition };
        return { ConditionCheck: { TableName, Key: keyOf(op.key), ...parts } };
      }
      case 'update': {
        const UpdateExpression = expression.update(op);
        return { Update: { TableName, Key: keyOf(op.key), UpdateExpression, ...expression.parts(condition) } };
      }
    }
  }
}

/** Builds expressions with a placeholder for every name and value, so any field name is safe. */
class ExpressionBuilder {
  private readonly names: Record<string, string> = {};
  private readonly values: Record<string, unknown> = {};

  conditions(conditions: readonly Condition[]): string | undefined {
    if (conditions.length === 0) return undefined;
    return conditions.map((condition) => this.condition(condition)).join(' AND ');
  }

  update(op: Extract<WriteOp, { op: 'update' }>): string {
    const add = Object.entries(op.add ?? {});
    const set = Object.entries(op.set ?? {}).filter(([, value]) => value !== undefined);
    const remove = op.remove ?? [];
    checkUpdateFields(op);
    const clauses: string[] = [];
    const adds = add.map(([field, by]) => `${this.name(field)} ${this.value(by)}`);
    const sets = set.map(([field, value]) => `${this.name(field)} = ${this.value(value)}`);
    const removes = remove.map((field) => this.name(field));
    if (adds.length > 0) clauses.push(`ADD ${adds.join(', ')}`);
    if (sets.length > 0) clauses.push(`SET ${sets.join(', ')}`);
    if (removes.length > 0) clauses.push(`REMOVE ${removes.join(', ')}`);
    return clauses.join(' ');
  }

  /** The expression-related request members, omitting empty ones (DynamoDB rejects empty maps). */
  parts(conditionExpression: string | undefined) {
    return {
      ...(conditionExpression === undefined ? {} : { ConditionExpression: conditionExpression }),
      ...(Object.keys(this.names).length === 0 ? {} : { ExpressionAttributeNames: this.names }),
      ...(Object.keys(this.values).length === 0 ? {} : { ExpressionAttributeValues: this.values }),
    };
  }

  private condition(condition: Condition): string {
    switch (condition.kind) {
      case 'absent':
        return `attribute_not_exists(${this.name('pk')})`;
      case 'present':
        return `attribute_exists(${this.name('pk')})`;
      case 'equals':
        return `${this.name(condition.field)} = ${this.value(condition.value)}`;
      case 'atLeast':
        return `${this.name(condition.field)} >= ${this.value(condition.value)}`;
      case 'lacks':
        return `attribute_not_exists(${this.name(condition.field)})`;
    }
  }

  private name(field: string): string {
    const existing = Object.entries(this.names).find(([, name]) => name === field);
    if (existing !== undefined) return existing[0];
    const placeholder = `#n${Object.keys(this.names).length}`;
    this.names[placeholder] = field;
    return placeholder;
  }

  private value(value: unknown): string {
    const placeholder = `:v${Object.keys(this.values).length}`;
    this.values[placeholder] = value;
    return placeholder;
  }
}

function translateTransactionError(error: unknown): unknown {
  if (!(error instanceof Error) || error.name !== 'TransactionCanceledException') return error;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  const failedIndexes = reasons.flatMap((reason, index) => (reason.Code === 'ConditionalCheckFailed' ? [index] : []));
  if (failedIndexes.length > 0) {
    return new TransactionConditionError(`transaction condition failed on op ${failedIndexes.join(', ')}`, failedIndexes);
  }
  if (reasons.some((reason) => reason.Code === 'TransactionConflict')) return new ConcurrentChangeError('concurrent change, retry');
  return error;
}

function storedItem(item: Item): Record<string, unknown> {
  if ('pk' in item.attrs || 'sk' in item.attrs) throw new Error('item attributes cannot be named pk or sk');
  return { ...item.attrs, pk: item.pk, sk: item.sk };
}

function keyOf(key: ItemKey): Record<string, string> {
  return { pk: key.pk, sk: key.sk };
}

function toItem(stored: Record<string, unknown>): Item {
  const { pk, sk, ...attrs } = stored;
  return { pk: pk as string, sk: sk as string, attrs };
}

function chunk<T>(values: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < values.length; start += size) chunks.push(values.slice(start, start + size));
  return chunks;
}

/** Runs `work` over the batches with at most BATCHES_IN_FLIGHT at a time. */
async function inBatches<T>(batches: readonly T[], work: (batch: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < batches.length) await work(batches[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(BATCHES_IN_FLIGHT, batches.length) }, worker));
}

async function backoff(attempt: number, operation: string): Promise<void> {
  if (attempt > MAX_BATCH_RETRIES) throw new Error(`${operation} left items unprocessed after ${MAX_BATCH_RETRIES} retries`);
  const ceiling = Math.min(2_000, 25 * 2 ** attempt);
  await sleep(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Creates the table (on-demand, pk/sk strings) unless it exists, and waits until it is ACTIVE. */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    // The stream drives reclaiming and events, as on the deployed table; older tables get it now.
    if (!Table?.StreamSpecification?.StreamEnabled) {
      await client.send(new UpdateTableCommand({ TableName: tableName, StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } }));
    }
  } catch (error) {
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    try {
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: 'pk', AttributeType: 'S' },
            { AttributeName: 'sk', AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
          StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
        }),
      );
    } catch (createError) {
      // Someone else created it between our describe and create.
      if ((createError as Error).name !== 'ResourceInUseException') throw createError;
    }
  }
  await waitUntilTableExists({ client, maxWaitTime: 120, minDelay: 1, maxDelay: 5 }, { TableName: tableName });
}

/** A document client with the marshalling the store relies on; an endpoint means DynamoDB Local. */
export function dynamoDocumentClient(options: { endpoint?: string; region?: string }): DynamoDBDocumentClient {
  const local = options.endpoint !== undefined;
  const client = new DynamoDBClient({
    // A connection that goes silent fails the call (and the SDK retries) instead of hanging.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 30_000 },
    ...(local ? { endpoint: options.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
    ...(options.region !== undefined ? { region: options.region } : local ? { region: 'us-east-1' } : {}),
  });
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
}
