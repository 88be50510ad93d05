import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Engine } from '../../shared/engine.js';
import { chainIds } from '../../shared/domain/refs.js';
import { readTar } from '../../shared/tar/tar-reader.js';
import { dockerArchive, tarOf } from '../support/images.js';
import { loadImage, localEngine, text } from '../support/engine.js';

const T = 'acme';
let engine: Engine;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ engine, cleanup } = await localEngine());
});
afterEach(async () => cleanup());

const image = (id: string) => ({ kind: 'image' as const, ref: id });
const names = async (id: string, dir: string) => (await engine.files.list(T, image(id), dir)).entries.map((e) => e.name);
const read = async (id: string, path: string) => text((await engine.files.read(T, image(id), path)).body);

describe('identities (OCI)', () => {
  it('DiffID is the sha256 of the uncompressed tar even when the layer arrives gzip-compressed', async () => {
    const layer = [{ path: 'a.txt', content: 'hello' }];
    const { archive, imageId } = await dockerArchive([layer], { compress: true });
    const [loaded] = await engine.images.load(T, [archive]);
    expect(loaded.id).toBe(imageId);
    const plain = await tarOf(layer);
    const inspected = await engine.images.inspect(T, loaded.id);
    expect(inspected.layers[0].diffId).toBe(`sha256:${createHash('sha256').update(plain).digest('hex')}`);
  });

  it('ChainID follows the spec formula', () => {
    const [a, b] = ['sha256:' + 'a'.repeat(64), 'sha256:' + 'b'.repeat(64)];
    const expected = 'sha256:' + createHash('sha256').update(`${a} ${b}`).digest('hex');
    expect(chainIds([a, b])).toEqual([a, expected]);
  });

  it('save then load gives the same image ID and DiffIDs', async () => {
    const { archive, imageId, diffIds } = await dockerArchive(
      [
        [
          { path: 'etc/', dir: true },
          { path: 'etc/hosts', content: '127.0.0.1 localhost\n' },
        ],
        [{ path: 'etc/motd', content: 'hi' }],
      ],
      { tags: ['demo:1'] },
    );
    await engine.images.load(T, [archive]);
    const saved = await text(await engine.images.save(T, ['demo:1']).then((s) => s.setEncoding('latin1')));
    const { engine: other, cleanup: done } = await localEngine();
    try {
      const [again] = await other.images.load(T, [Buffer.from(saved, 'latin1')]);
      expect(again.id).toBe(imageId);
      expect(again.tags).toEqual(['demo:1']);
      expect((await other.images.inspect(T, again.id)).layers.map((l) => l.diffId)).toEqual(diffIds);
    } finally {
      await done();
    }
  });

  it('stores a layer once per tenant however many images use it', async () => {
    const base = [{ path: 'big.bin', content: 'x'.repeat(10_000) }];
    const one = await loadImage(engine, T, [base, [{ path: 'one', content: '1' }]]);
    const two = await loadImage(engine, T, [base, [{ path: 'two', content: '2' }]]);
    const list = await engine.images.list(T);
    expect(list.find((i) => i.id === one)!.sharedSize).toBe(10_000);
    expect(list.find((i) => i.id === two)!.sharedSize).toBe(10_000);
  });

  it('loads a multi-megabyte archive handed over as one chunk (both outputs of the ingest drain)', async () => {
    const files = Array.from({ length: 3000 }, (_, i) => ({ path: `d${i % 30}/f${i}`, content: `file ${i}\n` }));
    const id = await loadImage(engine, T, [files]);
    expect(await read(id, '/d7/f2977')).toBe('file 2977\n');
  });

  it('a directory too big for one index item still reads, lists in order and is swept', async () => {
    const files = Array.from({ length: 4000 }, (_, i) => ({ path: `huge/n${String(i).padStart(4, '0')}`, content: `${i}` }));
    const id = await loadImage(engine, T, [files, [{ path: 'huge/n0001', content: 'upper' }]], ['huge:1']);
    expect(await read(id, '/huge/n3999')).toBe('3999');
    expect(await read(id, '/huge/n0001')).toBe('upper');
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await engine.files.list(T, image(id), '/huge', { cursor, limit: 1000 });
      seen.push(...page.entries.map((e) => e.name));
      cursor = page.cursor;
    } while (cursor);
    expect(seen).toEqual(files.map((f) => f.path.slice(5)));
    await engine.images.remove(T, 'huge:1');
    const report = await engine.sweeper.sweep(T, { graceMs: 0 });
    expect(report.nodes).toBeGreaterThan(4000);
  });

  it('refuses a layer that holds the same path twice', async () => {
    const { archive } = await dockerArchive([
      [
        { path: 'a', content: '1' },
        { path: 'a', content: '2' },
      ],
    ]);
    await expect(engine.images.load(T, [archive])).rejects.toThrow(/twice/);
  });

  it('refuses entry names that climb out of the root', async () => {
    const { archive } = await dockerArchive([[{ path: '../../etc/passwd', content: 'root::0:0' }]]);
    await expect(engine.images.load(T, [archive])).rejects.toMatchObject({ status: 400 });
    expect(await engine.images.list(T)).toEqual([]);
  });

  it('refuses a config whose diff_ids do not match the layers', async () => {
    const { archive } = await dockerArchive([[{ path: 'a', content: '1' }]]);
    const tampered = Buffer.from(archive.toString('latin1').replace(/"diff_ids":\["sha256:[0-9a-f]{4}/, '"diff_ids":["sha256:0000'), 'latin1');
    await expect(engine.images.load(T, [tampered])).rejects.toMatchObject({ status: 400 });
  });
});

describe('applying a layer over the layers below it', () => {
  it('a whiteout deletes the lower path and everything under it, and is itself invisible', async () => {
    const id = await loadImage(engine, T, [
      [
        { path: 'etc/', dir: true, mode: 0o700 },
        { path: 'etc/x', content: 'x' },
        { path: 'etc/keep', content: 'k' },
        { path: 'd/sub/deep', content: 'deep' },
      ],
      [
        { path: 'etc/.wh.x', content: '' },
        { path: '.wh.d', content: '' },
      ],
    ]);
    expect(await names(id, '/etc')).toEqual(['keep']);
    expect(await names(id, '/')).toEqual(['etc']);
    await expect(engine.files.stat(T, image(id), '/d/sub/deep')).rejects.toMatchObject({ status: 404 });
    // The parent directory keeps its metadata (umoci: .wh.x keeps the parent's attributes).
    expect((await engine.files.stat(T, image(id), '/etc')).mode).toBe(0o700);
  });

  it('a whiteout never hides an entry of its own layer', async () => {
    const id = await loadImage(engine, T, [
      [{ path: 'a', content: 'lower' }],
      [
        { path: 'a', content: 'upper' },
        { path: '.wh.a', content: '' },
      ],
    ]);
    expect(await read(id, '/a')).toBe('upper');
  });

  it('an opaque marker hides lower children at every depth but keeps its own layer entries, wherever it sits in the tar', async () => {
    const id = await loadImage(engine, T, [
      [
        { path: 'd/old', content: 'old' },
        { path: 'd/sub/deeper', content: 'deep' },
      ],
      [
        { path: 'd/new', content: 'new' },
        { path: 'd/.wh..wh..opq', content: '' },
      ],
    ]);
    expect(await names(id, '/d')).toEqual(['new']);
    await expect(engine.files.stat(T, image(id), '/d/sub/deeper')).rejects.toMatchObject({ status: 404 });
  });

  it('two directories merge with the upper attributes; anything else replaces what was below', async () => {
    const id = await loadImage(engine, T, [
      [
        { path: 'd/', dir: true, mode: 0o755 },
        { path: 'd/lower', content: 'l' },
        { path: 'f/child', content: 'c' },
        { path: 'link', symlink: 'd' },
      ],
      [
        { path: 'd/', dir: true, mode: 0o700 },
        { path: 'd/upper', content: 'u' },
        { path: 'f', content: 'now a file' },
        { path: 'link/', dir: true },
      ],
    ]);
    expect(await names(id, '/d')).toEqual(['lower', 'upper']);
    expect((await engine.files.stat(T, image(id), '/d')).mode).toBe(0o700);
    expect(await read(id, '/f')).toBe('now a file');
    expect((await engine.files.stat(T, image(id), '/link', { follow: false })).type).toBe('dir');
  });

  it('an entry under a path a lower layer has as a file replaces that file with a directory', async () => {
    const id = await loadImage(engine, T, [[{ path: 'p', content: 'file' }], [{ path: 'p/child', content: 'c' }]]);
    expect((await engine.files.stat(T, image(id), '/p')).type).toBe('dir');
    expect(await read(id, '/p/child')).toBe('c');
  });

  it('a whiteout under a name its own layer makes a file hides nothing more, in either order (umoci writes `old` then `old/.wh.o`)', async () => {
    const lower = [
      { path: 'old/o', content: 'o' },
      { path: 'old/p', content: 'p' },
    ];
    for (const upper of [
      [
        { path: 'old', content: 'now a file' },
        { path: 'old/.wh.o', content: '' },
      ],
      [
        { path: 'old/.wh.o', content: '' },
        { path: 'old', content: 'now a file' },
      ],
      [
        { path: 'old/.wh..wh..opq', content: '' },
        { path: 'old', content: 'now a file' },
      ],
    ]) {
      const id = await loadImage(engine, T, [lower, upper]);
      expect((await engine.files.stat(T, image(id), '/old')).type).toBe('file');
      expect(await read(id, '/old')).toBe('now a file');
    }
  });

  it('an entry under a name its own layer holds as a file is refused, as unpacking it fails with ENOTDIR', async () => {
    const { archive } = await dockerArchive([
      [
        { path: 'a', content: 'file' },
        { path: 'a/b', content: 'under a file' },
      ],
    ]);
    await expect(engine.images.load(T, [archive])).rejects.toThrow('layer holds /a/b under /a, which it holds as a file');
    const after = await dockerArchive([
      [
        { path: 'a/b', content: 'b' },
        { path: 'a', content: 'file after its own children' },
      ],
    ]);
    await expect(engine.images.load(T, [after.archive])).rejects.toThrow('layer holds /a as a file after entries under it');
    expect(await engine.images.list(T)).toEqual([]);
  });

  it('a whiteout and an entry under the same name in one layer: the lower tree stays hidden', async () => {
    const id = await loadImage(engine, T, [
      [{ path: 'p/q/file', content: 'old' }],
      [
        { path: '.wh.p', content: '' },
        { path: 'p/r', content: 'new' },
      ],
    ]);
    expect(await names(id, '/p')).toEqual(['r']);
  });

  it('hard links (typeflag 1) point into the same or a lower layer', async () => {
    const id = await loadImage(engine, T, [
      [{ path: 'bin/busybox', content: 'BB' }],
      [
        { path: 'bin/sh', hardlink: 'bin/busybox' },
        { path: 'x', content: 'X' },
        { path: 'y', hardlink: 'x' },
      ],
    ]);
    expect(await read(id, '/bin/sh')).toBe('BB');
    expect(await read(id, '/y')).toBe('X');
  });

  it('a layer index records where each file lies, so a read is one ranged GET of the stored tar', async () => {
    const tar = await tarOf([
      { path: 'a', content: 'AAAA' },
      { path: 'b', content: 'BBBBBBBB' },
    ]);
    const offsets: Record<string, number> = {};
    for await (const e of readTar(Readable.from([tar]))) offsets[e.header.path] = e.dataOffset;
    expect(tar.subarray(offsets.b, offsets.b + 8).toString()).toBe('BBBBBBBB');
  });
});

describe('read-only image trees', () => {
  it('lists, stats and reads without a container, and refuses writes', async () => {
    const id = await loadImage(engine, T, [[{ path: 'a', content: '0123456789' }]], ['ro:1']);
    expect(await names('ro:1', '/')).toEqual(['a']);
    const { body, start, end } = await engine.files.read(T, image(id), '/a', { start: 2, end: 5 });
    expect([start, end, await text(body)]).toEqual([2, 5, '234']);
    await expect(engine.files.writeFile(T, image(id), '/b', Buffer.from('x'))).rejects.toMatchObject({ status: 403 });
  });

  it('paginates a large merged directory with a cursor, names in order, none twice', async () => {
    const lower = Array.from({ length: 30 }, (_, i) => ({ path: `d/f${String(i).padStart(2, '0')}`, content: 'l' }));
    const upper = Array.from({ length: 30 }, (_, i) => ({ path: `d/f${String(i * 2).padStart(2, '0')}`, content: 'u' }));
    const id = await loadImage(engine, T, [lower, upper]);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await engine.files.list(T, image(id), '/d', { cursor, limit: 7 });
      seen.push(...page.entries.map((e) => e.name));
      cursor = page.cursor;
    } while (cursor);
    const expected = [...new Set([...lower, ...upper].map((e) => e.path.slice(2)))].sort();
    expect(seen).toEqual(expected);
  });
});

describe('tenants', () => {
  it('one tenant cannot see or use another tenant image', async () => {
    const id = await loadImage(engine, 'alpha', [[{ path: 'secret', content: 's' }]], ['app:1']);
    await expect(engine.images.resolve('beta', id)).rejects.toMatchObject({ status: 404 });
    await expect(engine.images.resolve('beta', 'app:1')).rejects.toMatchObject({ status: 404 });
    await expect(engine.containers.create('beta', { image: id })).rejects.toMatchObject({ status: 404 });
    expect(await engine.images.list('beta')).toEqual([]);
  });
});

describe('OCI image layouts', () => {
  it('loads an OCI layout tar with a zstd and a gzip layer, and save/load keeps its IDs', async () => {
    const { execFileSync } = await import('node:child_process');
    const { gzipSync } = await import('node:zlib');
    const { TarWriter } = await import('../../shared/tar/tar-writer.js');
    const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const bottom = await tarOf([
      { path: 'etc/os-release', content: 'ID=oci\n' },
      { path: 'bin/sh', content: 'sh' },
    ]);
    const top = await tarOf([
      { path: 'bin/.wh.sh', content: '' },
      { path: 'app/run', content: 'run' },
    ]);
    const layers = [
      { blob: execFileSync('zstd', ['-q', '-c'], { input: bottom }), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', diffId: `sha256:${hex(bottom)}` },
      { blob: gzipSync(top), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: `sha256:${hex(top)}` },
    ];
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${hex(config)}`, size: config.length },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: `sha256:${hex(l.blob)}`, size: l.blob.length })),
      }),
    );
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${hex(manifest)}`, size: manifest.length, annotations: { 'io.containerd.image.name': 'docker.io/library/oci:1' } },
        ],
      }),
    );
    const writer = new TarWriter();
    const chunks: Buffer[] = [];
    const done = (async () => {
      for await (const c of writer.stream) chunks.push(Buffer.from(c));
    })();
    const file = (path: string, body: Buffer) => writer.entry({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: body.length }, body);
    await file('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    await file('index.json', index);
    for (const blob of [manifest, config, ...layers.map((l) => l.blob)]) await file(`blobs/sha256/${hex(blob)}`, blob);
    await writer.finish();
    await done;

    const [loaded] = await engine.images.load(T, [Buffer.concat(chunks)]);
    expect(loaded).toEqual({ id: `sha256:${hex(config)}`, tags: ['oci:1'] });
    expect(await names(loaded.id, '/bin')).toEqual([]);
    expect(await read(loaded.id, '/etc/os-release')).toBe('ID=oci\n');
    expect(await read(loaded.id, '/app/run')).toBe('run');
    const saved = await text(await engine.images.save(T, ['oci:1']).then((s) => s.setEncoding('latin1')));
    const { engine: other, cleanup: done2 } = await localEngine();
    try {
      const [again] = await other.images.load(T, [Buffer.from(saved, 'latin1')]);
      expect(again.id).toBe(loaded.id);
      expect((await other.images.inspect(T, again.id)).layers.map((l) => l.diffId)).toEqual(layers.map((l) => l.diffId));
    } finally {
      await done2();
    }
  });
});
