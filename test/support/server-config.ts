import type { Config } from '../../shared/config.js';

/** The configuration the in-process server tests run with: a blob folder at `root`, 4 MiB inline. */
export function serverConfig(root: string, overrides: Partial<Config> = {}): Config {
  return {
    tableName: 't',
    blobs: { kind: 'fs', root },
    region: 'local',
    inlineBodyLimit: 4 << 20,
    presignSeconds: 60,
    maxFileBytes: 1024 ** 4,
    tenantClaim: 'tenant',
    logLevel: 'ERROR',
    ...overrides,
  } as Config;
}
