import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DockerDaemon } from '../support/docker-daemon.js';
import { docker, runDocker } from '../support/docker-cli.js';
import { clientOf } from '../support/http-client.js';
import { multiImageArchive } from '../support/images.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The registry's pull side with real clients: skopeo copies an image out of Strata into an OCI
 * layout (checking every digest as it goes), and a real Docker daemon (20.10) pulls by tag and
 * by digest, creates a container and copies a file out of it; the bytes are those Strata's own
 * file API reads, and a commit made in Strata is pulled with its change.
 */
const run = promisify(execFile);
let server: RunningServer;
let daemon: DockerDaemon;
let work: string;
let registry: string;
const { api, put } = clientOf(() => server.url);

beforeAll(async () => {
  [server, daemon] = await Promise.all([startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `registry-${Date.now()}` }), DockerDaemon.start()]);
  registry = server.url.replace('http://', '');
  work = await mkdtemp(join(tmpdir(), 'strata-registry-'));
  const { archive } = await multiImageArchive([
    {
      layers: [
        [
          { path: 'etc/', dir: true },
          { path: 'etc/os-release', content: 'NAME=strata-test\n' },
          { path: 'bin/tool', content: Buffer.from([0, 1, 2, 3, 255]), mode: 0o755 },
        ],
        [{ path: 'app/main.py', content: 'print("hello")\n' }],
      ],
      tags: ['team/app:1'],
    },
  ]);
  expect((await fetch(`${server.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive) })).status).toBe(201);
}, 180_000);
afterAll(async () => {
  await Promise.allSettled([server?.stop(), daemon?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

const registryGet = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}/v2/${path}`, { headers });

describe('the registry, pulled by real clients', () => {
  it('answers the API check, the catalog and the tags list', async () => {
    const check = await registryGet('');
    expect(check.status).toBe(200);
    expect(check.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await (await registryGet('_catalog')).json()).toEqual({ repositories: ['team/app'] });
    expect(await (await registryGet('team/app/tags/list')).json()).toEqual({ name: 'team/app', tags: ['1'] });
  });

  it('skopeo copies an image into an OCI layout whose digests are the image ID and its DiffIDs', async () => {
    const image = (await api('GET', '/v1/images/team%2Fapp:1')).body;
    const layout = join(work, 'oci');
    // Kept as served (skopeo would gzip the layers for an OCI layout otherwise).
    await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-oci-accept-uncompressed-layers', `docker://${registry}/team/app:1`, `oci:${layout}:1`]);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
    const manifestDigest: string = index.manifests[0].digest;
    const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', manifestDigest.slice(7)), 'utf8'));
    expect(manifest.config.digest).toBe(image.id);
    expect(manifest.layers.map((l: { digest: string }) => l.digest)).toEqual(image.layers.map((l: { diffId: string }) => l.diffId));
    for (const layer of manifest.layers) {
      const bytes = await readFile(join(layout, 'blobs/sha256', layer.digest.slice(7)));
      expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(layer.digest);
    }
    // The manifest served is named by the digest of its bytes.
    const served = await registryGet('team/app/manifests/1', { accept: 'application/vnd.oci.image.manifest.v1+json' });
    expect(
      `sha256:${createHash('sha256')
        .update(Buffer.from(await served.arrayBuffer()))
        .digest('hex')}`,
    ).toBe(served.headers.get('docker-content-digest'));
  });

  it('a Docker daemon pulls by tag and by digest, and a container of the image holds the bytes Strata reads', async () => {
    const image = (await api('GET', '/v1/images/team%2Fapp:1')).body;
    await daemon.run(['pull', `${registry}/team/app:1`]);
    const inspected = JSON.parse((await daemon.run(['image', 'inspect', `${registry}/team/app:1`])).toString())[0];
    expect(inspected.Id).toBe(image.id);
    expect(inspected.RootFS.Layers).toEqual(image.layers.map((l: { diffId: string }) => l.diffId));
    const digest = (await registryGet('team/app/manifests/1', { accept: 'application/vnd.docker.distribution.manifest.v2+json' })).headers.get('docker-content-digest');
    await daemon.run(['pull', `${registry}/team/app@${digest}`]);
    await daemon.run(['create', '--name', 'pulled', `${registry}/team/app:1`, 'true']);
    const tar = await daemon.run(['cp', 'pulled:/bin/tool', '-']);
    const fromDocker = await extractOne(tar);
    const fromStrata = Buffer.from(await (await fetch(`${server.url}/v1/images/team%2Fapp:1/fs/bin/tool`)).arrayBuffer());
    expect(fromDocker).toEqual(fromStrata);
  });

  it('an image committed in Strata is pulled with its change', async () => {
    await api('POST', '/v1/containers', { image: 'team/app:1', name: 'work' });
    expect((await put('work', '/app/main.py', 'print("changed in strata")\n')).status).toBe(200);
    expect((await api('POST', '/v1/containers/work/commit', { reference: 'team/app:2' })).status).toBe(201);
    await daemon.run(['pull', `${registry}/team/app:2`]);
    await daemon.run(['create', '--name', 'committed', `${registry}/team/app:2`, 'true']);
    expect((await extractOne(await daemon.run(['cp', 'committed:/app/main.py', '-']))).toString()).toBe('print("changed in strata")\n');
    expect(await (await registryGet('team/app/tags/list')).json()).toEqual({ name: 'team/app', tags: ['1', '2'] });
  });

  it("with a token file, docker login takes a tenant token as the password and pulls that tenant's images", async () => {
    const tokens = join(work, 'tokens.json');
    await writeFile(tokens, JSON.stringify({ tokens: { 'acme-secret': 'acme' } }));
    const guarded = await startServer({ STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `registry-auth-${Date.now()}`, STRATA_TOKENS_FILE: tokens });
    try {
      const { archive } = await multiImageArchive([{ layers: [[{ path: 'secret', content: 'for acme only\n' }]], tags: ['private:1'] }]);
      const loaded = await fetch(`${guarded.url}/v1/images/load`, { method: 'POST', body: new Uint8Array(archive), headers: { authorization: 'Bearer acme-secret' } });
      expect(loaded.status).toBe(201);
      const host = guarded.url.replace('http://', '');
      // Without credentials: 401 with the challenge that tells a client where to get a token.
      const refused = await fetch(`${guarded.url}/v2/private/manifests/1`);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe(`Bearer realm="http://${host}/v2/token",service="strata"`);
      const configDir = await mkdtemp(join(work, 'docker-config-'));
      const login = await runDocker(daemon.host, ['login', host, '--username', 'anyone', '--password-stdin'], { input: Buffer.from('acme-secret'), configDir });
      expect(login.stdout.toString()).toContain('Login Succeeded');
      expect((await runDocker(daemon.host, ['login', host, '--username', 'anyone', '--password-stdin'], { input: Buffer.from('wrong'), configDir })).code).not.toBe(0);
      await docker(daemon.host, ['pull', `${host}/private:1`], { configDir });
      await docker(daemon.host, ['create', '--name', 'private', `${host}/private:1`, 'true']);
      expect((await extractOne(await daemon.run(['cp', 'private:/secret', '-']))).toString()).toBe('for acme only\n');
    } finally {
      await guarded.stop();
    }
  });

  it('answers what it cannot do in the spec error format', async () => {
    const missing = await registryGet('team/app/manifests/9');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ errors: [{ code: 'MANIFEST_UNKNOWN', message: expect.stringContaining('9'), detail: {} }] });
    expect((await (await registryGet(`team/app/blobs/sha256:${'0'.repeat(64)}`)).json()).errors[0].code).toBe('BLOB_UNKNOWN');
    expect((await (await registryGet('Team/App/manifests/1')).json()).errors[0].code).toBe('NAME_INVALID');
    expect((await (await registryGet('team/app/blobs/sha256:nothex')).json()).errors[0].code).toBe('DIGEST_INVALID');
    const push = await fetch(`${server.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    expect(push.status).toBe(405);
    expect((await push.json()).errors[0].code).toBe('UNSUPPORTED');
  });
});

/** The one file of a tar that `docker cp … -` wrote. */
async function extractOne(tar: Buffer): Promise<Buffer> {
  const child = execFile('tar', ['-xO'], { encoding: 'buffer', maxBuffer: 64 << 20 });
  const output = new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`tar exited ${code}`))));
  });
  child.stdin!.end(tar);
  return output;
}
