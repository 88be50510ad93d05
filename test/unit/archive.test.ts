import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../shared/errors.js';
import { archiveMemberName, dockerArchiveMetadata, imagesFromArchive, imagesFromDockerArchive, imagesFromOciLayout } from '../../shared/tar/archive.js';
import { readTar } from '../../shared/tar/tar-reader.js';
import { TarWriter } from '../../shared/tar/tar-writer.js';

// Fixtures are built in code with TarWriter: no skopeo or umoci is needed and no binaries are committed.

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const hex = (digest: string) => digest.slice('sha256:'.length);

/** A tar holding the given files (name -> content), the way a layer or an archive is written. */
async function tarOf(files: Record<string, Buffer | string>): Promise<Buffer> {
  const writer = new TarWriter();
  const parts: Buffer[] = [];
  const done = (async () => {
    for await (const c of writer.stream) parts.push(c as Buffer);
  })();
  for (const [path, content] of Object.entries(files)) {
    const body = Buffer.isBuffer(content) ? content : Buffer.from(content);
    await writer.entry({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1_700_000_000 }, body);
  }
  await writer.finish();
  await done;
  return Buffer.concat(parts);
}

function configFor(diffIds: string[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      ...extra,
    }),
  );
}

async function twoLayerImage() {
  const layers = [await tarOf({ 'etc/os-release': 'ID=strata\n' }), await tarOf({ 'app/run.sh': '#!/bin/sh\necho hi\n' })];
  const diffIds = layers.map(sha256);
  const config = configFor(diffIds);
  return { layers, diffIds, config, configDigest: sha256(config) };
}

/** What a caller does with an uploaded archive: one pass that keeps small members and notes where every member's data is. */
async function scanArchive(archive: Buffer) {
  const members = new Map<string, Buffer>();
  const offsets = new Map<string, { offset: number; size: number }>();
  async function* source() {
    for (let i = 0; i < archive.length; i += 1000) yield archive.subarray(i, i + 1000);
  }
  for await (const entry of readTar(source())) {
    if (entry.header.type !== 'file') continue;
    const name = archiveMemberName(entry.header.path);
    offsets.set(name, { offset: entry.dataOffset, size: entry.header.size });
    if (entry.header.size <= 64 * 1024 && !name.endsWith('layer.tar')) {
      const parts: Buffer[] = [];
      for await (const c of entry.body) parts.push(c);
      members.set(entry.header.path, Buffer.concat(parts));
    }
  }
  return { members, offsets };
}

