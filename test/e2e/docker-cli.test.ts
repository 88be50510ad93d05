import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { docker, runDocker } from '../support/docker-cli.js';
import { DockerDaemon } from '../support/docker-daemon.js';
import { startServer, type RunningServer } from '../support/local-server.js';

/**
 * The real docker CLI (28, API 1.47; and Debian's 20.10 where present) against the local
 * server, as a user points it there with DOCKER_HOST and a token in config.json. The images
 * come from a real Docker daemon (docker import, a COPY-only build, a commit with whiteouts),
 * and where both can answer, the same command runs against the daemon and against Strata.
 */

let server: RunningServer;
let daemon: DockerDaemon;
let work: string;
let strataHost: string;
const configs: Record<string, string> = {};
const TOKENS = { acme: 'token-of-acme', globex: 'token-of-globex' };

/** The docker CLI against Strata as tenant acme (or another). */
const strata = (args: string[], options: { input?: Buffer; as?: keyof typeof TOKENS } = {}) => docker(strataHost, args, { input: options.input, configDir: configs[options.as ?? 'acme'] });
const strataRun = (args: string[]) => runDocker(strataHost, args, { configDir: configs.acme });
const text = async (output: Promise<Buffer>) => (await output).toString('utf8').trim();

/** Init-layer paths Docker adds to every container (and so to its export and diff). */
const DOCKER_INIT = /^(\.dockerenv|dev|proc|sys|etc\/(hostname|hosts|mtab|resolv\.conf))(\/|$)/;

