import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway single-node Ceph cluster (ceph-mon + ceph-osd on memstore + radosgw beast) for tests
 * and benchmarks, brought up as /work/shared/design/local-services.md describes. Each call gets
 * its own scratch folder and ports, so parallel runs on one machine do not collide.
 */

export interface RunningRgw {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  stop(): Promise<void>;
}

const startTimeoutMs = 90_000;
const accessKeyId = 'STRATATESTACCESSKEY0';
const secretAccessKey = 'strataTestSecretKeyForLocalRgwOnly000000';

const run = promisify(execFile);

/** `memstoreBytes` sizes the in-memory object store (1 GiB by default; the benchmark needs more). */
export async function startRgw(options: { memstoreBytes?: number } = {}): Promise<RunningRgw> {
  const external = process.env.STRATA_TEST_S3_ENDPOINT;
  if (external) {
    return {
      endpoint: external,
      accessKeyId: process.env.STRATA_TEST_S3_ACCESS_KEY ?? accessKeyId,
      secretAccessKey: process.env.STRATA_TEST_S3_SECRET_KEY ?? secretAccessKey,
      stop: async () => {},
    };
  }

  // A single-node cluster occasionally fails to form on a busy machine: one fresh retry.
  let cluster: CephCluster | undefined;
  for (let attempt = 1; !cluster; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'strata-rgw-'));
    const candidate = new CephCluster(dir, options.memstoreBytes ?? 1024 ** 3);
    try {
      await withDeadline(candidate.start(), startTimeoutMs, () => candidate.describeFailure('did not come up in 90 s'));
      cluster = candidate;
    } catch (error) {
      await candidate.stop();
      if (attempt >= 2) throw error;
    }
  }
  return {
    endpoint: cluster.endpoint,
    accessKeyId,
    secretAccessKey,
    stop: () => cluster.stop(),
  };
}

class CephCluster {
  private readonly conf: string;
  private readonly daemons: { name: string; logs: string[]; child: ChildProcess }[] = [];
  /** What start() is doing now, and the log files that explain a failure there. */
  private stage: { name: string; logs: string[] } = { name: 'setup', logs: [] };
  private stopped = false;
  // Kills setup commands still running when stop() is called mid-start (after the deadline).
  private readonly abandon = new AbortController();
  private rgwPort = 0;
  // Detached daemons would outlive a crashed test run; kill them when this process exits.
  private readonly killOnExit = () => this.killDaemons();

