import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Presigner } from '../../shared/adapters/fs-blob-store.js';

/**
 * Presigned URLs for the local blob folder, signed by the local server itself (S3 does this in
 * the cloud): an HMAC over method, key and expiry, checked before a byte moves.
 */
export const BLOB_PATH = '/_blobs/';

function signature(secret: Buffer, method: string, key: string, expires: number): string {
  return createHmac('sha256', secret).update(`${method}\n${key}\n${expires}`).digest('base64url');
}

export function localPresigner(baseUrl: () => string, secret: Buffer, now: () => number = Date.now): Presigner {
  return async (key, method, expiresInSeconds) => {
    const expires = Math.floor(now() / 1000) + expiresInSeconds;
    const query = new URLSearchParams({ method, expires: String(expires), signature: signature(secret, method, key, expires) });
    return `${baseUrl()}${BLOB_PATH}${encodeURIComponent(key)}?${query}`;
  };
}

/** The blob key a presigned URL grants `method` on, or undefined when it is forged, altered or expired. */
export function verifyBlobUrl(secret: Buffer, method: string, rawPath: string, query: URLSearchParams, now: () => number = Date.now): string | undefined {
  if (!rawPath.startsWith(BLOB_PATH)) return undefined;
  let key: string;
  try {
    key = decodeURIComponent(rawPath.slice(BLOB_PATH.length));
  } catch {
    return undefined;
  }
  const expires = Number(query.get('expires'));
  const given = Buffer.from(query.get('signature') ?? '');
  if (query.get('method') !== method || !Number.isSafeInteger(expires) || expires < now() / 1000) return undefined;
  const expected = Buffer.from(signature(secret, method, key, expires));
  return given.length === expected.length && timingSafeEqual(given, expected) ? key : undefined;
}