function tarListing(tar: Buffer): string[] {
  // GNU tar lists names only; sorting makes the two writers' orders comparable.
  const listed = execFileSync('tar', ['-t'], { input: tar }).toString('utf8');
  return listed
    .split('\n')
    .filter(Boolean)
    .map((n) => n.replace(/\/$/, '').replace(/^\.\//, ''))
    .filter((n) => n && n !== '.' && !DOCKER_INIT.test(n))
    .sort();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strata-docker-cli-'));
  const tokens = join(work, 'tokens.json');
  await writeFile(tokens, JSON.stringify({ tokens: { [TOKENS.acme]: 'acme', [TOKENS.globex]: 'globex' } }));
  for (const [tenant, token] of Object.entries(TOKENS)) {
    configs[tenant] = join(work, `config-${tenant}`);
    await mkdir(configs[tenant]);
    // How a user gives the CLI a token for a remote daemon: HttpHeaders in config.json.
    await writeFile(join(configs[tenant], 'config.json'), JSON.stringify({ HttpHeaders: { Authorization: `Bearer ${token}` } }));
  }
  [server, daemon] = await Promise.all([startServer({ STRATA_TOKENS_FILE: tokens, STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'), STRATA_TABLE: `docker-cli-${Date.now()}` }), DockerDaemon.start()]);
  strataHost = server.url.replace(/^http/, 'tcp');

  // base:1 from a root tree (symlinks, a hard link, unicode), base:2 adds a file by COPY, and
  // base:3 deletes a directory and a file (whiteouts) and replaces one, by a commit.
  const root = join(work, 'root');
  for (const dir of ['etc', 'bin', 'd/sub', 'ü']) await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'etc/hosts'), 'hosts\n');
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await writeFile(join(root, 'bin/sh'), 'shell');
  await writeFile(join(root, 'd/sub/x'), 'x');
  await writeFile(join(root, 'ü/ß'), 'eszett');
  await symlink('/etc/hosts', join(root, 'hl'));
  execFileSync('ln', [join(root, 'bin/sh'), join(root, 'bin/sh2')]);
  execFileSync('tar', ['-C', root, '-cf', join(work, 'root.tar'), '.']);
  await daemon.run(['import', join(work, 'root.tar'), 'base:1']);
  const context = join(work, 'context');
  await mkdir(context);
  await writeFile(join(context, 'Dockerfile'), 'FROM base:1\nCOPY motd /etc/motd\n');
  await writeFile(join(context, 'motd'), 'welcome\n');
  execFileSync('docker', ['build', '-q', '-t', 'base:2', context], { env: { ...process.env, DOCKER_HOST: daemon.host, DOCKER_BUILDKIT: '0' } });
  const maker = (await daemon.run(['create', 'base:2', 'sh'])).toString().trim();
  const upper = await daemon.layerDir(maker);
  await rm(join(upper, 'd'), { recursive: true });
  await rm(join(upper, 'etc/passwd'));
  await writeFile(join(upper, 'etc/hosts'), 'replaced\n');
  await daemon.run(['commit', maker, 'base:3']);
  await daemon.run(['rm', maker]);
  await daemon.run(['save', '-o', join(work, 'images.tar'), 'base:1', 'base:2', 'base:3']);
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([server?.stop(), daemon?.stop()]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('docker CLI against Strata', () => {
  it('docker version and docker info reach the server with the token from config.json', async () => {
    const version = await text(strata(['version', '--format', '{{.Server.APIVersion}} {{.Server.Os}}']));
    expect(version).toBe('1.47 linux');
    expect(await text(strata(['info', '--format', '{{.Images}} {{.Driver}}']))).toBe('0 strata');
    // Without the header the server answers 401, which the CLI prints.
    const anonymous = await runDocker(strataHost, ['image', 'ls'], { configDir: join(work, 'no-such-config') });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/missing or invalid credentials/);
  });

  it('docker load -i takes the archive Docker 20.10 saved, with the same image IDs and layers', async () => {
    const loaded = await text(strata(['load', '-i', join(work, 'images.tar')]));
    expect(loaded.split('\n').sort()).toEqual(['Loaded image: base:1', 'Loaded image: base:2', 'Loaded image: base:3']);
    const format = ['--format', '{{.Repository}}:{{.Tag}} {{.ID}}'];
    const listed = async (run: Promise<Buffer>) => (await text(run)).split('\n').sort();
    expect(await listed(strata(['image', 'ls', ...format]))).toEqual(await listed(daemon.run(['image', 'ls', ...format])));
    const inspect = ['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}} {{.Os}}', 'base:3'];
    expect(await text(strata(inspect))).toBe(await text(daemon.run(inspect)));
  });

  it('docker load < archive (stdin), docker image history, tag and filters', async () => {
    expect(await text(strata(['load'], { input: await readFile(join(work, 'images.tar')) }))).toMatch(/Loaded image: base:1/);
    const history = ['image', 'history', '--no-trunc', '--format', '{{.ID}} {{.Size}}', 'base:2'];
    expect((await text(strata(history))).split('\n').map((l) => l.split(' ')[0])).toEqual((await text(daemon.run(history))).split('\n').map((l) => l.split(' ')[0]));
    await strata(['tag', 'base:1', 'registry.example:5000/team/base:v1']);
    expect(await text(strata(['image', 'ls', '--filter', 'reference=registry.example:5000/team/*', '--format', '{{.Repository}}:{{.Tag}}']))).toBe('registry.example:5000/team/base:v1');
    await strata(['rmi', 'registry.example:5000/team/base:v1']);
  });

  it('docker create with named, read-only and anonymous volumes; docker ps -a, -s and filters; docker inspect', async () => {
    await strata(['create', '--name', 'c1', '-v', 'keep:/data', '-v', 'ro:/ro:ro', '-v', '/anon', '--label', 'team=a', 'base:2']);
    await strata(['create', '--name', 'c2', '--mount', 'type=volume,source=keep2,target=/k', 'base:3']);
    expect(await text(strata(['ps', '--format', '{{.Names}}']))).toBe('');
    expect((await text(strata(['ps', '-a', '--format', '{{.Names}} {{.Image}} {{.Status}}']))).split('\n').sort()).toEqual(['c1 base:2 Created', 'c2 base:3 Created']);
    const imageSize = await text(daemon.run(['image', 'ls', '--format', '{{.Size}}', 'base:2']));
    expect(await text(strata(['image', 'ls', '--format', '{{.Size}}', 'base:2']))).toBe(imageSize);
    expect(await text(strata(['ps', '-a', '-s', '--filter', 'name=c1', '--format', '{{.Size}}']))).toBe(`0B (virtual ${imageSize})`);
    expect(await text(strata(['ps', '-a', '--filter', 'ancestor=base:3', '--format', '{{.Names}}']))).toBe('c2');
    expect(await text(strata(['ps', '-a', '--filter', 'volume=keep', '--filter', 'label=team=a', '-q']))).toMatch(/^[0-9a-f]{12}$/);
    const mounts = JSON.parse(await text(strata(['inspect', '--format', '{{json .Mounts}}', 'c1']))) as { Name: string; Destination: string; RW: boolean }[];
    expect(mounts.map((m) => `${m.Destination} ${m.RW}`).sort()).toEqual(['/anon true', '/data true', '/ro false']);
    expect(mounts.find((m) => m.Destination === '/anon')!.Name).toMatch(/^[0-9a-f]{64}$/);
    expect(await text(strata(['inspect', '--size', '--format', '{{.SizeRw}} {{.SizeRootFs}} {{.State.Status}}', 'c1']))).toMatch(/^0 \d+ created$/);
  });

  it('docker cp in and out, docker diff and docker export agree with the daemon on the same image', async () => {
    // An imported image has no CMD, and dockerd wants one to create a container.
    await daemon.run(['create', '--name', 'c1', 'base:2', 'sh']);
    const file = join(work, 'note.txt');
    await writeFile(file, 'twelve bytes');
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'sub'), { recursive: true });
    await writeFile(join(tree, 'sub/a'), 'a');
    await symlink('a', join(tree, 'sub/la'));
    for (const run of [strata, (args: string[]) => daemon.run(args)]) {
      await run(['cp', file, 'c1:/etc/note.txt']);
      await run(['cp', tree, 'c1:/tree']);
    }
    const diff = ['diff', 'c1'];
    expect((await text(strata(diff))).split('\n').sort()).toEqual(
      (await text(daemon.run(diff)))
        .split('\n')
        .filter((l) => !DOCKER_INIT.test(l.slice(3)))
        .sort(),
    );
    const out = await strata(['cp', 'c1:/etc/note.txt', '-']);
    expect(tarListing(out)).toEqual(['note.txt']);
    const back = join(work, 'back');
    await strata(['cp', 'c1:/tree', back]);
    expect(await readFile(join(back, 'sub/a'), 'utf8')).toBe('a');
    expect(existsSync(join(back, 'sub/la'))).toBe(true);
    // A symlink is copied as itself; its target resolves inside the container.
    expect(tarListing(await strata(['cp', 'c1:/hl', '-']))).toEqual(['hl']);
    await strata(['export', '-o', join(work, 'strata.tar'), 'c1']);
    await daemon.run(['export', '-o', join(work, 'daemon.tar'), 'c1']);
    expect(tarListing(await readFile(join(work, 'strata.tar')))).toEqual(tarListing(await readFile(join(work, 'daemon.tar'))));
    // SizeRw counts the bytes of files written: 12 + 1 (a) + 1 (the symlink's target).
    expect(await text(strata(['ps', '-a', '-s', '--filter', 'name=^/c1$', '--format', '{{.Size}}']))).toMatch(/^1[34]B \(virtual/);
  });

  it("docker cp's error cases answer as the daemon does", async () => {
    const missing = await strataRun(['cp', 'c1:/dne', join(work, 'x')]);
    expect(missing.stderr).toMatch(/Could not find the file \/dne in container c1/);
    const ontoFile = await strataRun(['cp', join(work, 'note.txt'), 'c1:/etc/hosts/x']);
    expect(ontoFile.code).toBe(1);
    expect(ontoFile.stderr).toMatch(/not a directory/);
    const dirOntoFile = await strataRun(['cp', join(work, 'tree'), 'c1:/etc/hosts']);
    expect(dirOntoFile.stderr).toMatch(/cannot copy directory/);
  });

  it('docker commit with --change makes an image a new container sees', async () => {
    const id = await text(strata(['commit', '--change', 'ENV MODE=prod', '--change', 'CMD ["/bin/sh"]', '--change', 'LABEL tier=web', '-m', 'note added', 'c1', 'committed:1']));
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const config = JSON.parse(await text(strata(['image', 'inspect', '--format', '{{json .Config}}', 'committed:1'])));
    expect(config).toMatchObject({ Cmd: ['/bin/sh'], Labels: { tier: 'web' } });
    expect(config.Env).toContain('MODE=prod');
    await strata(['create', '--name', 'c3', 'committed:1']);
    expect(tarListing(await strata(['cp', 'c3:/etc/note.txt', '-']))).toEqual(['note.txt']);
    // The committed image loads into the real daemon with the same ID.
    const saved = await strata(['save', 'committed:1']);
    await daemon.run(['load'], saved);
    expect(await text(daemon.run(['image', 'inspect', '--format', '{{.Id}}', 'committed:1']))).toBe(id);
  });

  it('docker rename, docker rmi (409 in use, -f), docker rm -v, container prune and image prune', async () => {
    // A commit without a name makes a dangling image, which image prune takes.
    const dangling = await text(strata(['commit', 'c1']));
    await strata(['rename', 'c3', 'c3b']);
    expect(await text(strata(['ps', '-a', '--filter', 'name=c3', '--format', '{{.Names}}']))).toBe('c3b');
    const inUse = await strataRun(['rmi', 'committed:1']);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/used by 1 container/);
    await strata(['rm', '-v', 'c1']);
    expect(await text(strata(['volume', 'ls', '-q']))).not.toMatch(/^[0-9a-f]{64}$/m);
    expect(await text(strata(['volume', 'ls', '-q']))).toMatch(/^keep$/m);
    const pruned = await text(strata(['container', 'prune', '-f']));
    expect(pruned).toMatch(/Deleted Containers:/);
    expect(await text(strata(['ps', '-a', '-q']))).toBe('');
    expect(await text(strata(['image', 'ls', '--filter', 'dangling=true', '-q', '--no-trunc']))).toBe(dangling);
    expect(await text(strata(['image', 'prune', '-f']))).toContain(`deleted: ${dangling}`);
    await strata(['rmi', '-f', 'base:1']);
    expect(await text(strata(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']))).not.toMatch(/base:1/);
  });

  it('docker volume create, ls with filters, inspect, rm and prune (named volumes stay without --all)', async () => {
    await strata(['volume', 'create', '--label', 'env=test', 'v1']);
    expect(await text(strata(['volume', 'ls', '--filter', 'label=env=test', '-q']))).toBe('v1');
    expect(await text(strata(['volume', 'inspect', '--format', '{{.Driver}} {{.Labels.env}}', 'v1']))).toBe('local test');
    await strata(['create', '--name', 'user', '-v', 'v1:/data', '-v', '/scratch', 'base:2']);
    const busy = await strataRun(['volume', 'rm', 'v1']);
    expect(busy.stderr).toMatch(/in use/);
    await strata(['rm', 'user']);
    expect(await text(strata(['volume', 'prune', '-f']))).toMatch(/[0-9a-f]{64}/);
    expect(await text(strata(['volume', 'ls', '-q']))).toMatch(/^v1$/m);
    await strata(['volume', 'prune', '-a', '-f']);
    expect(await text(strata(['volume', 'ls', '-q']))).toBe('');
    const missing = await strataRun(['volume', 'inspect', 'v1']);
    expect(missing.stderr).toMatch(/no such volume/);
  });

  it('docker system df and df -v count images, containers and volumes', async () => {
    await strata(['create', '--name', 'sized', 'base:2']);
    await writeFile(join(work, 'ten'), '0123456789');
    await strata(['cp', join(work, 'ten'), 'sized:/ten']);
    const rows = (await text(strata(['system', 'df', '--format', '{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}']))).split('\n');
    expect(rows).toContain('Containers 1 0 10B');
    expect(rows.find((r) => r.startsWith('Images'))).toMatch(/^Images 3 1 /);
    expect(await text(strata(['system', 'df', '-v']))).toMatch(/sized/);
  });

  it('what needs a process, or a feature Strata lacks, is a clear error, not a hang', async () => {
    const start = await strataRun(['start', 'sized']);
    expect(start.code).toBe(1);
    expect(start.stderr).toMatch(/does not run them/);
    const network = await strataRun(['network', 'ls']);
    expect(network.code).toBe(1);
    expect(network.stderr).toMatch(/not supported/);
    const bind = await strataRun(['create', '-v', '/host:/data', 'base:2']);
    expect(bind.stderr).toMatch(/bind mounts of host paths are not supported/);
  });

  it('docker create keeps -e, -w, -u, --label and the command, shows them in inspect and commits them, as the daemon does', async () => {
    // One -e only: the CLI may send several in any order (seen in CI), and each side keeps what it got.
    const both = async (run: (args: string[]) => Promise<Buffer>) => {
      await run(['create', '--name', 'proc', '-e', 'MODE=test', '-w', '/srv', '-u', '1000', '--label', 'team=a', 'base:2', 'sh', '-c', 'echo hi']);
      const format = '{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{.Config.WorkingDir}} {{.Config.User}} {{json .Config.Labels}}';
      const inspected = await text(run(['inspect', '--format', format, 'proc']));
      await run(['commit', 'proc', 'proc:1']);
      const committed = await text(run(['image', 'inspect', '--format', format, 'proc:1']));
      await run(['rm', 'proc']);
      await run(['rmi', 'proc:1']);
      return { inspected, committed };
    };
    const [fromDaemon, fromStrata] = await Promise.all([both((args) => daemon.run(args)), both((args) => strata(args))]);
    expect(fromStrata).toEqual(fromDaemon);
    expect(fromStrata.committed).toContain('"MODE=test"');
  });

  it('docker events reports the same actions as the daemon for the same commands, and follows new ones', async () => {
    const sequence = async (run: (args: string[]) => Promise<Buffer>) => {
      // Events are per second for --since: start on a fresh second, apart from earlier tests.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const since = Math.floor(Date.now() / 1000);
      for (const args of [
        ['load', '-i', join(work, 'base2.tar')],
        ['tag', 'base:2', 'evt:1'],
        ['create', '--name', 'evc', 'evt:1', 'sh'],
        ['rename', 'evc', 'evc2'],
        ['commit', 'evc2', 'evt:2'],
        ['rm', 'evc2'],
        ['rmi', 'evt:2'],
        ['volume', 'create', 'evv'],
        ['volume', 'rm', 'evv'],
        ['rmi', 'evt:1'],
      ])
        await run(args);
      // Strata shows an event 2 s after it happened; --until ends the stream then.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const until = Math.ceil(Date.now() / 1000);
      const format = '{{.Type}} {{.Action}} {{index .Actor.Attributes "name"}}';
      const filters = ['--filter', 'type=image', '--filter', 'type=container', '--filter', 'type=volume'];
      return (await text(run(['events', '--since', String(since), '--until', String(until), ...filters, '--format', format]))).split('\n');
    };
    await daemon.run(['save', '-o', join(work, 'base2.tar'), 'base:2']);
    const [fromDaemon, fromStrata] = await Promise.all([sequence((args) => daemon.run(args)), sequence((args) => strata(args))]);
    // Commits make different image IDs on the two (their configs differ): name IDs by first appearance.
    const byAppearance = (lines: string[]) => {
      const seen = new Map<string, string>();
      return lines.map((line) => line.replace(/sha256:[0-9a-f]{64}/g, (id) => seen.get(id) ?? (seen.set(id, `image#${seen.size + 1}`), `image#${seen.size}`)));
    };
    expect(byAppearance(fromStrata)).toEqual(byAppearance(fromDaemon));
    // The loaded image is the same image on both.
    expect(fromStrata[0]).toBe(fromDaemon[0]);
    expect(fromStrata.map((line) => line.split(' ').slice(0, 2).join(' '))).toEqual([
      'image load',
      'image tag',
      'container create',
      'container rename',
      'image tag',
      'container commit',
      'container destroy',
      'image untag',
      'image delete',
      'volume create',
      'volume destroy',
      'image untag',
    ]);

    // Without --until the stream stays open and shows what happens next.
    const follower = runDocker(strataHost, ['events', '--format', '{{.Type}} {{.Action}} {{.Actor.ID}}'], { configDir: configs.acme, timeoutMs: 8000 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await strata(['volume', 'create', 'followed']);
    const followed = await follower;
    expect(followed.stdout.toString()).toContain('volume create followed');
    await strata(['volume', 'rm', 'followed']);
  });

  it("one tenant never sees another's containers, images or volumes", async () => {
    expect(await text(strata(['ps', '-a', '-q'], { as: 'globex' }))).toBe('');
    expect(await text(strata(['image', 'ls', '-q'], { as: 'globex' }))).toBe('');
    const other = await runDocker(strataHost, ['inspect', 'sized'], { configDir: configs.globex });
    expect(other.code).toBe(1);
  });

  it("Debian's docker CLI 20.10 negotiates an older API version and works too", async () => {
    if (!existsSync('/usr/bin/docker')) return expect.fail('/usr/bin/docker (Debian docker.io) is not installed; .ci/run installs it');
    const old = (args: string[]) => docker(strataHost, args, { configDir: configs.acme, binary: '/usr/bin/docker' });
    expect(await text(old(['ps', '-a', '--format', '{{.Names}}']))).toBe('sized');
    expect(await text(old(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']))).toMatch(/base:2/);
  });
});
