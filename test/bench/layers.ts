import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { TarWriter } from '../../shared/tar/tar-writer.js';

/** Layers of generated files, produced as streams so a 1 GiB layer never sits in memory. */
export interface GeneratedLayer {
  readonly files: number;
  readonly fileSize: number;
  readonly prefix: string;
}

function fileBytes(i: number, size: number): Buffer {
  return Buffer.alloc(size, (i * 31) % 251);
}

/** The layer tar as a stream; the same input always gives the same bytes. */
export function layerTar(layer: GeneratedLayer): Readable {
  const writer = new TarWriter({ highWaterMark: 1 << 20 });
  (async () => {
    const chunk = 1 << 20;
    for (let i = 0; i < layer.files; i++) {
      const name = `${layer.prefix}/d${Math.floor(i / 100)}/f${i}`;
      const body = (async function* () {
        for (let left = layer.fileSize; left > 0; left -= chunk) yield fileBytes(i, Math.min(chunk, left));
      })();
      await writer.entry({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: layer.fileSize }, body);
    }
    await writer.finish();
  })().catch((error) => writer.stream.destroy(error));
  return writer.stream;
}

export async function digestOf(layer: GeneratedLayer): Promise<{ diffId: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of layerTar(layer)) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { diffId: `sha256:${hash.digest('hex')}`, size };
}

/** A docker-archive tar of one image with these generated layers, streamed. */
export async function streamedArchive(layers: readonly GeneratedLayer[], tag: string): Promise<Readable> {
  const digests = [];
  for (const l of layers) digests.push(await digestOf(l));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: digests.map((d) => d.diffId) } }));
  const configHex = createHash('sha256').update(config).digest('hex');
  const writer = new TarWriter({ highWaterMark: 1 << 20 });
  (async () => {
    const names: string[] = [];
    for (let i = 0; i < layers.length; i++) {
      const name = `${digests[i].diffId.slice(7)}/layer.tar`;
      names.push(name);
      await writer.entry({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: digests[i].size }, layerTar(layers[i]));
    }
    await writer.entry({ path: `${configHex}.json`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: config.length }, config);
    const manifest = Buffer.from(JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [tag], Layers: names }]));
    await writer.entry({ path: 'manifest.json', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: manifest.length }, manifest);
    await writer.finish();
  })().catch((error) => writer.stream.destroy(error));
  return writer.stream;
}
