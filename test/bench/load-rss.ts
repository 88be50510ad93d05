import { readFileSync } from 'node:fs';
import { S3BlobStore, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import { DynamoMetadataStore, dynamoDocumentClient } from '../../shared/adapters/dynamo-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import { streamedArchive } from './layers.js';

/**
 * Run by the benchmark in its own process, so its peak memory is the load's alone: loads one
 * 1 GiB layer (64 files of 16 MiB) streamed from a generator and prints the peak RSS in MiB.
 */
const [dynamoEndpoint, s3Endpoint, accessKeyId, secretAccessKey, table, bucket] = process.argv.slice(2);
const engine = new Engine(
  new DynamoMetadataStore(dynamoDocumentClient({ endpoint: dynamoEndpoint }), table),
  new S3BlobStore(s3ClientFor({ endpoint: s3Endpoint, accessKeyId, secretAccessKey }), bucket),
);
const started = Date.now();
// Sampled during the load, to tell buffered data (arrayBuffers) from garbage not yet collected.
let peakArrayBuffersMiB = 0;
let peakHeapMiB = 0;
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  peakArrayBuffersMiB = Math.max(peakArrayBuffersMiB, m.arrayBuffers >> 20);
  peakHeapMiB = Math.max(peakHeapMiB, m.heapUsed >> 20);
}, 100);
const archive = await streamedArchive([{ files: 64, fileSize: 16 * 1024 * 1024, prefix: 'huge' }], 'huge:1');
await engine.images.load('bench', archive);
clearInterval(sampler);
console.log(JSON.stringify({ peakRssMiB: peakRss(), peakArrayBuffersMiB, peakHeapMiB, seconds: (Date.now() - started) / 1000 }));

/**
 * This process's own high-water mark (VmHWM). Not getrusage's maxRSS: Linux carries that over
 * from the parent across fork and exec, so a child of a big benchmark process would report the
 * parent's size.
 */
function peakRss(): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : Math.round(process.resourceUsage().maxRSS / 1024);
}
