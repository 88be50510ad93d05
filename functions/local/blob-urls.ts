import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Presigner } from '../../shared/adapters/fs-blob-store.js';
import { ConflictError, NotFoundError, RangeNotSatisfiableError } from '../../shared/errors.js';
import type { BlobStore } from '../../shared/ports/blob-store.js';
import { send } from './http-io.js';

/**
 * Presigned URLs for the local blob folder, signed and served by the local server itself (S3
 * does this in the cloud): an HMAC over method, key and expiry, checked before a byte moves.
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

/** A request to one of the server's presigned URLs: PUT stores the bytes, GET and HEAD read them. */
export async function serveBlobUrl(
  req: IncomingMessage,
  res: ServerResponse,
  method: string,
  url: URL,
  signingKey: Buffer,
  blobs: BlobStore,
  /** Called once a PUT is stored, before it is answered, as S3 sends its ObjectCreated notification. */
  onStored?: (key: string, size: number) => Promise<void>,
): Promise<unknown> {
  const key = verifyBlobUrl(signingKey, method === 'HEAD' ? 'GET' : method, url.pathname, url.searchParams);
  if (!key) {
    req.resume();
    return send(res, 403, { message: 'the URL is invalid or has expired', code: 'forbidden' });
  }
  try {
    if (method === 'PUT') {
      const { size } = await blobs.put(key, req);
      await onStored?.(key, size);
      return send(res, 200, { size });
    }
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { message: 'presigned URLs take GET or PUT', code: 'method_not_allowed' });
    const size = await blobs.size(key);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    if (method === 'HEAD') return res.end();
    (await blobs.get(key)).pipe(res);
  } catch (error) {
    if (error instanceof NotFoundError || error instanceof ConflictError || error instanceof RangeNotSatisfiableError) return send(res, error.status, { message: error.message, code: error.code });
    throw error;
  }
}
