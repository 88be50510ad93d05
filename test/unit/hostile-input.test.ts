import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverConfig } from '../support/server-config.js';
import type { Services } from '../../functions/composition.js';
import { startLocalServer } from '../../functions/local/server.js';
import { FsBlobStore } from '../../shared/adapters/fs-blob-store.js';
import { MemoryMetadataStore } from '../../shared/adapters/memory-metadata-store.js';
import { Engine } from '../../shared/engine.js';
import { END, paxEntry, rawEntry, rawHeader, rawTar } from '../support/raw-tar.js';

/**
 * The hostile corpus: malformed and malicious archives and requests, each sent to a running
 * server. Every case must be answered with the expected 4xx and a message saying what was
 * wrong, and must leave the image list, `system df`, the metadata items and the blobs exactly
 * as they were.
 */

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
let dir: string;
let url: string;
let meta: MemoryMetadataStore;
let close: () => Promise<void>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strata-hostile-'));
  meta = new MemoryMetadataStore();
  const blobs = new FsBlobStore(join(dir, 'blobs'), async (key) => `http://127.0.0.1/unused/${key}`);
  const config = serverConfig(join(dir, 'blobs'));
  const services: Services = { config, engine: new Engine(meta, blobs), meta, blobs, streamsBodies: false };
  const server = await startLocalServer({ services, port: 0, host: '127.0.0.1', signingKey: randomBytes(32), maxBodyBytes: 64 << 20 });
  url = server.url;
  close = server.close;
  const base = dockerArchive(
    [layerTar(rawEntry({ name: 'etc/', typeflag: '5', mode: '0000755\0' }), rawEntry({ name: 'etc/hosts' }, 'original'), rawEntry({ name: 'opt/dir/sub/f' }, 'x'))],
    ['base:1'],
  );
  expect((await call('POST', '/v1/images/load', base)).status).toBe(201);
  expect((await call('POST', '/v1/containers', { image: 'base:1', name: 'box', mounts: [{ target: '/data', volume: 'keep' }] })).status).toBe(201);
  expect((await call('PUT', '/v1/containers/box/fs/etc/motd', Buffer.from('hello'))).status).toBe(200);
  expect((await call('POST', '/v1/containers', { image: 'base:1', name: 'other' })).status).toBe(201);
  expect((await call('PUT', '/v1/containers/other/fs/secret', Buffer.from('of other'))).status).toBe(200);
});
afterAll(async () => {
  await close?.();
  await rm(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: Buffer | object, headers: Record<string, string> = {}) {
  // fetch would resolve dot segments before sending: such paths go out as they are written.
  if (/%2e|\/\.\.?\//i.test(path)) return rawGet(path);
  const isJson = body !== undefined && !Buffer.isBuffer(body);
  const response = await fetch(url + path, {
    method,
    headers: { ...(isJson ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : isJson ? JSON.stringify(body) : new Uint8Array(body as Buffer),
    redirect: 'manual',
  });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

async function rawGet(path: string): Promise<{ status: number; text: string; json: any }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    const req = request({ hostname, port, path, method: 'GET' }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, json: text.startsWith('{') ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What a user (images, df) and an operator (items, blobs, partial files) would see. */
async function snapshot() {
  const images = (await call('GET', '/v1/images')).json;
  const df = (await call('GET', '/v1/system/df')).json;
  const partitions = (meta as unknown as { partitions: Map<string, { items: Map<string, unknown> }> }).partitions;
  let items = 0;
  for (const p of partitions.values()) items += p.items.size;
  return { images, df, items, files: await filesUnder(join(dir, 'blobs')) };
}

async function filesUnder(folder: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  return out.sort();
}

function layerTar(...entries: Buffer[]): Buffer {
  return rawTar(...entries);
}

/** A docker-archive around raw layer blobs; `diffIds` default to the blobs' own hashes (right for plain tars; compressed ones fail before the check). */
function dockerArchive(layers: Buffer[], tags: string[] = [], options: { diffIds?: string[]; config?: Buffer; extraImages?: { layers: Buffer[]; tags: string[] }[] } = {}): Buffer {
  const members: Buffer[] = [];
  const manifest: object[] = [];
  const images = [{ layers, tags, diffIds: options.diffIds, config: options.config }, ...(options.extraImages ?? [])];
  for (const [n, image] of images.entries()) {
    const names = image.layers.map((blob, i) => {
      const name = `i${n}l${i}/layer.tar`;
      members.push(rawEntry({ name }, blob));
      return name;
    });
    const config =
      ('config' in image && image.config) ||
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ('diffIds' in image && image.diffIds) || image.layers.map((l) => `sha256:${sha(l)}`) } }));
    members.push(rawEntry({ name: `${sha(config)}.json` }, config));
    manifest.push({ Config: `${sha(config)}.json`, RepoTags: image.tags, Layers: names });
  }
  members.push(rawEntry({ name: 'manifest.json' }, JSON.stringify(manifest)));
  return rawTar(...members);
}

function base256(value: bigint, width: number, negative = false): Buffer {
  const out = Buffer.alloc(width);
  let v = negative ? (1n << BigInt(width * 8)) + value : value;
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] = negative ? 0xff : out[0]! | 0x80;
  return out;
}

function zstd(data: Buffer, args: string[] = []): Buffer {
  return execFileSync('zstd', ['-c', '-q', ...args], { input: data, maxBuffer: 1 << 30 });
}

/** A layer written by GNU tar itself: `setup` makes files in a scratch folder, `command` prints the tar. */
function gnuTar(setup: string, command: string): Buffer {
  const scratch = execFileSync('mktemp', ['-d']).toString().trim();
  try {
    execFileSync('sh', ['-c', setup], { cwd: scratch });
    return execFileSync('sh', ['-c', command], { cwd: scratch, maxBuffer: 64 << 20 });
  } finally {
    execFileSync('rm', ['-rf', scratch]);
  }
}

interface Case {
  name: string;
  status: number;
  message: RegExp;
}

const longName = 'n'.repeat(256);

/** Layers that must be refused, each inside an otherwise valid docker-archive. */
const layerCases: (Case & { layer: () => Buffer })[] = [
  {
    name: 'GNU tar: one file appended twice (tar -r)',
    layer: () => gnuTar('echo one > f && tar -cf l.tar f && echo two > f && tar -rf l.tar f', 'cat l.tar'),
    status: 400,
    message: /holds \/f twice/,
  },
  { name: 'GNU tar: a member that climbs (tar -P ../)', layer: () => gnuTar('mkdir d && echo x > secret', 'tar -C d -cPf - ../secret'), status: 400, message: /climbs above the root/ },
  { name: 'GNU tar: a hard link whose target was left out', layer: () => gnuTar('echo x > a && ln a b', 'tar -cf - a b | tar --delete -f - a'), status: 400, message: /hard link \/b points to \/a/ },
  {
    name: 'a header that claims 10,000,000 bytes followed by 50',
    layer: () => Buffer.concat([rawHeader({ name: 'a', size: 10_000_000 }), Buffer.alloc(50, 1)]),
    status: 400,
    message: /truncated tar/,
  },
  { name: 'a tar cut off mid-header', layer: () => rawHeader({ name: 'a' }).subarray(0, 300), status: 400, message: /truncated tar/ },
  { name: 'a tar with no end marker', layer: () => rawEntry({ name: 'a' }, 'abc'), status: 400, message: /end-of-archive marker/ },
  { name: 'a pax size larger than the data', layer: () => Buffer.concat([paxEntry({ size: '100000' }), rawEntry({ name: 'a' }, 'abc')]), status: 400, message: /truncated tar/ },
  { name: 'a wrong header checksum', layer: () => rawTar(rawEntry({ name: 'a', checksum: '000001\0 ' }, 'x')), status: 400, message: /checksum mismatch/ },
  { name: 'an unreadable checksum field', layer: () => rawTar(rawEntry({ name: 'a', checksum: 'zzzzzz\0 ' }, 'x')), status: 400, message: /checksum mismatch/ },
  { name: 'a size field that is not octal', layer: () => rawTar(rawEntry({ name: 'a', size: '0000000009a\0' })), status: 400, message: /invalid size field/ },
  { name: 'a mode field that is not octal', layer: () => rawTar(rawEntry({ name: 'a', mode: '0000x44\0' })), status: 400, message: /invalid mode field/ },
  { name: 'a negative base-256 size', layer: () => rawTar(rawEntry({ name: 'a', size: base256(-5n, 12, true) })), status: 400, message: /invalid size field/ },
  { name: 'a base-256 size past 2^53', layer: () => rawTar(rawEntry({ name: 'a', size: base256(1n << 60n, 12) })), status: 400, message: /invalid size field/ },
  { name: 'a base-256 uid past 2^32', layer: () => rawTar(rawEntry({ name: 'a', uid: base256(1n << 40n, 8) })), status: 400, message: /uid out of range/ },
  { name: 'a name that climbs with ../', layer: () => rawTar(rawEntry({ name: '../etc/passwd' }, 'x')), status: 400, message: /climbs above the root/ },
  { name: 'a name that climbs after a directory', layer: () => rawTar(rawEntry({ name: 'a/../../x' }, 'x')), status: 400, message: /climbs above the root/ },
  {
    name: 'a pax path that climbs',
    layer: () => rawTar(paxEntry({ path: 'x/../../../root/.ssh/authorized_keys' }), rawEntry({ name: 'harmless' }, 'k')),
    status: 400,
    message: /climbs above the root/,
  },
  {
    name: 'a hard link whose target climbs',
    layer: () => rawTar(rawEntry({ name: 'a' }, 'x'), rawEntry({ name: 'b', typeflag: '1', linkname: '../../etc/shadow' })),
    status: 400,
    message: /climbs above the root/,
  },
  { name: 'a NUL in a pax path', layer: () => rawTar(paxEntry({ path: 'a\0b' }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /NUL/ },
  { name: 'a name that is not UTF-8', layer: () => rawTar(rawEntry({ name: Buffer.from([0x61, 0xff, 0xfe]) }, 'x')), status: 400, message: /not valid UTF-8/ },
  { name: 'a pax path that is not UTF-8', layer: () => rawTar(paxEntry(Buffer.from('11 path=\xff\xfe\n', 'latin1')), rawEntry({ name: 'a' }, 'x')), status: 400, message: /not valid UTF-8/ },
  { name: 'a name component over 255 bytes', layer: () => rawTar(paxEntry({ path: `d/${longName}` }), rawEntry({ name: 'a' }, 'x')), status: 413, message: /over 255 bytes/ },
  { name: 'a path over 4096 bytes', layer: () => rawTar(paxEntry({ path: 'abcdefgh/'.repeat(460) }), rawEntry({ name: 'a' }, 'x')), status: 413, message: /over 4096 bytes/ },
  { name: 'a pax header over 1 MiB', layer: () => rawTar(paxEntry({ comment: 'c'.repeat(1100 * 1024) }), rawEntry({ name: 'a' }, 'x')), status: 413, message: /pax header .* over the/ },
  { name: 'a pax record with a bad length', layer: () => rawTar(paxEntry(Buffer.from('x9 path=a\n')), rawEntry({ name: 'a' }, 'x')), status: 400, message: /bad record length/ },
  { name: 'a pax record whose length does not match', layer: () => rawTar(paxEntry(Buffer.from('30 path=a\n')), rawEntry({ name: 'a' }, 'x')), status: 400, message: /does not match its data/ },
  { name: 'a pax record without key=value', layer: () => rawTar(paxEntry(Buffer.from('9 pathxa\n')), rawEntry({ name: 'a' }, 'x')), status: 400, message: /without key=value/ },
  {
    name: 'pax data after NUL padding',
    layer: () => rawTar(paxEntry(Buffer.concat([Buffer.from('11 path=ab\n'), Buffer.from([0, 0, 0x41])])), rawEntry({ name: 'a' }, 'x')),
    status: 400,
    message: /after NUL padding/,
  },
  { name: 'a pax size that is not a number', layer: () => rawTar(paxEntry({ size: '12abc' }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /invalid pax size/ },
  { name: 'a pax size of 2^70', layer: () => rawTar(paxEntry({ size: String(1n << 70n) }), rawEntry({ name: 'a' }, 'x')), status: 413, message: /pax size .* is over/ },
  { name: 'a pax uid that is not a number', layer: () => rawTar(paxEntry({ uid: '-1' }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /invalid pax uid/ },
  { name: 'a pax gid past 2^32', layer: () => rawTar(paxEntry({ gid: String(2 ** 40) }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /gid out of range/ },
  { name: 'a pax mtime that is not a time', layer: () => rawTar(paxEntry({ mtime: 'yesterday' }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /invalid pax mtime/ },
  { name: 'a GNU sparse entry', layer: () => rawTar(rawEntry({ name: 'a', typeflag: 'S' }, 'x')), status: 400, message: /GNU sparse/ },
  { name: 'pax GNU.sparse records', layer: () => rawTar(paxEntry({ 'GNU.sparse.major': '1' }), rawEntry({ name: 'a' }, 'x')), status: 400, message: /GNU sparse/ },
  {
    name: 'a GNU long name over the path limit',
    layer: () => rawTar(rawEntry({ name: '././@LongLink', typeflag: 'L' }, 'a'.repeat(5000)), rawEntry({ name: 'a' }, 'x')),
    status: 413,
    message: /GNU long name/,
  },
  { name: 'a GNU long name cut short', layer: () => Buffer.concat([rawHeader({ name: '././@LongLink', typeflag: 'L', size: 300 }), Buffer.alloc(100, 0x61)]), status: 400, message: /truncated tar/ },
  { name: 'a pax header with no entry after it', layer: () => rawTar(paxEntry({ path: 'a' })), status: 400, message: /has no entry after it/ },
  {
    name: 'a lone zero block followed by data',
    layer: () => Buffer.concat([rawEntry({ name: 'a' }, 'x'), Buffer.alloc(512), rawEntry({ name: 'b' }, 'y'), END]),
    status: 400,
    message: /lone zero block/,
  },
  { name: 'an entry with an empty name', layer: () => rawTar(rawEntry({ name: '' }, 'x')), status: 400, message: /empty name/ },
  { name: 'a symlink with an empty target', layer: () => rawTar(rawEntry({ name: 'l', typeflag: '2', linkname: '' })), status: 400, message: /empty target/ },
  { name: 'a hard link to nothing', layer: () => rawTar(rawEntry({ name: 'h', typeflag: '1', linkname: 'missing' })), status: 400, message: /hard link \/h points to \/missing/ },
  { name: 'a hard link to a directory', layer: () => rawTar(rawEntry({ name: 'd/', typeflag: '5' }), rawEntry({ name: 'h', typeflag: '1', linkname: 'd' })), status: 400, message: /not a file/ },
  { name: 'the same file twice', layer: () => rawTar(rawEntry({ name: 'a' }, 'x'), rawEntry({ name: 'a' }, 'y')), status: 400, message: /holds \/a twice/ },
  { name: 'a file and a directory at one path', layer: () => rawTar(rawEntry({ name: 'a' }, 'x'), rawEntry({ name: 'a/', typeflag: '5' })), status: 400, message: /holds \/a twice/ },
  { name: 'a symlink and a file at one path', layer: () => rawTar(rawEntry({ name: 'a', typeflag: '2', linkname: 'b' }), rawEntry({ name: 'a' }, 'y')), status: 400, message: /holds \/a twice/ },
  { name: 'an empty layer', layer: () => Buffer.alloc(0), status: 400, message: /listed as a layer but is empty/ },
  { name: 'a gzip bomb', layer: () => gzipSync(rawTar(rawEntry({ name: 'a', size: 200 << 20 }), Buffer.alloc(200 << 20))), status: 413, message: /decompression bomb/ },
  { name: 'a zstd bomb', layer: () => zstd(Buffer.concat([rawHeader({ name: 'a', size: 200 << 20 }), Buffer.alloc(200 << 20), END])), status: 413, message: /decompression bomb/ },
  { name: 'corrupt gzip', layer: () => Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), randomBytes(300)]), status: 400, message: /gzip/ },
  { name: 'truncated gzip', layer: () => gzipSync(rawTar(rawEntry({ name: 'a' }, randomBytes(4000)))).subarray(0, 500), status: 400, message: /gzip|truncated/ },
  // A 1 KiB window, then a block of the reserved type (random bytes after the magic sometimes declare a window over the limit: 413).
  { name: 'corrupt zstd', layer: () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x07, 0x00, 0x00]), randomBytes(200)]), status: 400, message: /corrupt zstd/ },
  { name: 'xz', layer: () => Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), randomBytes(100)]), status: 400, message: /xz compression is not supported/ },
  { name: 'bzip2', layer: () => Buffer.concat([Buffer.from('BZh9'), randomBytes(100)]), status: 400, message: /bzip2 compression is not supported/ },
  { name: 'a zstd window over the limit', layer: () => zstd(rawTar(rawEntry({ name: 'a' }, randomBytes(1000))), ['--long=31', '--ultra', '-22']), status: 413, message: /window/ },
];

/** Whole archives that must be refused. */
const archiveCases: (Case & { archive: () => Buffer })[] = [
  { name: 'random bytes', archive: () => randomBytes(4096), status: 400, message: /tar/ },
  { name: 'an archive without manifest.json or index.json', archive: () => rawTar(rawEntry({ name: 'x/layer.tar' }, layerTar(rawEntry({ name: 'a' }, 'x')))), status: 400, message: /manifest|index/ },
  { name: 'a manifest.json that is not JSON', archive: () => rawTar(rawEntry({ name: 'manifest.json' }, '[{"Config": ')), status: 400, message: /manifest\.json/ },
  {
    name: 'a manifest naming a layer the archive lacks',
    archive: () =>
      rawTar(
        rawEntry({ name: 'c.json' }, JSON.stringify({ rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } })),
        rawEntry({ name: 'manifest.json' }, JSON.stringify([{ Config: 'c.json', RepoTags: [], Layers: ['gone/layer.tar'] }])),
      ),
    status: 400,
    message: /gone\/layer\.tar/,
  },
  {
    name: 'a manifest naming a config the archive lacks',
    archive: () => rawTar(rawEntry({ name: 'manifest.json' }, JSON.stringify([{ Config: 'nope.json', RepoTags: [], Layers: [] }]))),
    status: 400,
    message: /nope\.json/,
  },
  {
    name: 'a config that is not JSON',
    archive: () => rawTar(rawEntry({ name: 'c.json' }, '{not json'), rawEntry({ name: 'manifest.json' }, JSON.stringify([{ Config: 'c.json', RepoTags: [], Layers: [] }]))),
    status: 400,
    message: /c\.json/,
  },
  {
    name: 'a config whose DiffIDs do not match the layer',
    archive: () => dockerArchive([layerTar(rawEntry({ name: 'a' }, 'x'))], ['bad:diffid'], { diffIds: [`sha256:${'1'.repeat(64)}`] }),
    status: 400,
    message: /DiffID/,
  },
  {
    name: 'a config with more DiffIDs than layers',
    archive: () => dockerArchive([layerTar(rawEntry({ name: 'a' }, 'x'))], ['bad:count'], { diffIds: [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`] }),
    status: 400,
    message: /diff_ids/,
  },
  {
    name: 'a 9 MiB config',
    archive: () =>
      dockerArchive([layerTar(rawEntry({ name: 'a' }, 'x'))], ['big:config'], { config: Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] }, pad: 'p'.repeat(9 << 20) })) }),
    status: 413,
    message: /is \d+ bytes, over the \d+-byte limit for a manifest or config/,
  },
  {
    name: 'two images whose second is bad',
    archive: () =>
      dockerArchive([layerTar(rawEntry({ name: 'good' }, 'g'))], ['first:ok'], {
        extraImages: [{ layers: [layerTar(rawEntry({ name: 'a' }, 'x'), rawEntry({ name: 'a' }, 'y'))], tags: ['second:bad'] }],
      }),
    status: 400,
    message: /holds \/a twice/,
  },
  { name: 'a tag that is not a reference', archive: () => dockerArchive([layerTar(rawEntry({ name: 'a' }, 'x'))], ['UPPER/Case:tag']), status: 400, message: /reference|tag|name/i },
  {
    name: 'more than 90 tags',
    archive: () =>
      dockerArchive(
        [layerTar(rawEntry({ name: 'a' }, 'x'))],
        Array.from({ length: 91 }, (_, i) => `many:t${i}`),
      ),
    status: 400,
    message: /at most 90 tags/,
  },
];

const bigLabels = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(2500)]));

/** Requests that must be refused. */
const httpCases: (Case & { method: string; path: string; body?: Buffer | object; headers?: Record<string, string> })[] = [
  { name: 'a uid of 2^53-1', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { uid: 9007199254740991 }, status: 400, message: /uid must be an integer from 0 to 4294967294/ },
  { name: 'a uid of 2^32-1', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { uid: 4294967295 }, status: 400, message: /uid must be/ },
  { name: 'a negative gid', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { gid: -1 }, status: 400, message: /gid must be/ },
  { name: 'a fractional uid', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { uid: 1.5 }, status: 400, message: /uid must be/ },
  { name: 'a uid given as a string', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { uid: 'root' }, status: 400, message: /uid must be/ },
  { name: 'a size past the largest file', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { size: 2 ** 41 }, status: 413, message: /over the largest file size/ },
  { name: 'a size of 2^53-1', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { size: 9007199254740991 }, status: 413, message: /over the largest file size/ },
  { name: 'a negative size', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { size: -1 }, status: 400, message: /size must be/ },
  { name: 'an mtime past year 9999', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { mtime: 1e16 }, status: 400, message: /mtime must be/ },
  { name: 'a mode over 0o7777', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { mode: 0o10000 }, status: 400, message: /mode must be/ },
  { name: 'a mode string that is not octal', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { mode: '0988' }, status: 400, message: /mode must be/ },
  { name: 'an attribute patch with nothing in it', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: {}, status: 400, message: /give at least one/ },
  { name: 'an offset of 2^53-1', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?offset=9007199254740991', body: Buffer.from('x'), status: 413, message: /over the largest file size/ },
  { name: 'an offset past the largest file', method: 'PATCH', path: `/v1/containers/box/fs/etc/hosts?offset=${2 ** 40}`, body: Buffer.from('x'), status: 413, message: /over the largest file size/ },
  { name: 'an offset past 2^53', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?offset=99999999999999999999', body: Buffer.from('x'), status: 400, message: /offset must be/ },
  { name: 'a negative offset', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?offset=-1', body: Buffer.from('x'), status: 400, message: /offset must be/ },
  { name: 'an offset that is not a number', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?offset=abc', body: Buffer.from('x'), status: 400, message: /offset must be/ },
  { name: 'a write with no position', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: Buffer.from('x'), status: 400, message: /say where to write/ },
  { name: 'append=maybe', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?append=maybe', body: Buffer.from('x'), status: 400, message: /append must be true or false/ },
  {
    name: 'a label key __proto__',
    method: 'POST',
    path: '/v1/containers',
    body: JSON.parse('{"image":"base:1","name":"p1","labels":{"__proto__":"x"}}'),
    status: 400,
    message: /"__proto__" is not allowed/,
  },
  { name: 'a label key constructor', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p2', labels: { constructor: 'x' } }, status: 400, message: /label key "constructor"/ },
  { name: 'labels over 64 KiB', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p3', labels: bigLabels }, status: 400, message: /over the 65536-byte limit/ },
  {
    name: 'a label that is not a string',
    method: 'POST',
    path: '/v1/containers',
    body: { image: 'base:1', name: 'p4', labels: { a: 1 } },
    status: 400,
    message: /labels must be an object of strings/,
  },
  { name: 'an empty label key', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p5', labels: { '': 'x' } }, status: 400, message: /label key "" is not allowed/ },
  { name: 'a volume label key __proto__', method: 'POST', path: '/v1/volumes', body: JSON.parse('{"name":"v1","labels":{"__proto__":"x"}}'), status: 400, message: /"__proto__" is not allowed/ },
  { name: 'volume labels over 64 KiB', method: 'POST', path: '/v1/volumes', body: { name: 'v2', labels: bigLabels }, status: 400, message: /over the 65536-byte limit/ },
  { name: 'a container name with a slash', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'a/b' }, status: 400, message: /invalid container name/ },
  { name: 'a container name of 64 hex characters', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'a'.repeat(64) }, status: 400, message: /64 hex/ },
  { name: 'a container of a missing image', method: 'POST', path: '/v1/containers', body: { image: 'nope:1', name: 'p6' }, status: 404, message: /nope/ },
  { name: 'a mount at /', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p7', mounts: [{ target: '/' }] }, status: 400, message: /cannot be mounted at \// },
  {
    name: 'one volume mounted twice',
    method: 'POST',
    path: '/v1/containers',
    body: {
      image: 'base:1',
      name: 'p8',
      mounts: [
        { target: '/a', volume: 'keep' },
        { target: '/b', volume: 'keep' },
      ],
    },
    status: 400,
    message: /mounted twice/,
  },
  {
    name: 'two mounts at one path',
    method: 'POST',
    path: '/v1/containers',
    body: { image: 'base:1', name: 'p9', mounts: [{ target: '/a' }, { target: '/a/' }] },
    status: 400,
    message: /two mounts at \/a/,
  },
  { name: 'a mount target that climbs', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p10', mounts: [{ target: '/../x' }] }, status: 400, message: /\.\./ },
  { name: 'a volume name with a space', method: 'POST', path: '/v1/volumes', body: { name: 'a b' }, status: 400, message: /invalid volume name/ },
  {
    name: '%2e%2e segments that would reach another container',
    method: 'GET',
    path: '/v1/containers/box/fs/x/%2e%2e/%2e%2e/%2e%2e/other/fs/secret',
    status: 400,
    message: /path segments \. and \.\./,
  },
  { name: 'mixed-case %2E. segments', method: 'GET', path: '/v1/containers/box/fs/x/%2E./%2e%2E/%2E%2e/other/fs/secret', status: 400, message: /path segments/ },
  { name: 'a NUL in a path', method: 'GET', path: '/v1/containers/box/fs/etc/ho%00sts', status: 400, message: /NUL/ },
  { name: 'a name over 255 bytes', method: 'PUT', path: `/v1/containers/box/fs/${longName}`, body: Buffer.from('x'), status: 400, message: /255/ },
  { name: 'a name starting with .wh.', method: 'PUT', path: '/v1/containers/box/fs/etc/.wh.hosts', body: Buffer.from('x'), status: 400, message: /\.wh\./ },
  { name: 'an untag through another image', method: 'DELETE', path: `/v1/images/sha256:${'0'.repeat(64)}/tags/base:1`, status: 404, message: /0000/ },
  { name: 'a Range that is not bytes=', method: 'GET', path: '/v1/containers/box/fs/etc/hosts', headers: { range: 'lines=1-2' }, status: 416, message: /unsupported Range/ },
  { name: 'several ranges', method: 'GET', path: '/v1/containers/box/fs/etc/hosts', headers: { range: 'bytes=0-1,3-4' }, status: 416, message: /unsupported Range/ },
  { name: 'a range past the end', method: 'GET', path: '/v1/containers/box/fs/etc/hosts', headers: { range: 'bytes=500-600' }, status: 416, message: /./ },
  { name: 'a range with nothing in it', method: 'GET', path: '/v1/containers/box/fs/etc/hosts', headers: { range: 'bytes=-' }, status: 416, message: /unsupported Range/ },
  { name: 'a body that is not JSON', method: 'POST', path: '/v1/containers', body: Buffer.from('{"image":'), headers: { 'content-type': 'application/json' }, status: 400, message: /JSON/ },
  { name: 'a rename without a target', method: 'POST', path: '/v1/containers/box/fs/etc/hosts', body: { action: 'rename' }, status: 400, message: /to is required/ },
  { name: 'an unknown action', method: 'POST', path: '/v1/containers/box/fs/etc/hosts', body: { action: 'explode' }, status: 400, message: /action must be rename, link, symlink or mkdir/ },
  { name: 'an unknown field in a container', method: 'POST', path: '/v1/containers', body: { image: 'base:1', name: 'p11', Image: 'typo' }, status: 400, message: /unknown field "Image"/ },
  {
    name: 'an unknown field in a mount',
    method: 'POST',
    path: '/v1/containers',
    body: { image: 'base:1', name: 'p12', mounts: [{ target: '/m', readonly: true }] },
    status: 400,
    message: /unknown field "mounts.0.readonly"/,
  },
  { name: 'an unknown attribute', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts', body: { owner: 'root' }, status: 400, message: /unknown field "owner"/ },
  { name: 'an unknown field in an action', method: 'POST', path: '/v1/containers/box/fs/etc/hosts', body: { action: 'rename', to: '/x', force: true }, status: 400, message: /unknown field "force"/ },
  {
    name: 'a __proto__ key anywhere in a body',
    method: 'POST',
    path: '/v1/containers/box/commit',
    body: JSON.parse('{"comment":"c","__proto__":{"polluted":true}}'),
    status: 400,
    message: /"__proto__" is not allowed/,
  },
  { name: 'an unknown query parameter', method: 'DELETE', path: '/v1/containers/box?force=true', status: 400, message: /unknown query parameter "force"/ },
  { name: 'a misspelt query parameter on a write', method: 'PATCH', path: '/v1/containers/box/fs/etc/hosts?ofset=3', body: Buffer.from('x'), status: 400, message: /unknown query parameter "ofset"/ },
  { name: 'a flag that is neither true nor false', method: 'GET', path: '/v1/containers?size=big', status: 400, message: /size must be true or false/ },
  { name: 'a body that is a JSON array', method: 'POST', path: '/v1/volumes', body: Buffer.from('[]'), headers: { 'content-type': 'application/json' }, status: 400, message: /must be a JSON object/ },
  { name: 'a rename of a directory into itself', method: 'POST', path: '/v1/containers/box/fs/opt', body: { action: 'rename', to: '/opt/dir/x' }, status: 400, message: /./ },
  { name: 'an unknown type', method: 'PUT', path: '/v1/containers/box/fs/x?type=fifo', body: Buffer.from('x'), status: 400, message: /type must be file, dir or symlink/ },
  { name: 'an If-Match that does not match', method: 'PUT', path: '/v1/containers/box/fs/etc/hosts', body: Buffer.from('x'), headers: { 'if-match': '"nope"' }, status: 412, message: /./ },
  { name: 'a create-only write over an existing file', method: 'PUT', path: '/v1/containers/box/fs/etc/hosts', body: Buffer.from('x'), headers: { 'if-none-match': '*' }, status: 412, message: /./ },
  { name: 'a refused rmdir of a non-empty lower directory', method: 'DELETE', path: '/v1/containers/box/fs/opt/dir/sub', status: 409, message: /ENOTEMPTY|not empty/i },
  {
    name: 'a rename of a directory over a non-empty one',
    method: 'POST',
    path: '/v1/containers/box/fs/opt/dir/sub',
    body: { action: 'rename', to: '/etc' },
    status: 409,
    message: /ENOTEMPTY|not empty/i,
  },
  { name: 'a rename of a file over a directory', method: 'POST', path: '/v1/containers/box/fs/etc/hosts', body: { action: 'rename', to: '/opt' }, status: 400, message: /EISDIR|directory/i },
  { name: 'a mkdir over an existing file', method: 'PUT', path: '/v1/containers/box/fs/etc/hosts?type=dir', status: 409, message: /EEXIST|exists/i },
  { name: 'a hard link to a directory', method: 'POST', path: '/v1/containers/box/fs/newlink', body: { action: 'link', target: '/opt' }, status: 400, message: /./ },
  { name: 'a symlink over an existing file', method: 'PUT', path: '/v1/containers/box/fs/etc/hosts?type=symlink&target=/x', status: 409, message: /EEXIST|exists/i },
  { name: 'a removal of a volume mount point', method: 'DELETE', path: '/v1/containers/box/fs/data', status: 409, message: /mount point/ },
  { name: 'a removal of the root', method: 'DELETE', path: '/v1/containers/box/fs/%2F', status: 400, message: /root/ },
  { name: 'a write into an image', method: 'PUT', path: '/v1/images/base:1/fs/etc/hosts', body: Buffer.from('x'), status: 405, message: /not allowed/ },
  { name: 'a write under a missing directory', method: 'PUT', path: '/v1/containers/box/fs/no/such/dir/f', body: Buffer.from('x'), status: 404, message: /./ },
  { name: 'a write through a file as a directory', method: 'PUT', path: '/v1/containers/box/fs/etc/hosts/x', body: Buffer.from('x'), status: 400, message: /ENOTDIR|not a directory/i },
  { name: 'a commit with a bad reference', method: 'POST', path: '/v1/containers/box/commit', body: { reference: 'Bad Ref' }, status: 400, message: /reference|name/i },
  { name: 'a read of another tenant-free upload id', method: 'PUT', path: '/v1/containers/box/fs/x?upload=does-not-exist', body: Buffer.alloc(0), status: 404, message: /no such upload/ },
  { name: 'a limit that is not a number', method: 'GET', path: '/v1/containers/box/fs/etc?limit=lots', status: 400, message: /limit must be/ },
  { name: 'a volume removed while in use', method: 'DELETE', path: '/v1/volumes/keep', status: 409, message: /in use/ },
];

describe('hostile input is refused with a clear 4xx and leaves nothing behind', () => {
  it.each(layerCases)('layer: $name', async ({ layer, status, message }) => {
    const before = await snapshot();
    const response = await call('POST', '/v1/images/load', dockerArchive([layer()], ['hostile:1']));
    expect({ status: response.status, message: response.json?.message }).toEqual({ status, message: expect.stringMatching(message) });
    expect(await snapshot()).toEqual(before);
  });

  it.each(archiveCases)('archive: $name', async ({ archive, status, message }) => {
    const before = await snapshot();
    const response = await call('POST', '/v1/images/load', archive());
    expect({ status: response.status, message: response.json?.message }).toEqual({ status, message: expect.stringMatching(message) });
    expect(await snapshot()).toEqual(before);
  });

  it.each(httpCases)('http: $name', async ({ method, path, body, headers, status, message }) => {
    const before = await snapshot();
    const response = await call(method, path, body, headers);
    expect({ status: response.status, message: response.json?.message }).toEqual({ status, message: expect.stringMatching(message) });
    expect(await snapshot()).toEqual(before);
  });

  it('runs at least 80 cases', () => {
    expect(layerCases.length + archiveCases.length + httpCases.length).toBeGreaterThanOrEqual(80);
  });
});

describe('values that used to be accepted and then break', () => {
  it('a file past the inline limit made only of holes is refused for a 303 instead of written out', async () => {
    expect((await call('PUT', '/v1/containers/box/fs/sparse', Buffer.alloc(0))).status).toBe(200);
    expect((await call('PATCH', '/v1/containers/box/fs/sparse', { size: 2 ** 38 })).status).toBe(200);
    const before = await snapshot();
    const response = await call('GET', '/v1/containers/box/fs/sparse');
    expect(response.status).toBe(413);
    expect(response.json.message).toMatch(/holes/);
    expect(await snapshot()).toEqual(before);
    // A small range streams its zeros.
    const part = await fetch(`${url}/v1/containers/box/fs/sparse`, { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.alloc(1000))).toBe(true);
    expect((await call('DELETE', '/v1/containers/box/fs/sparse')).status).toBe(204);
  });

  it('an mtime from a layer that HTTP cannot print leaves Last-Modified out instead of "Invalid Date"', async () => {
    const layer = layerTar(paxEntry({ mtime: '9999999999999' }), rawEntry({ name: 'future' }, 'f'));
    expect((await call('POST', '/v1/images/load', dockerArchive([layer], ['future:1']))).status).toBe(201);
    const response = await fetch(`${url}/v1/images/future:1/fs/future`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('f');
    expect(response.headers.get('last-modified')).toBeNull();
    expect((await call('DELETE', '/v1/images/future:1')).status).toBe(200);
  });

  it('an untag through the image the tag names works', async () => {
    expect((await call('POST', '/v1/images/base:1/tags', { tag: 'base:alias' })).status).toBe(201);
    expect((await call('DELETE', '/v1/images/base:1/tags/base:alias')).status).toBe(204);
    expect((await call('GET', '/v1/images/base:alias')).status).toBe(404);
  });

  it('32 concurrent appends to one file all succeed, each landing once', async () => {
    expect((await call('PUT', '/v1/containers/box/fs/log', Buffer.alloc(0))).status).toBe(200);
    const lines = Array.from({ length: 32 }, (_, i) => `line ${String(i).padStart(2, '0')}\n`);
    const statuses = await Promise.all(lines.map(async (line) => (await call('PATCH', '/v1/containers/box/fs/log?append=true', Buffer.from(line))).status));
    expect(statuses).toEqual(lines.map(() => 200));
    const content = (await call('GET', '/v1/containers/box/fs/log')).text;
    expect(content.split('\n').filter(Boolean).sort()).toEqual(lines.map((l) => l.trim()));
    expect((await call('DELETE', '/v1/containers/box/fs/log')).status).toBe(204);
  });

  it('a partial blob file left by a crash is removed by the sweep once it is old', async () => {
    const { blobKeys } = await import('../../shared/keys.js');
    const folder = join(dir, 'blobs', blobKeys.layers('local'));
    const partial = join(folder, '.strata-partial-crashed');
    await writeFile(partial, Buffer.alloc(1000));
    const { utimes } = await import('node:fs/promises');
    await utimes(partial, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    expect((await filesUnder(join(dir, 'blobs'))).includes(partial)).toBe(true);
    expect((await call('POST', '/v1/system/sweep')).status).toBe(200);
    expect((await filesUnder(join(dir, 'blobs'))).includes(partial)).toBe(false);
  });

  it('a client that disconnects half-way through a load body leaves nothing, and the server goes on', async () => {
    const before = await snapshot();
    const { request } = await import('node:http');
    const { hostname, port } = new URL(url);
    const archive = dockerArchive([layerTar(rawEntry({ name: 'big' }, Buffer.alloc(4 << 20, 5)))], ['gone:1']);
    await new Promise<void>((resolve) => {
      const req = request({ hostname, port, path: '/v1/images/load', method: 'POST', headers: { 'content-length': String(archive.length) } });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.write(archive.subarray(0, 1 << 20), () => setTimeout(() => req.destroy(), 50));
    });
    // The server notices the reset on its side; wait until it answers other requests again.
    for (let i = 0; i < 100 && (await call('GET', '/healthz')).status !== 200; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await snapshot()).toEqual(before);
  });

  it('a blob key in a presigned URL does not name the tenant', async () => {
    const { blobKeys } = await import('../../shared/keys.js');
    expect(blobKeys.layer('acme-corp')).not.toContain('acme-corp');
    expect(blobKeys.tenantPrefix('acme-corp')).not.toBe(blobKeys.tenantPrefix('acme-corq'));
  });
});