describe('docker save archives', () => {
  it('round-trips: dockerArchiveMetadata + layers -> tar -> imagesFromArchive gives the same image ID, DiffIDs and tags', async () => {
    const image = await twoLayerImage();
    const metadata = dockerArchiveMetadata([{ ...image, repoTags: ['strata/app:1.0', 'localhost:5000/app:latest'] }]);
    const archiveFiles: Record<string, Buffer> = {};
    for (const [i, layer] of image.layers.entries()) archiveFiles[`${hex(image.diffIds[i]!)}/layer.tar`] = layer;
    for (const [name, bytes] of metadata) archiveFiles[name] = bytes;
    const archive = await tarOf(archiveFiles);

    const { members, offsets } = await scanArchive(archive);
    const [loaded, ...rest] = imagesFromArchive(members);
    expect(rest).toEqual([]);
    expect(loaded!.configDigest).toBe(image.configDigest);
    expect(loaded!.config.equals(image.config)).toBe(true);
    expect(loaded!.diffIds).toEqual(image.diffIds);
    expect(loaded!.repoTags).toEqual(['strata/app:1.0', 'localhost:5000/app:latest']);
    // Each layer can be fetched with one ranged read of the archive and hashes to its DiffID.
    for (const [i, member] of loaded!.layerMembers.entries()) {
      const { offset, size } = offsets.get(member)!;
      expect(sha256(archive.subarray(offset, offset + size))).toBe(loaded!.diffIds[i]);
    }
  });

  it('writes the classic layout docker load expects', async () => {
    const image = await twoLayerImage();
    const metadata = dockerArchiveMetadata([{ ...image, repoTags: ['strata/app:1.0', 'localhost:5000/app'] }]);
    expect([...metadata.keys()]).toEqual([`${hex(image.configDigest)}.json`, 'manifest.json', 'repositories']);
    expect(JSON.parse(metadata.get('manifest.json')!.toString())).toEqual([
      {
        Config: `${hex(image.configDigest)}.json`,
        RepoTags: ['strata/app:1.0', 'localhost:5000/app'],
        Layers: image.diffIds.map((d) => `${hex(d)}/layer.tar`),
      },
    ]);
    expect(JSON.parse(metadata.get('repositories')!.toString())).toEqual({
      'strata/app': { '1.0': hex(image.diffIds[1]!) },
      'localhost:5000/app': { latest: hex(image.diffIds[1]!) },
    });
  });

  it('leaves untagged images untagged (RepoTags null, no repositories file)', async () => {
    const image = await twoLayerImage();
    const metadata = dockerArchiveMetadata([{ ...image, repoTags: [] }]);
    expect(metadata.has('repositories')).toBe(false);
    expect(JSON.parse(metadata.get('manifest.json')!.toString())[0].RepoTags).toBeNull();
    expect(imagesFromDockerArchive(metadata)[0]!.repoTags).toEqual([]);
  });

  it('produces an archive GNU tar can list and extract', async () => {
    const image = await twoLayerImage();
    const files: Record<string, Buffer> = Object.fromEntries(dockerArchiveMetadata([{ ...image, repoTags: ['a:b'] }]));
    for (const [i, layer] of image.layers.entries()) files[`${hex(image.diffIds[i]!)}/layer.tar`] = layer;
    const listing = execFileSync('tar', ['-t'], { input: await tarOf(files) })
      .toString()
      .trim()
      .split('\n');
    expect(listing.sort()).toEqual(Object.keys(files).sort());
  });

  it('accepts member names spelled ./x or /x and the docker 25+ blobs/sha256 layout', async () => {
    const image = await twoLayerImage();
    const members = new Map<string, Buffer>([
      ['./manifest.json', Buffer.from(JSON.stringify([{ Config: `blobs/sha256/${hex(image.configDigest)}`, RepoTags: null, Layers: image.diffIds.map((d) => `./blobs/sha256/${hex(d)}`) }]))],
      [`/blobs/sha256/${hex(image.configDigest)}`, image.config],
    ]);
    const [loaded] = imagesFromArchive(members);
    expect(loaded!.layerMembers).toEqual(image.diffIds.map((d) => `blobs/sha256/${hex(d)}`));
  });

  it('lists several images in manifest order', async () => {
    const a = await twoLayerImage();
    const bConfig = configFor([a.diffIds[0]!], { config: { Cmd: ['other'] } });
    const metadata = dockerArchiveMetadata([
      { ...a, repoTags: ['a:1'] },
      { config: bConfig, configDigest: sha256(bConfig), diffIds: [a.diffIds[0]!], repoTags: ['b:1'] },
    ]);
    const images = imagesFromArchive(metadata);
    expect(images.map((i) => [i.configDigest, i.layerMembers.length, i.repoTags])).toEqual([
      [a.configDigest, 2, ['a:1']],
      [sha256(bConfig), 1, ['b:1']],
    ]);
  });

  describe('rejects broken or hostile archives', () => {
    const manifestWith = (entry: Record<string, unknown>) => Buffer.from(JSON.stringify([entry]));

    it('a config whose bytes do not hash to the digest in its name', async () => {
      const image = await twoLayerImage();
      const members = new Map([
        ['manifest.json', manifestWith({ Config: `${hex(image.configDigest)}.json`, Layers: ['a/layer.tar', 'b/layer.tar'] })],
        [`${hex(image.configDigest)}.json`, Buffer.from(image.config.toString().replace('/bin/sh', '/bin/evil'))],
      ]);
      expect(() => imagesFromArchive(members)).toThrow(/does not match its digest/);
    });

    it('a config whose diff_ids do not match the number of layers', async () => {
      const image = await twoLayerImage();
      const members = new Map([
        ['manifest.json', manifestWith({ Config: 'config.json', Layers: ['a/layer.tar'] })],
        ['config.json', image.config],
      ]);
      expect(() => imagesFromArchive(members)).toThrow(/2 layers in rootfs.diff_ids but the manifest has 1/);
    });

    it.each([
      ['a missing config', { Config: 'nope.json', Layers: [] }, /missing "nope.json"/],
      ['a layer path that climbs out', { Config: 'c.json', Layers: ['../../etc/passwd'] }, /climbs above the root/],
      ['a config path that climbs out', { Config: '../c.json', Layers: [] }, /climbs above the root/],
      ['non-string layers', { Config: 'c.json', Layers: [42] }, /Layers must be an array of strings/],
      ['a layer that names the archive root', { Config: 'c.json', Layers: ['./'] }, /names no file/],
      ['bad RepoTags', { Config: 'c.json', Layers: [], RepoTags: 'latest' }, /RepoTags/],
    ])('%s', (_, entry, message) => {
      const members = new Map([
        ['manifest.json', manifestWith(entry)],
        ['c.json', configFor([])],
      ]);
      expect(() => imagesFromArchive(members)).toThrow(InvalidInputError);
      expect(() => imagesFromArchive(members)).toThrow(message);
    });

    it('malformed manifest.json and configs', () => {
      const cases: [Record<string, string>, RegExp][] = [
        [{ 'manifest.json': '{not json' }, /manifest.json is not valid JSON/],
        [{ 'manifest.json': '{}' }, /must be a JSON array/],
        [{ 'manifest.json': '[]' }, /lists no images/],
        [{ 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: [] }]), 'c.json': '{"rootfs": {}}' }, /no rootfs/],
        [{ 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l'] }]), 'c.json': '{"rootfs": {"type": "layers", "diff_ids": ["md5:x"]}}' }, /sha256 digests/],
      ];
      for (const [files, message] of cases) {
        const members = new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v)]));
        expect(() => imagesFromArchive(members)).toThrow(message);
      }
    });

    it('the same member under two spellings (which one would a loader pick?)', () => {
      const members = new Map([
        ['manifest.json', Buffer.from('[]')],
        ['./manifest.json', Buffer.from('[]')],
      ]);
      expect(() => imagesFromArchive(members)).toThrow(/more than once/);
    });

    it('an archive that is neither format', () => {
      expect(() => imagesFromArchive(new Map([['hello.txt', Buffer.from('hi')]]))).toThrow(/neither manifest.json/);
    });
  });

  it('dockerArchiveMetadata refuses inconsistent input instead of writing an archive that will not load', async () => {
    const image = await twoLayerImage();
    expect(() => dockerArchiveMetadata([{ ...image, configDigest: sha256(Buffer.from('x')), repoTags: [] }])).toThrow(/hash to/);
    expect(() => dockerArchiveMetadata([{ ...image, diffIds: [...image.diffIds].reverse(), repoTags: [] }])).toThrow(/do not match/);
  });
});

