import { createHash, randomUUID } from 'node:crypto';
import { InvalidInputError } from './errors.js';
import type { ItemKey } from './ports/metadata-store.js';

/**
 * The only place that knows the key layout. Every metadata key and every blob key starts with
 * the tenant, so no code path can address another tenant's data without naming that tenant.
 */
const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function checkTenant(tenant: string): string {
  if (!TENANT_PATTERN.test(tenant)) throw new InvalidInputError('tenant id must be 1-64 characters of [A-Za-z0-9_-]');
  return tenant;
}

/** A namespace is one tree of path nodes: a container layer, a volume, a layer index or a merged chain index. */
export type NamespaceId = `c:${string}` | `v:${string}` | `l:${string}` | `k:${string}`;

/** Layer (`l:`) and chain (`k:`) indexes are written once and stored as directory packs. */
export function isPacked(ns: NamespaceId): boolean {
  return ns.startsWith('l:') || ns.startsWith('k:');
}

/** DynamoDB caps a partition key at 2048 bytes; deep parents are hashed to stay well under it. */
function partitionPath(dir: string): string {
  return Buffer.byteLength(dir) > 1024 ? 'h:' + createHash('sha256').update(dir).digest('hex') : dir;
}

/** `acme` for `acme#<name>`, else undefined: how a stream record names its tenant. */
function tenantOfPartition(pk: string, name: string): string | undefined {
  const suffix = `#${name}`;
  const tenant = pk.endsWith(suffix) ? pk.slice(0, -suffix.length) : '';
  return TENANT_PATTERN.test(tenant) ? tenant : undefined;
}

