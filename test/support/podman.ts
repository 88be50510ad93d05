import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a reference tool and answers its stdout; rejects with its stderr when it fails. */
export async function tool(command: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${stderr || message}`);
  }
}

/**
 * Debian's podman (4.3) with its own storage in a temp dir, on the vfs driver, so that a
 * test's images never meet another's and no kernel overlay is needed. Only what needs no
 * container runtime: import, COPY-only builds, save, load and image mount. Needs root.
 */
export class Podman {
  private constructor(private readonly dir: string) {}

  static async start(): Promise<Podman> {
    if (process.getuid?.() !== 0) throw new Error('podman with its own storage root needs root (CI runs as root)');
    return new Podman(await mkdtemp(join(tmpdir(), 'strata-podman-')));
  }

  run(args: readonly string[]): Promise<string> {
    const storage = ['--root', join(this.dir, 'storage'), '--runroot', join(this.dir, 'run'), '--storage-driver', 'vfs'];
    return tool('podman', [...storage, '--cgroup-manager', 'cgroupfs', '--events-backend', 'none', ...args]);
  }

  /** `podman import`: a one-layer image of a root tar. */
  async importTar(tar: string, ref: string): Promise<void> {
    await this.run(['import', tar, ref]);
  }

  /** `podman build` of a context whose Containerfile has only FROM and COPY lines: one layer per COPY, nothing run. */
  async build(context: string, ref: string): Promise<void> {
    await this.run(['build', '-t', ref, context]);
  }

  /** `podman save`; several refs make a multi-image docker-archive. */
  async save(refs: readonly string[], format: 'docker-archive' | 'oci-archive', file: string): Promise<void> {
    await this.run(['save', '--format', format, ...(refs.length > 1 ? ['-m'] : []), '-o', file, ...refs]);
  }

  async load(file: string): Promise<void> {
    await this.run(['load', '-i', file]);
  }

  /** The image ID as Strata and Docker write it: `sha256:` and the config digest. */
  async imageId(ref: string): Promise<string> {
    return `sha256:${(await this.run(['image', 'inspect', '--format', '{{.Id}}', ref])).trim()}`;
  }

  async diffIds(ref: string): Promise<string[]> {
    return JSON.parse(await this.run(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref]));
  }

  /** The image's merged tree as podman applied its layers: a directory (vfs needs no mount). */
  async mount(ref: string): Promise<string> {
    return (await this.run(['image', 'mount', ref])).trim();
  }

  async stop(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
