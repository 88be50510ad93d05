import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FsOp, OpResult, TreeEntry } from './fs-ops.js';

const SCRIPT = fileURLToPath(new URL('./kernel-oracle.py', import.meta.url));

interface KernelEntry {
  path: string;
  type: TreeEntry['type'] | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size?: number;
  content?: string;
  target?: string;
  ino: number;
  nlink: number;
}

/** The root helper: one process and mount namespace for a whole test file. */
class OracleProcess {
  private readonly pending: ((line: string) => void)[] = [];
  private readonly lines: Interface;
  private stderr = '';

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
    child.stderr.on('data', (chunk) => (this.stderr += chunk));
  }

  call(request: object): Promise<{ ok: unknown } | { errno: string }> {
    const answer = new Promise<{ ok: unknown } | { errno: string }>((resolve, reject) => {
      const onExit = () => reject(new Error(`kernel oracle exited: ${this.stderr}`));
      this.child.once('exit', onExit);
      this.pending.push((line) => {
        this.child.off('exit', onExit);
        resolve(JSON.parse(line));
      });
    });
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    return answer;
  }

  async stop(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await new Promise((resolve) => this.child.once('exit', resolve));
    this.lines.close();
  }
}

/**
 * File operations applied by the kernel, chrooted, through a root helper in its own mount
 * namespace: on a real overlay mount (redirect_dir=on, index=on) fresh for each sequence, or on a
 * directory as it is. Needs root.
 */
export class KernelOracle {
  private static helper?: OracleProcess;

  private constructor(private readonly helper: OracleProcess) {}

  /** A fresh overlay of `lowers`, top first, as overlayfs's lowerdir option takes them. */
  static overlay(lowers: readonly string[]): Promise<KernelOracle> {
    return KernelOracle.start({ lowers: lowers.join(':') });
  }

  /** A directory as it is: a Docker container's layer, an unpacked archive. */
  static directory(root: string): Promise<KernelOracle> {
    return KernelOracle.start({ root });
  }

  /**
   * Ends this sequence and goes on in a fork of it: the overlay's upper becomes its top lower
   * under a fresh upper, as Strata seals a container's layer when it forks.
   */
  async fork(): Promise<KernelOracle> {
    await this.close();
    return KernelOracle.start({ fork: true });
  }

  private static async start(what: { lowers: string } | { root: string } | { fork: true }): Promise<KernelOracle> {
    if (process.getuid?.() !== 0) throw new Error('the kernel oracle needs root (CI runs as root)');
    KernelOracle.helper ??= new OracleProcess(spawn('unshare', ['-m', 'python3', SCRIPT]));
    const ready = await KernelOracle.helper.call({ op: 'start', ...what });
    if (!('ok' in ready)) throw new Error(`kernel oracle failed to start: ${ready.errno}`);
    return new KernelOracle(KernelOracle.helper);
  }

  /** Ends the helper; call once after the last sequence. */
  static async shutdown(): Promise<void> {
    await KernelOracle.helper?.stop();
    KernelOracle.helper = undefined;
  }

  async apply(op: FsOp): Promise<OpResult> {
    const answer = await this.call({ ...op, ...('data' in op ? { data: Buffer.from(op.data, 'latin1').toString('base64') } : {}) });
    if ('errno' in answer) return { errno: answer.errno };
    if (op.op === 'read') return { ok: Buffer.from(answer.ok as string, 'base64').toString('latin1') };
    if (op.op === 'stat') return { ok: statResult(answer.ok as KernelEntry) };
    if (op.op === 'utimes') return { ok: Number(BigInt(answer.ok as string) / 1_000_000n) };
    return { ok: true };
  }

  /** The whole tree, parents first, in name order. */
  async tree(): Promise<TreeEntry[]> {
    const answer = await this.call({ op: 'tree' });
    if (!('ok' in answer)) throw new Error(`tree walk failed: ${answer.errno}`);
    return (answer.ok as KernelEntry[]).map((e) => ({
      path: e.path,
      type: e.type === 'other' ? 'file' : e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtimeMs: Number(BigInt(e.mtimeNs) / 1_000_000n),
      ...(e.type === 'file' ? { size: e.size, content: Buffer.from(e.content ?? '', 'base64').toString('latin1') } : {}),
      ...(e.type === 'symlink' ? { target: e.target } : {}),
      ...(e.type === 'file' ? { inode: String(e.ino), nlink: e.nlink } : {}),
    }));
  }

  /** Ends this sequence; the mount is replaced by the next one's. */
  async close(): Promise<void> {
    await this.call({ op: 'end' });
  }

  private call(request: object): Promise<{ ok: unknown } | { errno: string }> {
    return this.helper.call(request);
  }
}

function statResult(e: KernelEntry) {
  return { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.type === 'file' ? e.size : undefined, nlink: e.type === 'file' ? e.nlink : undefined };
}
