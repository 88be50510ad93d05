import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dynamoDocumentClient, DynamoMetadataStore, ensureTable } from '../../shared/adapters/dynamo-metadata-store.js';
import { startDynamoLocal } from '../../shared/adapters/dynamo-local-process.js';
import { ensureBucket, S3BlobStore, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { Engine } from '../../shared/engine.js';
import { dockerArchive, tarOf, type LayerEntry } from '../support/images.js';
import { startRgw } from '../support/rgw.js';
import { RequestCounter } from './counters.js';
import { benchForks, RoundTrips } from './forks-bench.js';
import { benchWorkspaces } from './workspaces-bench.js';
import { benchRegistry } from './registry-bench.js';

/**
 * `npm run bench`: request counts, byte counts and time ratios measured side by side in one run
 * on DynamoDB Local and Ceph RGW. Progress goes to stderr; the last stdout line is the JSON.
 */
const run = promisify(execFile);
const log = (...parts: unknown[]) => console.error('[bench]', ...parts);
const T = 'bench';
const MiB = 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** An image of `layers` layers holding `files` small files between them. */
function layeredImage(layers: number, files: number): LayerEntry[][] {
  const out: LayerEntry[][] = Array.from({ length: layers }, () => []);
  for (let i = 0; i < files; i++) out[i % layers].push({ path: `data/d${i % 50}/file${i}`, content: `content of file ${i}\n` });
  return out;
}

async function main() {
  log('starting DynamoDB Local and Ceph RGW');
  const [dynamo, rgw] = await Promise.all([startDynamoLocal(), startRgw({ memstoreBytes: 6 * 1024 ** 3 })]);
  const table = 'bench';
  const bucket = 'strata-bench';
  const documentClient = dynamoDocumentClient({ endpoint: dynamo.endpoint });
  const s3 = s3ClientFor({ endpoint: rgw.endpoint, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey });
  await ensureTable(documentClient as never, table);
  await ensureBucket(s3, bucket);
  const counter = new RequestCounter();
  counter.watchDynamo(documentClient);
  counter.watchS3(s3);
  const trips = new RoundTrips();
  const engine = new Engine(trips.wrap(new DynamoMetadataStore(documentClient, table)), new S3BlobStore(s3, bucket));
  const results: Record<string, number | string | Record<string, unknown>> = {};
  try {
    // --- reads: one file read over images of 1, 16 and 127 layers with 10 and 10,000 files
    const reads: { layers: number; files: number; ddb: number; s3: number; coldDdb: number }[] = [];
    const containers = new Map<string, string>();
    for (const files of [10, 10_000]) {
      for (const layers of [1, 16, 127]) {
        const tag = `read-${layers}-${files}:1`;
        const { archive } = await dockerArchive(layeredImage(layers, files), { tags: [tag] });
        const loadMs = await timed(() => engine.images.load(T, [archive]));
        const created = await engine.containers.create(T, { image: tag });
        containers.set(`${layers}/${files}`, created.id);
        const target = { kind: 'container' as const, ref: created.id };
        // The first touch of a container loads its record; later reads on a warm function do not.
        counter.reset();
        await readAll(engine, target, `/data/d0/file0`);
        const coldDdb = counter.dynamo;
        let ddb = 0;
        let s3Requests = 0;
        // The bottom layer's file and the top layer's file.
        for (const i of [files - 1, 0, Math.floor(files / 2)]) {
          counter.reset();
          await readAll(engine, target, `/data/d${i % 50}/file${i}`);
          ddb = Math.max(ddb, counter.dynamo);
          s3Requests = Math.max(s3Requests, counter.s3);
        }
        reads.push({ layers, files, ddb, s3: s3Requests, coldDdb });
        log(`read over ${layers} layers / ${files} files: ${ddb} DynamoDB round trips, ${s3Requests} S3 requests (cold: ${coldDdb}); load took ${Math.round(loadMs)} ms`);
      }
    }
    results.read_ddb_roundtrips_max = Math.max(...reads.map((r) => r.ddb));
    results.read_s3_requests_max = Math.max(...reads.map((r) => r.s3));
    results.read_ddb_roundtrips_cold_max = Math.max(...reads.map((r) => r.coldDdb));

    // --- create: O(1) whatever the image's size
    const createSmall: number[] = [];
    const createLarge: number[] = [];
    const createRequests = { small: 0, large: 0 };
    for (let i = 0; i < 45; i++) {
      counter.reset();
      const small = await timed(() => engine.containers.create(T, { image: 'read-16-10:1' }));
      createRequests.small = counter.dynamo + counter.s3;
      counter.reset();
      const large = await timed(() => engine.containers.create(T, { image: 'read-16-10000:1' }));
      createRequests.large = counter.dynamo + counter.s3;
      // The first rounds warm connections and caches.
      if (i >= 5) {
        createSmall.push(small);
        createLarge.push(large);
      }
    }
    results.create_ratio = round(median(createLarge) / median(createSmall));
    results.create_requests = createRequests;
    log(`create: ${median(createSmall).toFixed(1)} ms and ${createRequests.small} requests (10 files) vs ${median(createLarge).toFixed(1)} ms and ${createRequests.large} requests (10,000 files)`);

    // --- copy-up of a 64 MiB lower file: a 4 KiB write and a chmod
    const big = Buffer.alloc(64 * MiB, 0x61);
    const { archive: bigArchive } = await dockerArchive([[{ path: 'big.bin', content: big }]], { tags: ['big:1'] });
    await engine.images.load(T, [bigArchive]);
    const bigContainer = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'big:1' })).id };
    await engine.files.stat(T, bigContainer, '/big.bin');
    counter.reset();
    await engine.files.writeRange(T, bigContainer, '/big.bin', 32 * MiB, Buffer.alloc(4096, 0x62));
    results.copyup_bytes_ratio = round((counter.s3BytesSent + counter.s3BytesCopied) / 4096);
    // --- listing 10,000 entries of one directory, 1,000 a page, as a client pages through it
    const { archive: manyArchive } = await dockerArchive([Array.from({ length: 10_000 }, (_, i) => ({ path: `many/f${String(i).padStart(5, '0')}`, content: 'x' }))], { tags: ['many:1'] });
    await engine.images.load(T, [manyArchive]);
    await engine.containers.create(T, { image: 'many:1', name: 'lister' });
    const lister = { kind: 'container' as const, ref: 'lister' };
    for (const [label, prepare] of [
      ['untouched', async () => undefined],
      ['with 10 own entries', async () => Promise.all(Array.from({ length: 10 }, (_, i) => engine.files.writeFile(T, lister, `/many/own${i}`, Buffer.from('o'))))],
    ] as const) {
      await prepare();
      await engine.files.stat(T, lister, '/');
      let cursor: string | undefined;
      const perPage: number[] = [];
      let entries = 0;
      do {
        counter.reset();
        const page = await engine.files.list(T, lister, '/many', { cursor, limit: 1000 });
        perPage.push(counter.dynamo);
        entries += page.entries.length;
        cursor = page.cursor;
      } while (cursor);
      results[`listing_${label.replace(/ /g, '_')}`] = { pages: perPage.length, entries, dynamo_per_page_max: Math.max(...perPage), dynamo_total: perPage.reduce((a, b) => a + b, 0) };
      log(`listing ${entries} entries (${label}): ${perPage.length} pages, DynamoDB requests per page ${perPage.join(', ')}`);
    }

    // A small write and an append on a warm function, by name: the requests they cost.
    await engine.containers.create(T, { image: 'big:1', name: 'writer' });
    const writer = { kind: 'container' as const, ref: 'writer' };
    await engine.files.writeFile(T, writer, '/warm', Buffer.from('warm'));
    counter.reset();
    await engine.files.writeFile(T, writer, '/note', Buffer.alloc(1024, 0x63));
    const smallWrite = { dynamo: counter.dynamo, s3: counter.s3 };
    counter.reset();
    await engine.files.writeRange(T, writer, '/note', 'end', Buffer.alloc(1024, 0x64));
    const append = { dynamo: counter.dynamo, s3: counter.s3 };
    counter.reset();
    await engine.files.writeFile(T, writer, '/fresh-name', Buffer.alloc(1024, 0x65));
    results.small_write_requests = { new_path: { dynamo: counter.dynamo, s3: counter.s3 }, first_write: smallWrite, append_same_path: append };
    log(
      `1 KiB write on a warm function: a path never written here ${counter.dynamo} DynamoDB round trips + ${counter.s3} S3 request (also ${smallWrite.dynamo} + ${smallWrite.s3} for the first write of /note); an append to the path just written: ${append.dynamo} + ${append.s3}`,
    );
    log(`4 KiB write into a 64 MiB lower file: ${counter.s3BytesSent} bytes sent to S3, ${counter.s3BytesCopied} copied server-side`);
    const chmodContainer = { kind: 'container' as const, ref: (await engine.containers.create(T, { image: 'big:1' })).id };
    await engine.files.stat(T, chmodContainer, '/big.bin');
    counter.reset();
    await engine.files.setAttributes(T, chmodContainer, '/big.bin', { mode: 0o600 });
    results.chmod_copy_bytes = counter.s3BytesSent + counter.s3BytesCopied + counter.s3Copies;
    log(`chmod of a 64 MiB lower file: ${counter.s3} S3 requests, ${counter.s3BytesSent + counter.s3BytesCopied} bytes`);

    // --- large reads answered by a 303: the first makes the copy, later ones reuse it
    const largeReads: { s3: number; dynamo: number; ms: number; reused: boolean }[] = [];
    for (let i = 0; i < 3; i++) {
      counter.reset();
      let reused = false;
      const ms = await timed(async () => {
        const { extents, body } = await engine.files.read(T, chmodContainer, '/big.bin');
        body.destroy();
        reused = (await engine.files.copyOut(T, extents, 15 * 60_000)).reused;
      });
      largeReads.push({ s3: counter.s3, dynamo: counter.dynamo, ms: Math.round(ms), reused });
    }
    results.large_read_requests = { first: largeReads[0], later: largeReads[2] };
    log(
      `64 MiB read behind a 303: first ${largeReads[0].s3} S3 and ${largeReads[0].dynamo} DynamoDB requests (${largeReads[0].ms} ms), later ${largeReads[2].s3} and ${largeReads[2].dynamo} (${largeReads[2].ms} ms, reused: ${largeReads[2].reused})`,
    );

    // --- commit: cost follows the change, not the image
    const commitTimes = { small: [] as number[], large: [] as number[] };
    const commitRequests = { small: 0, large: 0 };
    for (let i = 0; i < 9; i++) {
      for (const [kind, image] of [
        ['small', 'read-1-10:1'],
        ['large', 'read-1-10000:1'],
      ] as const) {
        const c = (await engine.containers.create(T, { image })).id;
        await engine.files.writeFile(T, { kind: 'container', ref: c }, '/data/d0/file0', Buffer.from(`changed ${i}`));
        counter.reset();
        const ms = await timed(() => engine.commit(T, c));
        commitRequests[kind] = counter.dynamo + counter.s3;
        if (i > 0) commitTimes[kind].push(ms);
      }
    }
    results.commit_ratio = round(median(commitTimes.large) / median(commitTimes.small));
    results.commit_requests = commitRequests;
    log(
      `commit: ${median(commitTimes.small).toFixed(0)} ms and ${commitRequests.small} requests (10 files) vs ${median(commitTimes.large).toFixed(0)} ms and ${commitRequests.large} requests (10,000 files)`,
    );

    // --- load of a 100 MiB, 5,000-file layer vs tar -x of the same tar
    const entries: LayerEntry[] = Array.from({ length: 5000 }, (_, i) => ({ path: `tree/d${i % 100}/f${i}`, content: Buffer.alloc(20_972, i % 251) }));
    const layerTar = await tarOf(entries);
    const scratch = await mkdtemp(join(tmpdir(), 'strata-bench-'));
    await writeFile(join(scratch, 'layer.tar'), layerTar);
    const { archive: treeArchive } = await dockerArchive([entries], { tags: ['tree:1'] });
    // The same metadata store with the embedded folder blob store, as `npm start` runs.
    const folderEngine = new Engine(new DynamoMetadataStore(documentClient, table), new FsBlobStore(join(scratch, 'blobs'), async (k) => k));
    const tarMs: number[] = [];
    const loadMs: number[] = [];
    const folderLoadMs: number[] = [];
    // tar -x to disk swings with the page cache's writeback (0.25-1.3 s seen on one machine),
    // so both sides run five times, interleaved, and the medians are compared.
    for (let i = 0; i < 5; i++) {
      const out = join(scratch, `x${i}`);
      await mkdir(out);
      tarMs.push(await timed(() => run('tar', ['-xf', join(scratch, 'layer.tar'), '-C', out])));
      // A fresh tenant each time, so the layer is really stored again rather than deduplicated.
      loadMs.push(await timed(() => engine.images.load(`${T}-load${i}`, [treeArchive])));
      folderLoadMs.push(await timed(() => folderEngine.images.load(`${T}-folder${i}`, [treeArchive])));
    }
    // --- export: the 100 MiB tree and a 10,000-file container, against tar -c of the same tree
    const exportRequests: Record<string, { s3: number; dynamo: number }> = {};
    const exportMs: number[] = [];
    const tarCMs: number[] = [];
    // Side by side: the same stores with every file read on its own (batching off).
    const unbatched = new Engine(new DynamoMetadataStore(documentClient, table), new S3BlobStore(s3, bucket), { batchedReads: { smallFileBytes: 0 } });
    const unbatchedMs: number[] = [];
    const tree = await engine.containers.create(`${T}-load0`, { image: 'tree:1' });
    for (let i = 0; i < 5; i++) {
      counter.reset();
      exportMs.push(await timed(async () => drain(await engine.export(`${T}-load0`, tree.id))));
      exportRequests.tree_5000_files = { s3: counter.s3, dynamo: counter.dynamo };
      counter.reset();
      unbatchedMs.push(await timed(async () => drain(await unbatched.export(`${T}-load0`, tree.id))));
      exportRequests.tree_5000_files_unbatched = { s3: counter.s3, dynamo: counter.dynamo };
      // Through a pipe: GNU tar skips reading the files when its archive is /dev/null itself.
      tarCMs.push(await timed(() => run('sh', ['-c', `tar -cf - -C '${join(scratch, `x${i}`)}' . | wc -c > /dev/null`])));
    }
    for (const [name, e] of [
      ['tiny_10000_files', engine],
      ['tiny_10000_files_unbatched', unbatched],
    ] as const) {
      counter.reset();
      const ms = await timed(async () => drain(await e.export(T, containers.get('1/10000')!)));
      exportRequests[name] = { s3: counter.s3, dynamo: counter.dynamo, ms: Math.round(ms) } as never;
    }
    results.export_requests = exportRequests;
    results.export_vs_tar_ratio = round(median(exportMs) / median(tarCMs));
    results.export_ms = { rgw: Math.round(median(exportMs)), rgw_unbatched: Math.round(median(unbatchedMs)), tar_c: Math.round(median(tarCMs)) };
    log(
      `export of the 100 MiB / 5,000-file tree: ${median(exportMs).toFixed(0)} ms and ${exportRequests.tree_5000_files.s3} S3 requests (unbatched: ${median(unbatchedMs).toFixed(0)} ms, ${exportRequests.tree_5000_files_unbatched.s3}); tar -c: ${median(tarCMs).toFixed(0)} ms; ` +
        `10,000 tiny files: ${exportRequests.tiny_10000_files.s3} S3 requests (unbatched: ${exportRequests.tiny_10000_files_unbatched.s3})`,
    );

    await rm(scratch, { recursive: true, force: true });
    results.load_vs_tar_ratio = round(median(loadMs) / median(tarMs));
    results.load_vs_tar_ratio_folder_blobs = round(median(folderLoadMs) / median(tarMs));
    results.load_ms = { rgw: Math.round(median(loadMs)), folder: Math.round(median(folderLoadMs)), tar_x: Math.round(median(tarMs)) };
    log(
      `load of ${(layerTar.length / MiB).toFixed(0)} MiB / 5,000 files: ${median(loadMs).toFixed(0)} ms on RGW, ${median(folderLoadMs).toFixed(0)} ms on the folder store; tar -x: ${median(tarMs).toFixed(0)} ms`,
    );

    // --- peak memory while loading a 1 GiB layer, in a process of its own: once with glibc's
    // default malloc, once with the fixed mmap threshold the CDK construct sets on Lambda
    // (glibc otherwise raises the threshold after big frees and keeps freed buffers in the heap).
    const loadInChild = (env: Record<string, string>) => {
      const child = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'load-rss.ts'), dynamo.endpoint, rgw.endpoint, rgw.accessKeyId, rgw.secretAccessKey, table, bucket], {
        encoding: 'utf8',
        maxBuffer: 16 * MiB,
        env: { ...process.env, ...env },
      });
      if (child.status !== 0) throw new Error(`1 GiB load failed: ${child.stderr.slice(-2000)}`);
      return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as { peakRssMiB: number; peakArrayBuffersMiB: number; peakHeapMiB: number; seconds: number };
    };
    const tuned = loadInChild({ MALLOC_MMAP_THRESHOLD_: '131072' });
    const plain = loadInChild({});
    results.load_peak_rss_mib = tuned.peakRssMiB;
    results.load_peak_rss_mib_default_malloc = plain.peakRssMiB;
    results.load_peak_buffers_mib = Math.max(tuned.peakArrayBuffersMiB, plain.peakArrayBuffersMiB);
    log(
      `1 GiB layer load: peak RSS ${tuned.peakRssMiB} MiB with MALLOC_MMAP_THRESHOLD_=131072, ${plain.peakRssMiB} MiB without (live buffers at most ${results.load_peak_buffers_mib} MiB, heap ${tuned.peakHeapMiB} MiB), ${tuned.seconds} s`,
    );

    results.reads = Object.fromEntries(reads.map((r) => [`${r.layers}x${r.files}`, { ddb: r.ddb, s3: r.s3, cold_ddb: r.coldDdb }]));

    // --- forks and diffs, merges, feeds and quotas (issue 11)
    Object.assign(results, await benchForks(engine, counter, trips, { small: 'read-16-10:1', large: 'read-16-10000:1' }, log));
    const instance = () => new Engine(new DynamoMetadataStore(documentClient, table), new S3BlobStore(s3, bucket));
    Object.assign(results, await benchWorkspaces(engine, instance, counter, 'read-16-10:1', log));

    // --- the registry's pull side (issue 12): the 100 MiB, 5,000-file image
    Object.assign(results, await benchRegistry(new DynamoMetadataStore(documentClient, table), new S3BlobStore(s3, bucket), T, 'tree:1', log));
  } finally {
    await Promise.allSettled([dynamo.stop(), rgw.stop()]);
  }
  console.log(JSON.stringify(results));
}

/** Reads a stream to its end, keeping nothing. */
async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream);
}

async function readAll(engine: Engine, target: { kind: 'container'; ref: string }, path: string) {
  const { body } = await engine.files.read(T, target, path);
  for await (const _ of body);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