export const keys = {
  /** The children of `dir` in a namespace form one sorted partition: listing is one Query, and a busy tree spreads over many partitions. */
  nodePartition: (tenant: string, ns: NamespaceId, dir: string) => `${tenant}#n#${ns}#${partitionPath(dir)}`,
  node(tenant: string, ns: NamespaceId, path: string): ItemKey {
    if (path === '/') return { pk: `${tenant}#n#${ns}#`, sk: '.' };
    const i = path.lastIndexOf('/');
    const dir = i === 0 ? '/' : path.slice(0, i);
    return { pk: keys.nodePartition(tenant, ns, dir), sk: path.slice(i + 1) };
  },
  /**
   * Layer and chain indexes never change, so each directory's children are packed into one item
   * (a 5,000-file layer is ~100 items, not 5,000); a directory too big for one item is `split`
   * and keeps one item per child in its node partition.
   */
  pack(tenant: string, ns: NamespaceId, dir: string): ItemKey {
    return { pk: `${tenant}#p#${ns}#${partitionPath(dir)}`, sk: 'p' };
  },
  /** The inode items of a container's or volume's hard-linked files, one partition per namespace. */
  inode: (tenant: string, ns: NamespaceId, id: string): ItemKey => ({ pk: keys.inodes(tenant, ns), sk: id }),
  inodes: (tenant: string, ns: NamespaceId) => `${tenant}#i#${ns}`,
  image: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#images`, sk: id }),
  images: (tenant: string) => `${tenant}#images`,
  tag: (tenant: string, ref: string): ItemKey => ({ pk: `${tenant}#tags`, sk: ref }),
  tags: (tenant: string) => `${tenant}#tags`,
  layer: (tenant: string, diffId: string): ItemKey => ({ pk: `${tenant}#layers`, sk: diffId }),
  layers: (tenant: string) => `${tenant}#layers`,
  chain: (tenant: string, chainId: string): ItemKey => ({ pk: `${tenant}#chains`, sk: chainId }),
  chains: (tenant: string) => `${tenant}#chains`,
  container: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#containers`, sk: id }),
  containers: (tenant: string) => `${tenant}#containers`,
  containerName: (tenant: string, name: string): ItemKey => ({ pk: `${tenant}#container-names`, sk: name }),
  volume: (tenant: string, name: string): ItemKey => ({ pk: `${tenant}#volumes`, sk: name }),
  volumes: (tenant: string) => `${tenant}#volumes`,
  /**
   * Size counters live apart from the listed records, and in shards, so a busy container's writes
   * spread over several items rather than all updating one.
   */
  stats: (tenant: string, ns: NamespaceId, shard: number): ItemKey => ({ pk: `${tenant}#stats#${ns}#${shard}`, sk: 'stats' }),
  /** A container's or volume's quota and what it uses (`owner`: `c:<container id>` or `v:<volume uid>`). */
  quota: (tenant: string, owner: string): ItemKey => ({ pk: `${tenant}#quotas`, sk: owner }),
  /**
   * A container's or volume's change feed (`owner`: `c:<container id>` or `v:<volume uid>`), one
   * item per change in sequence order: reading from a cursor is one Query.
   */
  feed: (tenant: string, owner: string) => `${tenant}#feed#${owner}`,
  feedEntry: (tenant: string, owner: string, seq: number): ItemKey => ({ pk: keys.feed(tenant, owner), sk: feedSortKey(seq) }),
  /** The tenant and owner of a feed partition `pk`, or undefined for any other partition. */
  feedOf: (pk: string): { tenant: string; owner: string } | undefined => {
    const match = /^([A-Za-z0-9_-]{1,64})#feed#([cv]:[0-9a-f]+)$/.exec(pk);
    return match ? { tenant: match[1], owner: match[2] } : undefined;
  },
  /** A container layer a fork sealed: how many containers' stacks hold it. */
  sealedLayer: (tenant: string, ns: NamespaceId): ItemKey => ({ pk: keys.sealedLayers(tenant), sk: ns }),
  sealedLayers: (tenant: string) => `${tenant}#sealed`,
  /** What makes a container or volume with an expiry go (`owner`: `c:<id>` or `v:<uid>`; expiry.ts). */
  expiry: (tenant: string, owner: string): ItemKey => ({ pk: keys.expiries(tenant), sk: owner }),
  expiries: (tenant: string) => `${tenant}#expiries`,
  /** The tenant whose expiry items `pk` holds. */
  expiriesTenant: (pk: string): string | undefined => tenantOfPartition(pk, 'expiries'),
  /** A merge layer being written, before the merge's transaction puts it in a stack (merges.ts). */
  pendingMerge: (tenant: string, ns: NamespaceId): ItemKey => ({ pk: keys.pendingMerges(tenant), sk: ns }),
  pendingMerges: (tenant: string) => `${tenant}#merges`,
  garbage: (tenant: string, what: string): ItemKey => ({ pk: `${tenant}#garbage`, sk: what }),
  garbageList: (tenant: string) => `${tenant}#garbage`,
  upload: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#uploads`, sk: id }),
  /**
   * Work that outlives a request (a load, save, export or commit), with its progress. A tenant's
   * jobs spread over 16 partitions by the first hex digit of their id: the stream runner works
   * on different partitions side by side, so one tenant's jobs do not wait for each other.
   */
  job: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#jobs#${id[0]}`, sk: id }),
  /** Where jobs were kept before they spread: read and swept still, so none is lost. */
  legacyJob: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#jobs`, sk: id }),
  /** Every partition a tenant's jobs may be in (the legacy one included). */
  jobPartitions: (tenant: string): string[] => [`${tenant}#jobs`, ...[...'0123456789abcdef'].map((digit) => `${tenant}#jobs#${digit}`)],
  /** The tenant whose jobs `pk` holds. */
  jobsTenant: (pk: string): string | undefined => {
    const match = /^(.+)#jobs(#[0-9a-f])?$/.exec(pk);
    return match ? tenantOfPartition(`${match[1]}#jobs`, 'jobs') : undefined;
  },
  /** The copy a large read of these bytes is answered from (read-copies.ts). */
  readCopy: (tenant: string, id: string): ItemKey => ({ pk: `${tenant}#read-copies`, sk: id }),
  /** What a load or commit under an Idempotency-Key recorded. */
  idempotency: (tenant: string, key: string): ItemKey => ({ pk: `${tenant}#idempotency`, sk: key }),
  /** An archive load too big for one transaction, while it records (see load-journal.ts). */
  loadJournal: (tenant: string, id: string): ItemKey => ({ pk: keys.loadJournals(tenant), sk: id }),
  loadJournals: (tenant: string) => `${tenant}#loads`,
  /** A tenant's events, in time order: the feed is one Query, and the table's stream sees each once. */
  event: (tenant: string, id: string): ItemKey => ({ pk: keys.events(tenant), sk: id }),
  events: (tenant: string) => `${tenant}#events`,
  /** The tenant whose event partition `pk` is, or undefined for any other partition. */
  eventTenant: (pk: string): string | undefined => tenantOfPartition(pk, 'events'),
  /** The tenant whose garbage list `pk` is (removed containers' and volumes' namespaces). */
  garbageTenant: (pk: string): string | undefined => tenantOfPartition(pk, 'garbage'),
  /** The tenant whose image records `pk` holds. */
  imagesTenant: (pk: string): string | undefined => tenantOfPartition(pk, 'images'),
  /** Which tenant a blob folder (`t/<hash>/`) belongs to, for storage notifications that name only a key. */
  tenantFolder: (folder: string): ItemKey => ({ pk: 'tenant-folders', sk: folder }),
  tenants: (): string => 'tenants',
  tenant: (tenant: string): ItemKey => ({ pk: 'tenants', sk: tenant }),
};

