import type { NamespaceId } from '../keys.js';

/**
 * What a path is resolved against: an optional writable namespace on top (a container layer or
 * a volume) over read-only namespaces (layer and chain indexes, top first), plus volume mounts.
 */
export interface View {
  readonly tenant: string;
  readonly top?: NamespaceId;
  readonly lowers: readonly NamespaceId[];
  readonly mounts: readonly Mount[];
  /** Refuses every change (images, read-only mounts). */
  readonly readOnly: boolean;
}

export interface Mount {
  /** Absolute, normalised path in the container. */
  readonly target: string;
  readonly volume: string;
  readonly view: View;
  readonly readOnly: boolean;
}
