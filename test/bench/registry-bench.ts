import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { servicesOver } from '../../functions/composition.js';
import { startLocalServer } from '../../functions/local/server.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';
import { serverConfig } from '../support/server-config.js';

const run = promisify(execFile);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Issue 12's pull figure: `skopeo copy` of an image from Strata's registry (the local server,
 * over the bench's DynamoDB Local and RGW) into an OCI layout, over the same copy from a local
 * OCI layout, in the same run. `tenant` and `reference` name an image already loaded.
 */
export async function benchRegistry(meta: MetadataStore, blobs: BlobStore, tenant: string, reference: string, log: (...parts: unknown[]) => void) {
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-registry-'));
  const token = randomBytes(16).toString('hex');
  const services = servicesOver(serverConfig(work), meta, blobs, { streamsBodies: true, canStream: true });
  const server = await startLocalServer({ services, port: 0, host: '127.0.0.1', tokens: new Map([[token, tenant]]), signingKey: randomBytes(32), maxBodyBytes: 6_000_000 });
  const source = `docker://${server.url.replace('http://', '')}/${reference}`;
  const copy = async (from: string, to: string, extra: string[] = []) => {
    const started = process.hrtime.bigint();
    await run('skopeo', ['copy', '--quiet', '--dest-oci-accept-uncompressed-layers', ...extra, from, to], { maxBuffer: 16 << 20 });
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  try {
    const fromStrata: number[] = [];
    const fromLayout: number[] = [];
    for (let i = 0; i < 4; i++) {
      const pulled = join(work, `pulled-${i}`);
      const ms = await copy(source, `oci:${pulled}:t`, ['--src-tls-verify=false', '--src-creds', `bench:${token}`]);
      if (i > 0) fromStrata.push(ms);
      const copied = await copy(`oci:${pulled}:t`, `oci:${join(work, `copied-${i}`)}:t`);
      if (i > 0) fromLayout.push(copied);
      await rm(join(work, `copied-${i}`), { recursive: true, force: true });
      await rm(pulled, { recursive: true, force: true });
    }
    const ratio = Math.round((median(fromStrata) / median(fromLayout)) * 1000) / 1000;
    log(`skopeo copy of ${reference}: ${Math.round(median(fromStrata))} ms from Strata's registry, ${Math.round(median(fromLayout))} ms from a local OCI layout (ratio ${ratio})`);
    return { pull_vs_fs_ratio: ratio, pull_ms: { strata: Math.round(median(fromStrata)), oci_layout: Math.round(median(fromLayout)) } };
  } finally {
    await server.close();
    await rm(work, { recursive: true, force: true });
  }
}
