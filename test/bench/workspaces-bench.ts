import type { Engine } from '../../shared/engine.js';
import type { RequestCounter } from './counters.js';

const T = 'bench';

/** Writes `count` small files into `ref`, `parallel` writers at a time, writer w using engine w % engines.length; answers how many were acknowledged. */
async function writers(engines: readonly Engine[], ref: string, count: number, prefix: string, parallel: number): Promise<{ acknowledged: number; refused: number }> {
  let next = 0;
  let acknowledged = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: parallel }, async (_, w) => {
      while (next < count) {
        const i = next++;
        try {
          await engines[w % engines.length].files.writeFile(T, { kind: 'container', ref }, `/${prefix}${i % 20}/f${i}`, Buffer.from(`change ${i}\n`));
          acknowledged++;
        } catch {
          refused++;
        }
      }
    }),
  );
  return { acknowledged, refused };
}

/**
 * Issue 11's figures for merges, feeds and quotas. `engine` is this process's; `instances()`
 * makes another engine over the same stores, as another function instance would be.
 */
export async function benchWorkspaces(engine: Engine, instances: () => Engine, counter: RequestCounter, image: string, log: (...parts: unknown[]) => void) {
  const results: Record<string, unknown> = {};

  // --- a merge of 1,000 non-conflicting changes: requests per merged path.
  const target = (await engine.containers.create(T, { image, name: 'merge-target' })).id;
  const source = (await engine.fork(T, target, { name: 'merge-source' })).id;
  for (let d = 0; d < 20; d++) await engine.files.mkdir(T, { kind: 'container', ref: source }, `/m${d}`);
  await writers([engine], source, 1000, 'm', 16);
  await writers([engine], target, 50, 'own', 8).catch(() => undefined);
  counter.reset();
  const started = Date.now();
  const merged = await engine.merge(T, target, { from: source });
  const mergeMs = Date.now() - started;
  results.merge_requests_per_change = Math.round(((counter.dynamo + counter.s3) / merged.merged) * 1000) / 1000;
  results.merge = { changes: merged.merged, dynamo: counter.dynamo, s3: counter.s3, ms: mergeMs, commands: counter.snapshot().commands };
  log(`merge of ${merged.merged} changes: ${counter.dynamo} DynamoDB + ${counter.s3} S3 requests (${results.merge_requests_per_change} per change), ${mergeMs} ms`);

  // --- the feed: changes from 8 concurrent writers; every acknowledged change must have one
  // entry, no number missing or repeated. 10,000 in one process (the local server: its writers
  // take turns for numbers), and 1,000 on 8 function instances (which race for them).
  const feedRun = async (label: string, engines: readonly Engine[], count: number) => {
    const ref = (await engine.containers.create(T, { image, name: `feed-${label}` })).id;
    for (let d = 0; d < 20; d++) await engine.files.mkdir(T, { kind: 'container', ref }, `/w${d}`);
    const head = (await engine.feedOf(T, { kind: 'container', ref }, { after: 'latest' })).next;
    counter.reset();
    const started = Date.now();
    const wrote = await writers(engines, ref, count, 'w', 8);
    const ms = Date.now() - started;
    const transactions = counter.commands.get('TransactWriteItemsCommand') ?? 0;
    const seqs: number[] = [];
    for (let after = head; ; ) {
      const page = await engine.feedOf(T, { kind: 'container', ref }, { after, limit: 1000 });
      if (page.entries.length === 0) break;
      seqs.push(...page.entries.map((e) => e.seq));
      after = page.next;
    }
    const gapless = seqs.every((seq, i) => seq === head + i + 1);
    return {
      mutations: wrote.acknowledged,
      refused: wrote.refused,
      entries: seqs.length,
      gapless,
      lost: wrote.acknowledged - seqs.length + (gapless ? 0 : count),
      ms,
      transactionsPerMutation: Math.round((transactions / wrote.acknowledged) * 100) / 100,
    };
  };
  const oneProcess = await feedRun('one-process', [engine], 10_000);
  const instances8 = await feedRun('instances', Array.from({ length: 8 }, instances), 1000);
  results.feed_lost_events = oneProcess.lost + instances8.lost;
  // One item of the change's own transaction: a committed change writes its entry and nothing else.
  results.feed_writes_per_mutation = Math.round(((oneProcess.entries + instances8.entries) / (oneProcess.mutations + instances8.mutations)) * 1000) / 1000;
  results.feed = { one_process: oneProcess, eight_instances: instances8 };
  log(`feed, 8 writers in one process: ${JSON.stringify(oneProcess)}`);
  log(`feed, 8 writers on 8 instances: ${JSON.stringify(instances8)} (a number another instance took costs the transaction again)`);

  // --- a quota raced by 32 writers on 8 instances: bytes past the limit.
  const limit = 100 * 1024;
  const capped = (await engine.containers.create(T, { image, name: 'quota-race', quota: { bytes: limit } })).id;
  for (let d = 0; d < 20; d++) await engine.files.mkdir(T, { kind: 'container', ref: capped }, `/q${d}`);
  const quotaEngines = Array.from({ length: 8 }, instances);
  let next = 0;
  let accepted = 0;
  await Promise.all(
    Array.from({ length: 32 }, async (_, w) => {
      while (next < 400) {
        const i = next++;
        await quotaEngines[w % 8].files.writeFile(T, { kind: 'container', ref: capped }, `/q${i % 20}/f${i}`, Buffer.alloc(1024, 1)).then(
          () => accepted++,
          () => undefined,
        );
      }
    }),
  );
  const summary = await engine.containers.inspect(T, capped);
  results.quota_overshoot_bytes = Math.max(0, (summary.size ?? 0) - limit, (summary.quota?.usedBytes ?? 0) - limit);
  results.quota = { limit, attempts: 400, accepted, size: summary.size, used: summary.quota?.usedBytes };
  log(`quota of ${limit} bytes raced by 32 writers on 8 instances: ${accepted} of 400 1 KiB writes accepted, size ${summary.size}, overshoot ${results.quota_overshoot_bytes} bytes`);
  return results;
}
