import { spawn } from 'node:child_process';

export interface DockerResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/**
 * Runs a docker CLI binary (the CLI 28 on PATH unless `binary` says otherwise) against a daemon
 * address, with its own config folder, and answers whatever it printed and its exit code.
 */
export function runDocker(host: string, args: readonly string[], options: { input?: Buffer; configDir?: string; binary?: string; timeoutMs?: number } = {}): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host };
    if (options.configDir) env.DOCKER_CONFIG = options.configDir;
    // timeoutMs ends a command that streams until interrupted (docker events) with SIGINT, as Ctrl-C would.
    const child = spawn(options.binary ?? 'docker', args, { env, ...(options.timeoutMs ? { timeout: options.timeoutMs, killSignal: 'SIGINT' as const } : {}) });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input);
  });
}

/** Like runDocker, but rejects with the CLI's stderr unless it exits 0; answers stdout. */
export async function docker(host: string, args: readonly string[], options: { input?: Buffer; configDir?: string; binary?: string } = {}): Promise<Buffer> {
  const result = await runDocker(host, args, options);
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${result.code}: ${result.stderr}`);
  return result.stdout;
}
