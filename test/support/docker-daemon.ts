import { spawn, type ChildProcess } from 'node:child_process';
import { docker } from './docker-cli.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real Docker daemon (Debian's docker.io, 20.10) on the vfs storage driver, with its own data
 * root and socket, for tests that compare Strata with what Docker does. No container is ever
 * started: load, save, create, diff, export and commit work without one. Needs root.
 */
export class DockerDaemon {
  private constructor(
    private readonly dir: string,
    private readonly daemon: ChildProcess,
    private readonly log: () => string,
  ) {}

  static async start(): Promise<DockerDaemon> {
    if (process.getuid?.() !== 0) throw new Error('the Docker daemon needs root (CI runs as root)');
    const dir = await mkdtemp(join(tmpdir(), 'strata-dockerd-'));
    const args = ['--storage-driver=vfs', '--iptables=false', '--ip6tables=false', '--bridge=none'];
    args.push('--data-root', join(dir, 'root'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '-H', `unix://${join(dir, 'sock')}`);
    let log = '';
    const daemon = spawn('dockerd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon.stderr?.on('data', (chunk) => (log = (log + chunk).slice(-4000)));
    const docker = new DockerDaemon(dir, daemon, () => log);
    for (let attempt = 0; ; attempt++) {
      if (daemon.exitCode !== null) throw new Error(`dockerd exited: ${log}`);
      try {
        await docker.run(['version']);
        return docker;
      } catch (error) {
        if (attempt > 150) {
          await docker.stop();
          throw new Error(`dockerd did not answer in 30 s: ${(error as Error).message}\n${log}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** Where the CLI reaches this daemon (DOCKER_HOST). */
  get host(): string {
    return `unix://${join(this.dir, 'sock')}`;
  }

  /** Runs the docker CLI against this daemon; rejects with its stderr when it fails. */
  run(args: readonly string[], input?: Buffer): Promise<Buffer> {
    return docker(this.host, args, { input });
  }

  /** The directory that holds a container's own layer (vfs keeps it as a full copy of the image). */
  async layerDir(containerId: string): Promise<string> {
    const mountId = (await readFile(join(this.dir, 'root/image/vfs/layerdb/mounts', containerId, 'mount-id'), 'utf8')).trim();
    return join(this.dir, 'root/vfs/dir', mountId);
  }

  async stop(): Promise<void> {
    if (this.daemon.exitCode === null) {
      const exited = new Promise((resolve) => this.daemon.once('exit', resolve));
      this.daemon.kill('SIGTERM');
      const timer = setTimeout(() => this.daemon.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true }).catch((error) => console.warn(`dockerd data left in ${this.dir}: ${error}\n${this.log()}`));
  }
}
