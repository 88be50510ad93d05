import type { NamespaceId } from '../keys.js';

/** Metadata records as stored. The engine reads and writes them; nothing else knows their shape. */

export interface LayerRecord {
  readonly diffId: string;
  readonly blobKey: string;
  /** Bytes of the uncompressed tar. */
  readonly tarSize: number;
  /** Bytes of regular files. */
  readonly contentBytes: number;
  readonly created: number;
  /** The last time an image load or commit used it; the sweep spares recently used layers. */
  readonly lastUsed: number;
  /** Set once its own index (namespace l:<diffId>) is written, for layers used on top of a chain. */
  readonly indexed?: boolean;
}

export interface ImageRecord {
  /** sha256 of the config JSON. */
  readonly id: string;
  readonly configKey: string;
  readonly configSize: number;
  readonly diffIds: readonly string[];
  /** contentBytes of each layer, bottom first. */
  readonly layerSizes: readonly number[];
  readonly size: number;
  /** Namespaces a lookup reads, top first: own layer indexes of committed layers, then one merged chain index. */
  readonly stack: readonly NamespaceId[];
  readonly created: number;
  /** The image a commit was made from. */
  readonly parent?: string;
  /** Containers using the image; kept by the create and remove transactions. */
  readonly containers: number;
}

export interface MountRecord {
  readonly target: string;
  readonly volume: string;
  readonly volumeUid: string;
  readonly readOnly: boolean;
  /** The volume has a quota (quotaKeys.volume). */
  readonly quota?: true;
}

export interface ContainerRecord {
  /** 64 hex characters, as Docker's. */
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly imageRef?: string;
  /**
   * Namespaces a lookup reads below the top, top first: the layers forks sealed (`c:`, newest
   * first), then the image's stack.
   */
  readonly stack: readonly NamespaceId[];
  /** The writable namespace; `c:<id>` when absent (containers made before forks). A fork moves it. */
  readonly top?: NamespaceId;
  /** The container this one was forked from, and the sealed layer both started from. */
  readonly forkedFrom?: { readonly container: string; readonly layer: NamespaceId; readonly at: number };
  /** Set when the container was made with a quota (its item: quotaKeys.container). */
  readonly quota?: true;
  readonly mounts: readonly MountRecord[];
  readonly created: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Process settings given at create (`docker create -e A=1 img cmd`); a commit applies them, as dockerd's does. */
  readonly process?: ProcessSettings;
  /** When it expires, ms since the epoch (expiry.ts); absent: never. */
  readonly expires?: number;
  readonly ttlSeconds?: number;
  /** Each write pushes `expires` to `ttlSeconds` from then. */
  readonly extendOnWrite?: true;
}

/** What a container would run with, beyond its image's config. Strata runs nothing; it keeps them for inspect and commit. */
export interface ProcessSettings {
  readonly Cmd?: readonly string[];
  readonly Entrypoint?: readonly string[];
  readonly Env?: readonly string[];
  readonly WorkingDir?: string;
  readonly User?: string;
}

export interface VolumeRecord {
  readonly name: string;
  /** Names can be reused after removal; objects and nodes live under the uid. */
  readonly uid: string;
  readonly anonymous: boolean;
  readonly created: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Containers mounting it. */
  readonly refs: number;
  /** Set when the volume was made with a quota (its item: quotaKeys.volume). */
  readonly quota?: true;
  /** When it expires, ms since the epoch (expiry.ts): while a container uses it, when the last one goes. */
  readonly expires?: number;
  readonly ttlSeconds?: number;
  readonly extendOnWrite?: true;
}

export interface GarbageRecord {
  readonly namespace: NamespaceId;
  readonly blobPrefix: string;
  readonly since: number;
  /** The change feed that goes with it (a removed container's or volume's). */
  readonly feed?: string;
  /** A merge layer's: the layers it held, let go of once it is reclaimed. */
  readonly holds?: readonly NamespaceId[];
}
