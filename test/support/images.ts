import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { TarWriter } from '../../shared/tar/tar-writer.js';

/** One entry of a test layer. Names are tar names (`etc/hosts`, `etc/.wh.passwd`, `dir/`). */
export type LayerEntry =
  | { path: string; content: string | Buffer; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { path: string; dir: boolean; mode?: number; uid?: number; gid?: number; mtime?: number }
  | { path: string; symlink: string }
  | { path: string; hardlink: string };

export async function tarOf(entries: readonly LayerEntry[]): Promise<Buffer> {
  const writer = new TarWriter();
  const done = collect(writer.stream);
  for (const e of entries) {
    const meta = { mode: 'mode' in e && e.mode !== undefined ? e.mode : 0o644, uid: ('uid' in e && e.uid) || 0, gid: ('gid' in e && e.gid) || 0, mtime: ('mtime' in e && e.mtime) || 1_700_000_000 };
    if ('content' in e) {
      const body = Buffer.from(e.content);
      await writer.entry({ path: e.path, type: 'file', ...meta, size: body.length }, body);
    } else if ('dir' in e) {
      await writer.entry({ path: e.path.endsWith('/') ? e.path : `${e.path}/`, type: 'directory', ...meta, mode: 'mode' in e && e.mode !== undefined ? e.mode : 0o755, size: 0 });
    } else if ('symlink' in e) {
      await writer.entry({ path: e.path, type: 'symlink', ...meta, mode: 0o777, size: 0, linkname: e.symlink });
    } else {
      await writer.entry({ path: e.path, type: 'hardlink', ...meta, size: 0, linkname: e.hardlink });
    }
  }
  await writer.finish();
  return done;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * A docker-archive tar (what `docker save` writes) of one image built from layer entry lists,
 * bottom layer first. `compress` stores the layer blobs gzip-compressed.
 */
export async function dockerArchive(
  layers: readonly (readonly LayerEntry[] | Buffer)[],
  options: { tags?: string[]; compress?: boolean } = {},
): Promise<{ archive: Buffer; imageId: string; diffIds: string[] }> {
  const { archive, images } = await multiImageArchive([{ layers, tags: options.tags ?? [] }], options);
  return { archive, ...images[0] };
}

/** A docker-archive of several images (one manifest entry each); a layer two images share is stored once. */
export async function multiImageArchive(
  specs: readonly { layers: readonly (readonly LayerEntry[] | Buffer)[]; tags: readonly string[] }[],
  options: { compress?: boolean } = {},
): Promise<{ archive: Buffer; images: { imageId: string; diffIds: string[] }[] }> {
  const writer = new TarWriter();
  const done = collect(writer.stream);
  const written = new Set<string>();
  const manifest: object[] = [];
  const images: { imageId: string; diffIds: string[] }[] = [];
  for (const spec of specs) {
    // A Buffer is a layer tar some real tool wrote; entry lists are written here.
    const tars = await Promise.all(spec.layers.map((layer) => (Buffer.isBuffer(layer) ? layer : tarOf(layer))));
    const diffIds = tars.map((t) => `sha256:${sha(t)}`);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/bin:/bin'] },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: diffIds.map(() => ({ created_by: 'test' })),
      }),
    );
    const configHex = sha(config);
    const layerNames: string[] = [];
    for (const tar of tars) {
      const blob = options.compress ? gzipSync(tar) : tar;
      const name = `${sha(blob)}/layer.tar`;
      layerNames.push(name);
      if (written.has(name)) continue;
      written.add(name);
      await writer.entry({ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: blob.length }, blob);
    }
    if (!written.has(configHex)) {
      written.add(configHex);
      await writer.entry({ path: `${configHex}.json`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: config.length }, config);
    }
    manifest.push({ Config: `${configHex}.json`, RepoTags: spec.tags, Layers: layerNames });
    images.push({ imageId: `sha256:${configHex}`, diffIds });
  }
  const bytes = Buffer.from(JSON.stringify(manifest));
  await writer.entry({ path: 'manifest.json', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: bytes.length }, bytes);
  await writer.finish();
  return { archive: await done, images };
}
