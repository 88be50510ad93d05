import { InvalidInputError } from '../errors.js';
import { keys } from '../keys.js';
import type { ItemKey, WriteOp } from '../ports/metadata-store.js';

/**
 * Containers and volumes that end by themselves: an expiry time given at creation or later
 * (`expiresAt`, or `ttlSeconds` from now), optionally pushed back by each write. An expired
 * container is gone from listings and lookups at once; its storage goes when it is removed,
 * which an expiry item per tree drives: DynamoDB's TTL deletes the item (deployed), the stream
 * hands the deletion to the reclaimer, which removes the tree, and the sweep removes what is
 * due in any case (the local server runs it every minute).
 */
export interface ExpirySettings {
  /** Milliseconds since the epoch. */
  readonly expires: number;
  /** With `extendOnWrite`: how far each write pushes the expiry. */
  readonly ttlSeconds?: number;
  readonly extendOnWrite?: true;
}

/** What a request may give: an instant, or a time to live; and whether writes push it back. */
export interface ExpiryRequest {
  readonly expiresAt?: number | null;
  readonly ttlSeconds?: number | null;
  readonly extendOnWrite?: boolean;
}

/** The longest time to live: ten years. */
export const MAX_TTL_SECONDS = 10 * 365 * 86_400;

/** A write pushes the expiry back only once a tenth of the time to live has passed since the last push, so busy trees do not update their record on every write. */
const EXTEND_AFTER = 0.1;

/**
 * The settings a request asks for, over `current` ones: `ttlSeconds` sets the expiry that far
 * from now, `expiresAt` to an instant, null (either) clears it, `extendOnWrite` alone turns the
 * pushing back on or off; nothing keeps what there is. Throws InvalidInputError for a time in the
 * past, both forms at once, or `extendOnWrite` without a time to live.
 */
export function expiryFrom(request: ExpiryRequest, now: number, current?: ExpirySettings): ExpirySettings | undefined {
  const { expiresAt, ttlSeconds, extendOnWrite } = request;
  if (expiresAt != null && ttlSeconds != null) throw new InvalidInputError('give expiresAt or ttlSeconds, not both');
  if (expiresAt === null || ttlSeconds === null) {
    if (extendOnWrite) throw new InvalidInputError('extendOnWrite needs ttlSeconds');
    return undefined;
  }
  if (ttlSeconds !== undefined) {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) throw new InvalidInputError(`ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`);
    const extend = extendOnWrite ?? current?.extendOnWrite ?? false;
    return { expires: now + ttlSeconds * 1000, ttlSeconds, ...(extend ? { extendOnWrite: true as const } : {}) };
  }
  if (expiresAt !== undefined) {
    if (!Number.isSafeInteger(expiresAt) || expiresAt <= now) throw new InvalidInputError('expiresAt must be a time in the future, in milliseconds since the epoch');
    if (extendOnWrite) throw new InvalidInputError('extendOnWrite needs ttlSeconds: how far each write pushes the expiry');
    return { expires: expiresAt };
  }
  if (extendOnWrite === undefined) return current;
  if (!current?.ttlSeconds) throw new InvalidInputError('extendOnWrite needs ttlSeconds: how far each write pushes the expiry');
  const { extendOnWrite: _e, ...rest } = current;
  return extendOnWrite ? { ...rest, extendOnWrite: true } : rest;
}

export function isExpired(settings: { readonly expires?: number } | undefined, now: number): boolean {
  return settings?.expires !== undefined && settings.expires <= now;
}

/** Whose expiry item: a container by ID, a volume by uid. */
export const expiryOwner = {
  container: (id: string) => `c:${id}`,
  volume: (uid: string) => `v:${uid}`,
};

/** The item that makes DynamoDB's TTL (attribute `expiresAt`, in seconds) hand an expired tree to the reclaimer. */
export function expiryItemOp(tenant: string, owner: string, expires: number, name: string): WriteOp {
  return { op: 'put', item: { ...keys.expiry(tenant, owner), attrs: { expiry: owner.slice(0, 1), name, at: expires, expiresAt: Math.ceil(expires / 1000) } } };
}

export function expiryItemRemoval(tenant: string, owner: string): WriteOp {
  return { op: 'delete', key: keys.expiry(tenant, owner) };
}

/** The record attributes of expiry settings (absent ones removed). */
export function expiryAttrs(settings: ExpirySettings | undefined): { set: Record<string, unknown>; remove: string[] } {
  const all = ['expires', 'ttlSeconds', 'extendOnWrite'] as const;
  const set = Object.fromEntries(all.filter((f) => settings?.[f] !== undefined).map((f) => [f, settings![f]]));
  return { set, remove: all.filter((f) => settings?.[f] === undefined) };
}

/**
 * After a write: the update that pushes the expiry of the tree whose record is `key` back to its
 * time to live from now, pinned to the expiry read (a concurrent push wins), or undefined when
 * the tree does not ask for it or less than a tenth of its time to live has passed.
 */
export function extension(key: ItemKey, settings: Partial<ExpirySettings>, now: number): { op: WriteOp; expires: number } | undefined {
  if (!settings.extendOnWrite || !settings.ttlSeconds || settings.expires === undefined) return undefined;
  const ttlMs = settings.ttlSeconds * 1000;
  if (settings.expires - now >= ttlMs * (1 - EXTEND_AFTER)) return undefined;
  const expires = now + ttlMs;
  return { expires, op: { op: 'update', key, set: { expires }, conditions: [{ kind: 'equals', field: 'expires', value: settings.expires }] } };
}

/** How summaries show the settings. */
export function expiryView(settings: Partial<ExpirySettings>): { expiresAt?: number; ttlSeconds?: number; extendOnWrite?: boolean } {
  if (settings.expires === undefined) return {};
  return { expiresAt: settings.expires, ...(settings.ttlSeconds !== undefined ? { ttlSeconds: settings.ttlSeconds } : {}), ...(settings.extendOnWrite ? { extendOnWrite: true } : {}) };
}
