import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, type DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand, type _Record as StreamRecord, type Shard } from '@aws-sdk/client-dynamodb-streams';
import type { Context, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';

type StreamHandler = (event: DynamoDBStreamEvent, context: Context) => Promise<DynamoDBBatchResponse>;

/** Per shard, the sequence number of the last record handled, or `done` for a closed shard read to its end. */
interface PumpState {
  streamArn?: string;
  shards: Record<string, string>;
}

/** A stream record as Lambda hands it to a function: binary values as base64, the time in seconds. */
export function lambdaRecord(record: StreamRecord, streamArn: string, region: string): DynamoDBRecord {
  const { ApproximateCreationDateTime, ...change } = record.dynamodb ?? {};
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion,
    eventSource: 'aws:dynamodb',
    awsRegion: region,
    eventSourceARN: streamArn,
    dynamodb: JSON.parse(
      JSON.stringify({ ...change, ApproximateCreationDateTime: ApproximateCreationDateTime ? ApproximateCreationDateTime.getTime() / 1000 : undefined }, (_, value) =>
        value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value,
      ),
    ),
  };
}

const PAGE = 100;

/**
 * What Lambda's event source mapping does for the deployed stream functions, for the local
 * server: reads DynamoDB Local's stream of the table shard by shard, hands each page to the same
 * handler, and on reported failures retries from the first failed record on the next poll.
 * Its position is kept in a file, so a restart goes on where it stopped (a page it was handling
 * may be handled twice; the handlers are idempotent).
 */
export class StreamPump {
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;

  constructor(
    private readonly dynamo: DynamoDBClient,
    private readonly streams: DynamoDBStreamsClient,
    private readonly table: string,
    private readonly handler: StreamHandler,
    private readonly stateFile: string,
    private readonly options: { readonly pollMs?: number; readonly region?: string; readonly log?: (message: string) => void } = {},
  ) {}

  async start(): Promise<void> {
    await mkdir(dirname(this.stateFile), { recursive: true });
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const state: PumpState = await readFile(this.stateFile, 'utf8').then(
      (text) => JSON.parse(text) as PumpState,
      () => ({ shards: {} }),
    );
    while (!this.stopped) {
      try {
        await this.pass(state);
      } catch (error) {
        this.options.log?.(`stream of ${this.table}: ${(error as Error).message}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.pollMs ?? 1000);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One look at every shard, in the order the stream lists them (parents before children). */
  private async pass(state: PumpState): Promise<void> {
    const { Table } = await this.dynamo.send(new DescribeTableCommand({ TableName: this.table }));
    const streamArn = Table?.LatestStreamArn;
    if (!streamArn) return;
    if (state.streamArn !== streamArn) Object.assign(state, { streamArn, shards: {} });
    for (const shard of await this.shards(streamArn)) {
      if (this.stopped) return;
      const id = shard.ShardId!;
      if (state.shards[id] === 'done') continue;
      const done = await this.drain(streamArn, shard, state);
      if (!done) return; // A failure stops here: later shards wait, so the order holds.
    }
  }

  private async shards(streamArn: string): Promise<Shard[]> {
    const out: Shard[] = [];
    let start: string | undefined;
    do {
      const { StreamDescription } = await this.streams.send(new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: start }));
      out.push(...(StreamDescription?.Shards ?? []));
      start = StreamDescription?.LastEvaluatedShardId;
    } while (start);
    return out;
  }

  /** Handles what the shard holds past its position; false if the handler reported a failure. */
  private async drain(streamArn: string, shard: Shard, state: PumpState): Promise<boolean> {
    const id = shard.ShardId!;
    const after = state.shards[id];
    let iterator = (
      await this.streams.send(
        new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: id, ...(after ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: after } : { ShardIteratorType: 'TRIM_HORIZON' }) }),
      )
    ).ShardIterator;
    while (iterator && !this.stopped) {
      const page = await this.streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: PAGE }));
      const records = (page.Records ?? []).map((r) => lambdaRecord(r, streamArn, this.options.region ?? 'us-east-1'));
      if (records.length === 0) {
        // A closed shard ends with no next iterator; an open one is empty for now.
        if (!page.NextShardIterator) await this.save(state, id, 'done');
        return true;
      }
      const { batchItemFailures } = await this.handler({ Records: records }, localContext());
      const failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
      const firstFailed = records.findIndex((r) => failed.has(r.dynamodb!.SequenceNumber!));
      const handled = firstFailed < 0 ? records : records.slice(0, firstFailed);
      if (handled.length) await this.save(state, id, handled.at(-1)!.dynamodb!.SequenceNumber!);
      if (firstFailed >= 0) {
        this.options.log?.(`stream of ${this.table}: ${batchItemFailures.length} record(s) failed; retrying from ${records[firstFailed].dynamodb!.SequenceNumber}`);
        return false;
      }
      iterator = page.NextShardIterator;
    }
    return true;
  }

  private async save(state: PumpState, shard: string, position: string): Promise<void> {
    state.shards[shard] = position;
    await writeFile(`${this.stateFile}.tmp`, JSON.stringify(state));
    await rename(`${this.stateFile}.tmp`, this.stateFile);
  }
}

function localContext(): Context {
  const deadline = Date.now() + 60_000;
  return { awsRequestId: 'local-stream', functionName: 'strata-stream', callbackWaitsForEmptyEventLoop: false, getRemainingTimeInMillis: () => deadline - Date.now() } as unknown as Context;
}
