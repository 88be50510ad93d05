import { DescribeTableCommand, DynamoDBClient, UpdateTableCommand } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBRecord } from 'aws-lambda';

/** Turns on the stream the CDK table has (NEW_AND_OLD_IMAGES) on a table made by ensureTable. */
export async function enableStream(endpoint: string, table: string): Promise<void> {
  await new DynamoDBClient({ endpoint, region: 'us-east-1' }).send(
    new UpdateTableCommand({ TableName: table, StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } }),
  );
}

/** Every record in the table's stream so far, oldest first per shard, in the shape Lambda hands a stream function. */
export async function streamRecords(endpoint: string, table: string): Promise<DynamoDBRecord[]> {
  const { Table } = await new DynamoDBClient({ endpoint, region: 'us-east-1' }).send(new DescribeTableCommand({ TableName: table }));
  const streamArn = Table!.LatestStreamArn!;
  const streams = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1' });
  const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  const out: DynamoDBRecord[] = [];
  for (const shard of StreamDescription?.Shards ?? []) {
    let iterator = (await streams.send(new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
    while (iterator) {
      const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
      for (const record of page.Records ?? []) {
        const { ApproximateCreationDateTime, ...change } = record.dynamodb ?? {};
        out.push({
          eventID: record.eventID,
          eventName: record.eventName,
          eventVersion: record.eventVersion,
          eventSource: 'aws:dynamodb',
          awsRegion: 'us-east-1',
          eventSourceARN: streamArn,
          // Lambda's JSON carries binary attributes as base64 strings, as JSON.stringify does not.
          dynamodb: JSON.parse(JSON.stringify({ ...change, ApproximateCreationDateTime: ApproximateCreationDateTime ? ApproximateCreationDateTime.getTime() / 1000 : undefined }, (_, value) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value))),
        });
      }
      // An open shard keeps handing out iterators; an empty page means we have read it all.
      if (!page.Records?.length) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