// ---- OCI image layouts ------------------------------------------------------------------------

const OCI = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

class Layout {
  readonly members = new Map<string, Buffer>();
  constructor() {
    this.members.set('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  }

  blob(bytes: Buffer, mediaType: string, extra: Record<string, unknown> = {}) {
    const digest = sha256(bytes);
    this.members.set(`blobs/sha256/${hex(digest)}`, bytes);
    return { mediaType, digest, size: bytes.length, ...extra };
  }

  async image(files: Record<string, string>, arch = 'amd64') {
    const tar = await tarOf(files);
    const layer = this.blob(gzipSync(tar), OCI.layerGzip);
    const config = configFor([sha256(tar)], { architecture: arch });
    const configDesc = this.blob(config, OCI.config);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config: configDesc, layers: [layer] }));
    return { desc: this.blob(manifest, OCI.manifest, { platform: { os: 'linux', architecture: arch } }), config, layer, diffId: sha256(tar) };
  }

  index(manifests: unknown[]) {
    this.members.set('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests })));
  }
}

describe('OCI image layouts', () => {
  it('reads index.json -> manifest -> config and layers, with tags from annotations', async () => {
    const layout = new Layout();
    const img = await layout.image({ 'bin/sh': 'sh' });
    layout.index([
      { ...img.desc, annotations: { 'io.containerd.image.name': 'docker.io/library/app:1', 'org.opencontainers.image.ref.name': '1' } },
      { ...img.desc, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
    ]);
    const images = imagesFromOciLayout(layout.members);
    expect(images).toHaveLength(1);
    expect(images[0]).toEqual({
      configDigest: sha256(img.config),
      config: img.config,
      layerMembers: [`blobs/sha256/${hex(img.layer.digest)}`],
      diffIds: [img.diffId],
      repoTags: ['docker.io/library/app:1', 'latest'],
    });
  });

  it('follows a nested index and picks linux/amd64, skipping attestations', async () => {
    const layout = new Layout();
    const arm = await layout.image({ f: 'arm' }, 'arm64');
    const amd = await layout.image({ f: 'amd' }, 'amd64');
    const attestation = layout.blob(Buffer.from('{}'), OCI.manifest, {
      platform: { os: 'unknown', architecture: 'unknown' },
      annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
    });
    const inner = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests: [attestation, arm.desc, amd.desc] })), OCI.index);
    layout.index([{ ...inner, annotations: { 'io.containerd.image.name': 'multi:latest' } }]);
    const [image] = imagesFromArchive(layout.members);
    expect(image!.configDigest).toBe(sha256(amd.config));
    expect(image!.repoTags).toEqual(['multi:latest']);
  });

  it('picks the first platform whose blobs are present when amd64 was not saved', async () => {
    const layout = new Layout();
    const arm = await layout.image({ f: 'arm' }, 'arm64');
    const missingAmd = { mediaType: OCI.manifest, digest: sha256(Buffer.from('not saved')), size: 9, platform: { os: 'linux', architecture: 'amd64' } };
    const inner = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [missingAmd, arm.desc] })), OCI.index);
    layout.index([inner]);
    expect(imagesFromArchive(layout.members)[0]!.configDigest).toBe(sha256(arm.config));
  });

  it('prefers manifest.json when an archive has both (docker 25+ writes both)', async () => {
    const layout = new Layout();
    const img = await layout.image({ f: 'x' });
    layout.index([{ ...img.desc, annotations: { 'io.containerd.image.name': 'from-index:1' } }]);
    const members = new Map(layout.members);
    const manifestJson = [{ Config: `blobs/sha256/${hex(sha256(img.config))}`, RepoTags: ['from-manifest-json:1'], Layers: [`blobs/sha256/${hex(img.layer.digest)}`] }];
    members.set('manifest.json', Buffer.from(JSON.stringify(manifestJson)));
    const [image] = imagesFromArchive(members);
    expect(image!.repoTags).toEqual(['from-manifest-json:1']);
    expect(image!.configDigest).toBe(sha256(img.config));
  });

  describe('rejects broken or hostile layouts', () => {
    it('a blob whose bytes do not match its digest', async () => {
      const layout = new Layout();
      const img = await layout.image({ f: 'x' });
      layout.index([img.desc]);
      layout.members.set(`blobs/sha256/${hex(img.desc.digest)}`, Buffer.from(JSON.stringify({ schemaVersion: 2 }).padEnd(img.desc.size)));
      expect(() => imagesFromArchive(layout.members)).toThrow(/does not match its digest/);
    });

    it('a descriptor size that disagrees with the blob', async () => {
      const layout = new Layout();
      const img = await layout.image({ f: 'x' });
      layout.index([{ ...img.desc, size: img.desc.size + 1 }]);
      expect(() => imagesFromArchive(layout.members)).toThrow(/descriptor says/);
    });

    it('a config that is not a container image config (an artifact)', async () => {
      const layout = new Layout();
      const config = layout.blob(Buffer.from('{}'), 'application/vnd.cncf.helm.config.v1+json');
      const manifest = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config, layers: [] })), OCI.manifest);
      layout.index([manifest]);
      expect(() => imagesFromArchive(layout.members)).toThrow(/not a container image/);
    });

    it('a layer of an unknown media type (e.g. encrypted)', async () => {
      const layout = new Layout();
      const tar = await tarOf({ f: 'x' });
      const layer = layout.blob(tar, 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted');
      const config = layout.blob(configFor([sha256(tar)]), OCI.config);
      const manifest = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config, layers: [layer] })), OCI.manifest);
      layout.index([manifest]);
      expect(() => imagesFromArchive(layout.members)).toThrow(/unsupported layer media type/);
    });

    it('diff_ids that do not match the layer count', async () => {
      const layout = new Layout();
      const tar = await tarOf({ f: 'x' });
      const layer = layout.blob(tar, OCI.layerGzip);
      const config = layout.blob(configFor([]), OCI.config);
      const manifest = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.manifest, config, layers: [layer] })), OCI.manifest);
      layout.index([manifest]);
      expect(() => imagesFromArchive(layout.members)).toThrow(/0 layers in rootfs.diff_ids but the manifest has 1/);
    });

    it('indexes nested without end', () => {
      const layout = new Layout();
      let desc = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests: [] })), OCI.index);
      for (let i = 0; i < 6; i++) {
        desc = layout.blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI.index, manifests: [desc] })), OCI.index);
      }
      layout.index([desc]);
      expect(() => imagesFromArchive(layout.members)).toThrow(/nested too deeply/);
    });

    it('malformed digests, missing blobs and media types that disagree', async () => {
      const layout = new Layout();
      const img = await layout.image({ f: 'x' });
      const cases: [unknown, RegExp][] = [
        [{ ...img.desc, digest: 'sha256:../../etc/passwd' }, /malformed digest/],
        [{ ...img.desc, digest: sha256(Buffer.from('absent')) }, /missing "blobs\/sha256\//],
        [{ ...img.desc, mediaType: OCI.index }, /descriptor says .* but the blob says/],
        [{ ...img.desc, size: -1 }, /size must be a non-negative integer/],
      ];
      for (const [desc, message] of cases) {
        layout.index([desc]);
        expect(() => imagesFromArchive(layout.members)).toThrow(message);
      }
      layout.members.set('index.json', Buffer.from('{"manifests": []}'));
      expect(() => imagesFromArchive(layout.members)).toThrow(/lists no images/);
    });
  });
});