  constructor(
    private readonly dir: string,
    private readonly memstoreBytes: number,
  ) {
    this.conf = join(dir, 'ceph.conf');
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.rgwPort}`;
  }

  async start(): Promise<void> {
    process.once('exit', this.killOnExit);
    const [monPort, rgwPort] = await freePorts(2);
    this.rgwPort = rgwPort;
    const fsid = randomUUID();
    await writeFile(this.conf, cephConf(this.dir, fsid, monPort, rgwPort, this.memstoreBytes));

    this.stage = { name: 'ceph-mon', logs: ['mon.a.log', 'ceph-mon.out'] };
    await this.ceph('monmaptool', '--create', '--fsid', fsid, '--addv', 'a', `v1:127.0.0.1:${monPort}`, join(this.dir, 'monmap'));
    await this.ceph('ceph-mon', '--mkfs', '-i', 'a', '--monmap', join(this.dir, 'monmap'));
    this.spawnDaemon('ceph-mon', ['-f', '-i', 'a']);

    this.stage = { name: 'ceph-osd', logs: ['osd.0.log', 'ceph-osd.out'] };
    const osdUuid = randomUUID();
    // The first ceph command also waits for the monitor to form a quorum; right after the
    // monitor starts it can still refuse commands ("problem getting command descriptions").
    await this.cephWhenReady('ceph', '--connect-timeout', '30', 'osd', 'new', osdUuid, '0');
    // The OSD places itself in the CRUSH map at boot with a mon command that, with auth none,
    // can race its first monmap and be refused ("wrong fsid", fsid 0): place it here instead.
    await this.ceph('ceph', 'osd', 'crush', 'add', 'osd.0', '1', 'root=default');
    await mkdir(join(this.dir, 'osd.0')); // memstore writes its fsid there and does not create it
    await this.ceph('ceph-osd', '-i', '0', '--mkfs', '--osd-uuid', osdUuid);
    this.spawnDaemon('ceph-osd', ['-f', '-i', '0']);

    this.stage = { name: 'radosgw', logs: ['client.rgw.log', 'radosgw.out'] };
    this.spawnDaemon('radosgw', ['-f', '-n', 'client.rgw']);
    await this.waitForHttp();

    this.stage = { name: 'radosgw-admin', logs: ['client.admin.log'] };
    await this.ceph('radosgw-admin', 'user', 'create', '--uid=strata-test', '--display-name=Strata tests', `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abandon.abort();
    process.removeListener('exit', this.killOnExit);
    await Promise.all(this.daemons.map(({ child }) => killGroup(child)));
    await rm(this.dir, { recursive: true, force: true });
  }

  async describeFailure(reason: string): Promise<Error> {
    const tails = await Promise.all(this.stage.logs.map((name) => logTail(join(this.dir, name))));
    const shown = this.stage.logs.flatMap((name, i) => (tails[i] ? [`--- tail of ${name} ---\n${tails[i]}`] : []));
    return new Error(`Ceph RGW ${reason} (stage ${this.stage.name}, scratch ${this.dir}).\n${shown.join('\n') || '(no logs)'}`);
  }

  private async ceph(command: string, ...args: string[]): Promise<void> {
    try {
      await run(command, ['-c', this.conf, ...args], { cwd: this.dir, timeout: startTimeoutMs, signal: this.abandon.signal });
    } catch (error) {
      const { stderr = '', stdout = '', message } = error as { stderr?: string; stdout?: string; message: string };
      const output = lastLines(stderr || stdout || message, 15);
      // A daemon that died is the likelier story than the command that could not reach it.
      await this.throwIfDaemonDied();
      throw await this.describeFailure(`setup step "${command} ${args.join(' ')}" failed:\n${output}\n`);
    }
  }

  /** Runs a ceph command, retrying for up to 30 s while the monitor is still coming up. */
  private async cephWhenReady(command: string, ...args: string[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.ceph(command, ...args);
      } catch (error) {
        const transient = /problem getting command descriptions|EPERM|ETIMEDOUT|error connecting to the cluster/.test((error as Error).message);
        if (!transient || attempt >= 60 || this.stopped) throw error;
        await sleep(500);
      }
    }
  }

  private spawnDaemon(command: string, args: string[]): void {
    if (this.stopped) throw new Error('Ceph RGW start-up was abandoned');
    // Daemon stdout/stderr go to a file: a pipe nobody reads would eventually block them.
    const log = join(this.dir, `${command}.out`);
    const output = openSync(log, 'a');
    const child = spawn(command, ['-c', this.conf, ...args], {
      cwd: this.dir,
      detached: true, // own process group, so stop() takes any helpers down too
      stdio: ['ignore', output, output],
    });
    closeSync(output);
    // A missing binary arrives as an 'error' event; unhandled, it would crash the test runner.
    child.on('error', (error) => void writeFile(log, `${error.message}\n`, { flag: 'a' }).catch(() => {}));
    child.unref();
    this.daemons.push({ name: command, logs: this.stage.logs, child });
  }

  private async waitForHttp(): Promise<void> {
    while (!this.stopped) {
      await this.throwIfDaemonDied();
      try {
        await fetch(this.endpoint, { signal: AbortSignal.timeout(2_000) });
        return;
      } catch {
        await sleep(250);
      }
    }
  }

  private async throwIfDaemonDied(): Promise<void> {
    const dead = this.daemons.find(({ child }) => hasExited(child));
    if (!dead) return;
    this.stage = { name: dead.name, logs: dead.logs };
    throw await this.describeFailure(`${dead.name} exited during start-up`);
  }

  private killDaemons(): void {
    for (const { child } of this.daemons) signalGroup(child, 'SIGKILL');
  }
}

function cephConf(dir: string, fsid: string, monPort: number, rgwPort: number, memstoreBytes: number): string {
  return `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = ${dir}
log file = ${dir}/$name.log
admin socket = ${dir}/$name.asok
pid file = ${dir}/$name.pid
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false

[mon.a]
mon data = ${dir}/mon.a
# Each pool radosgw creates waits for a new osdmap; the default 1 s batching makes start-up take ~11 s, not ~2 s.
paxos propose interval = 0.05
paxos min wait = 0.01

[osd.0]
osd data = ${dir}/osd.0
osd objectstore = memstore
memstore device bytes = ${memstoreBytes}
osd max object name len = 256
osd max object namespace len = 64

[client.rgw]
# tcp_nodelay: without it every small request on a reused connection stalls 40 ms (Nagle and delayed ACK).
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
`;
}

/** Ports the OS says are free right now: bind port 0, read the port, release it. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  // All are held open together so the same port is never handed out twice.
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** SIGKILL at once: the cluster lives in memory and a scratch folder that is deleted next. */
async function killGroup(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return;
  child.ref(); // keep the event loop alive until the exit is seen
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalGroup(child, 'SIGKILL');
  await exited;
}

function hasExited(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** The last lines of a log file, or '' if it is missing or empty. */
async function logTail(path: string): Promise<string> {
  if (!existsSync(path)) return '';
  return lastLines(await readFile(path, 'utf8'), 40);
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Promise<Error>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  work.catch(() => {}); // once the deadline wins, a later failure of `work` is nobody's business
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => void onTimeout().then(reject, reject), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
