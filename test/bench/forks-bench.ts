import type { Engine } from '../../shared/engine.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import type { RequestCounter } from './counters.js';

/** Counts calls to the metadata port: each is one round trip (a call's batches go in parallel). */
export class RoundTrips {
  calls = 0;

  wrap(meta: MetadataStore): MetadataStore {
    return new Proxy(meta, {
      get: (target, name, receiver) => {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          this.calls++;
          return value.apply(target, args);
        };
      },
    });
  }
}

const T = 'bench';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function readAll(engine: Engine, ref: string, path: string) {
  const { body } = await engine.files.read(T, { kind: 'container', ref }, path);
  for await (const _ of body);
}

/** Writes `count` small files, `parallel` at a time. */
async function writeMany(engine: Engine, ref: string, count: number, prefix: string, parallel = 32) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        await engine.files.writeFile(T, { kind: 'container', ref }, `/${prefix}${i}`, Buffer.from(`own change ${i}\n`));
      }
    }),
  );
}

/**
 * Issue 11's figures: fork time and requests of a container with 10,000 own changes over one
 * with 10; metadata round trips of a read 1, 8 and 32 forks deep; `changes?against` between two
 * forks of a 10,000-file image over the same with a 10-file image.
 * `small`/`large`: images of 10 and 10,000 files already loaded.
 */
export async function benchForks(engine: Engine, counter: RequestCounter, trips: RoundTrips, images: { small: string; large: string }, log: (...parts: unknown[]) => void) {
  const results: Record<string, unknown> = {};
  // --- fork of 10 vs 10,000 own changes: each round forks both once (same chain depth).
  const few = (await engine.containers.create(T, { image: images.small, name: 'fork-few' })).id;
  const many = (await engine.containers.create(T, { image: images.small, name: 'fork-many' })).id;
  await writeMany(engine, few, 10, 'c');
  const fillMs = await timed(() => writeMany(engine, many, 10_000, 'c'));
  log(`10,000 own changes written in ${Math.round(fillMs)} ms`);
  const times = { few: [] as number[], many: [] as number[] };
  const requests = { few: 0, many: 0 };
  for (let i = 0; i < 12; i++) {
    for (const [label, ref] of [
      ['few', few],
      ['many', many],
    ] as const) {
      counter.reset();
      const ms = await timed(() => engine.fork(T, ref));
      requests[label] = counter.dynamo + counter.s3;
      if (i >= 2) times[label].push(ms);
    }
  }
  results.fork_ratio = Math.round((median(times.many) / median(times.few)) * 1000) / 1000;
  results.fork_requests = requests;
  results.fork_ms = { few: Math.round(median(times.few) * 10) / 10, many: Math.round(median(times.many) * 10) / 10 };
  log(`fork: ${results.fork_ms ? JSON.stringify(results.fork_ms) : ''} ms, requests ${JSON.stringify(requests)} (10 vs 10,000 own changes)`);

  // --- a read 1, 8 and 32 forks deep, of a file in the image and of one the first layer wrote.
  let ref = (await engine.containers.create(T, { image: images.large, name: 'deep-0' })).id;
  await engine.files.writeFile(T, { kind: 'container', ref }, '/first-layer', Buffer.from('written before the first fork'));
  const depths: Record<string, { roundTrips: number; requests: number }> = {};
  for (let depth = 1; depth <= 32; depth++) {
    ref = (await engine.fork(T, ref, { name: `deep-${depth}` })).id;
    if (![1, 8, 32].includes(depth)) continue;
    await readAll(engine, ref, '/first-layer');
    let roundTrips = 0;
    let requestCount = 0;
    for (const path of ['/first-layer', '/data/d0/file0', '/data/d49/file9999']) {
      trips.calls = 0;
      counter.reset();
      await readAll(engine, ref, path);
      roundTrips = Math.max(roundTrips, trips.calls);
      requestCount = Math.max(requestCount, counter.dynamo);
    }
    depths[depth] = { roundTrips, requests: requestCount };
  }
  results.fork_read_ddb_roundtrips_max = Math.max(...Object.values(depths).map((d) => d.roundTrips));
  results.fork_read_depths = depths;
  log(`read through forks: ${JSON.stringify(depths)} (round trips; DynamoDB requests, a round trip's batches in parallel)`);

  // --- changes?against between two forks, 10 changes each, of a 10,000- and a 10-file image.
  const diffMs: Record<string, number> = {};
  const diffRequests: Record<string, number> = {};
  for (const [label, image] of [
    ['small', images.small],
    ['large', images.large],
  ] as const) {
    const base = (await engine.containers.create(T, { image, name: `diff-${label}` })).id;
    const a = (await engine.fork(T, base, { name: `diff-${label}-a` })).id;
    const b = (await engine.fork(T, base, { name: `diff-${label}-b` })).id;
    await writeMany(engine, a, 10, 'a', 4);
    await writeMany(engine, b, 10, 'b', 4);
    const samples: number[] = [];
    for (let i = 0; i < 12; i++) {
      counter.reset();
      const ms = await timed(() => engine.changes(T, a, { against: b }));
      diffRequests[label] = counter.dynamo + counter.s3;
      if (i >= 2) samples.push(ms);
    }
    diffMs[label] = median(samples);
  }
  results.diff_ratio = Math.round((diffMs.large / diffMs.small) * 1000) / 1000;
  results.diff_requests = diffRequests;
  log(`changes?against between forks: ${Math.round(diffMs.small)} ms (10-file image) vs ${Math.round(diffMs.large)} ms (10,000 files); requests ${JSON.stringify(diffRequests)}`);
  return results;
}
