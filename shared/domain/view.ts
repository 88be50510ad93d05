import type { NamespaceId } from '../keys.js';
import type { ItemKey } from '../ports/metadata-store.js';

/**
 * What a path is resolved against: an optional writable namespace on top (a container layer or
 * a volume) over read-only namespaces (layer and chain indexes, top first), plus volume mounts.
 */
export interface View {
  readonly tenant: string;
  readonly top?: NamespaceId;
  readonly lowers: readonly NamespaceId[];
  readonly mounts: readonly Mount[];
  /** The quota item every change of `top` updates, when the container or volume has a quota. */
  readonly quota?: ItemKey;
  /** Whose change feed records the changes of `top` (change-feed.ts `feedOwner`). */
  readonly feed?: string;
  /** A volume's view (its own, or a mount's): the volume's name, which its feed entries carry. */
  readonly volume?: string;
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
