import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBRecord } from 'aws-lambda';
import { lambdaRecord } from '../../functions/local/stream-pump.js';

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
      out.push(...(page.Records ?? []).map((record) => lambdaRecord(record, streamArn, 'us-east-1')));
      // An open shard keeps handing out iterators; an empty page means we have read it all.
      if (!page.Records?.length) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
