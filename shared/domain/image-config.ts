/**
 * An OCI / Docker image config, as far as Strata reads or changes it. Everything else in the
 * JSON is kept as it was, because the image ID is the digest of these exact bytes.
 */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  author?: string;
  config?: RuntimeConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
  [other: string]: unknown;
}

/** The process settings an image carries for whoever runs it; Strata stores them, never runs them. */
export interface RuntimeConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  [other: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/**
 * What a commit may change in the runtime config (`docker commit --change`): Env, Labels,
 * ExposedPorts and Volumes are merged by key, the others replace what the image had.
 */
export type RuntimeConfigChanges = Partial<Pick<RuntimeConfig, 'Env' | 'Cmd' | 'Entrypoint' | 'WorkingDir' | 'User' | 'Labels' | 'ExposedPorts' | 'Volumes'>>;

export function applyRuntimeChanges(config: RuntimeConfig = {}, changes: RuntimeConfigChanges): RuntimeConfig {
  const out: RuntimeConfig = { ...config };
  if (changes.Env) {
    const env = new Map((config.Env ?? []).map((entry) => [entry.split('=')[0], entry]));
    for (const entry of changes.Env) env.set(entry.split('=')[0], entry);
    out.Env = [...env.values()];
  }
  if (changes.Labels) out.Labels = { ...(config.Labels ?? {}), ...changes.Labels };
  if (changes.ExposedPorts) out.ExposedPorts = { ...(config.ExposedPorts ?? {}), ...changes.ExposedPorts };
  if (changes.Volumes) out.Volumes = { ...(config.Volumes ?? {}), ...changes.Volumes };
  for (const key of ['Cmd', 'Entrypoint', 'WorkingDir', 'User'] as const) if (changes[key] !== undefined) (out as Record<string, unknown>)[key] = changes[key];
  return out;
}

/**
 * A container's config as dockerd merges it at create: the create's settings replace the image's,
 * except Env, where the create's entries come first and the image's others follow.
 */
export function withProcessSettings(
  config: RuntimeConfig = {},
  process: { readonly Cmd?: readonly string[]; readonly Entrypoint?: readonly string[]; readonly Env?: readonly string[]; readonly WorkingDir?: string; readonly User?: string } = {},
): RuntimeConfig {
  const out: RuntimeConfig = { ...config };
  if (process.Env?.length) {
    const own = new Set(process.Env.map((entry) => entry.split('=')[0]));
    out.Env = [...process.Env, ...(config.Env ?? []).filter((entry) => !own.has(entry.split('=')[0]))];
  }
  for (const key of ['Cmd', 'Entrypoint', 'WorkingDir', 'User'] as const) if (process[key] !== undefined) (out as Record<string, unknown>)[key] = process[key];
  return out;
}