/** Sequence numbers as sort keys: zero-padded, so byte order is numeric order. */
export function feedSortKey(seq: number): string {
  return String(seq).padStart(15, '0');
}

/** Blob keys carry their creation time, so a sweep can leave young objects of in-flight writes alone. */
function fresh(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${randomUUID()}`;
}

/**
 * A tenant's blob folder is named by a hash of its id: blob keys travel in presigned URLs, which
 * must not tell their holder whose data it is. 128 bits keep tenants apart.
 */
function tenantFolder(tenant: string): string {
  return `t/${createHash('sha256').update(`strata-tenant:${tenant}`).digest('hex').slice(0, 32)}`;
}

export const blobKeys = {
  tenantPrefix: (tenant: string) => `${tenantFolder(tenant)}/`,
  layer: (tenant: string) => `${tenantFolder(tenant)}/layers/${fresh()}.tar`,
  layers: (tenant: string) => `${tenantFolder(tenant)}/layers/`,
  config: (tenant: string) => `${tenantFolder(tenant)}/configs/${fresh()}.json`,
  configs: (tenant: string) => `${tenantFolder(tenant)}/configs/`,
  /** Objects written by a container or a volume live under the namespace's own prefix. */
  namespacePrefix: (tenant: string, ns: NamespaceId) => `${tenantFolder(tenant)}/ns/${ns.replace(':', '-')}/`,
  namespaceObject: (tenant: string, ns: NamespaceId) => `${blobKeys.namespacePrefix(tenant, ns)}${fresh()}`,
  namespacesRoot: (tenant: string) => `${tenantFolder(tenant)}/ns/`,
  uploads: (tenant: string) => `${tenantFolder(tenant)}/uploads/`,
  exportArchives: (tenant: string) => `${tenantFolder(tenant)}/exports/`,
  /** An upload's bytes: the suffix lets a storage notification select uploads alone. */
  upload: (tenant: string, id: string) => `${tenantFolder(tenant)}/uploads/${Date.now().toString(36).padStart(9, '0')}-${id}${UPLOAD_SUFFIX}`,
  exportArchive: (tenant: string) => `${tenantFolder(tenant)}/exports/${fresh()}.tar`,
  /** What a save or export job made, kept for its download (jobs.ts). */
  jobResults: (tenant: string) => `${tenantFolder(tenant)}/results/`,
  jobResult: (tenant: string) => `${tenantFolder(tenant)}/results/${fresh()}.tar`,
  readCopies: (tenant: string) => `${tenantFolder(tenant)}/reads/`,
  readCopy: (tenant: string) => `${tenantFolder(tenant)}/reads/${fresh()}`,
};

export const UPLOAD_SUFFIX = '.upload';

/** The blob folder of a tenant (`t/<hash>`), as `blobFolderOf` reads it back from a key. */
export function blobFolder(tenant: string): string {
  return tenantFolder(tenant);
}

/** The folder and upload id an upload's blob key names, or undefined for any other key. */
export function parseUploadKey(key: string): { folder: string; id: string } | undefined {
  const match = /^(t\/[0-9a-f]{32})\/uploads\/[0-9a-z]{9}-([0-9a-f-]{36})\.upload$/.exec(key);
  return match ? { folder: match[1], id: match[2] } : undefined;
}

/** When a blob key made by `fresh()` was created (ms since epoch), or undefined for other keys. */
export function blobCreatedAt(key: string): number | undefined {
  const match = /\/([0-9a-z]{9})-[0-9a-f-]{36}(\.[a-z]+)?$/.exec(key);
  return match ? parseInt(match[1], 36) : undefined;
}
