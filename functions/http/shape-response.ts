import { Readable } from 'node:stream';
import { TooLargeError } from '../../shared/errors.js';
import { blobKeys } from '../../shared/keys.js';
import type { Services } from '../composition.js';
import type { HttpResponse, HttpResult } from './types.js';

/**
 * Turns an operation's result into what API Gateway (or the local server) sends: JSON for data,
 * base64 for bytes, and for a stream either the stream itself (local server) or, past Lambda's
 * body limit, a 303 to a presigned URL of the bytes spooled to blob storage. It runs inside the
 * request's deadline, since spooling a large stream is most of the work of a save or an export.
 */
export async function shapeResponse(result: HttpResult, services: Services, tenant: string | undefined): Promise<HttpResponse> {
  const headers = { ...(result.headers ?? {}) };
  const body = result.body;
  if (body === undefined || body === null) return { statusCode: result.statusCode, headers };
  if (body instanceof Readable) {
    if (services.streamsBodies || (result.noRedirect && services.canStream)) return { statusCode: result.statusCode, headers, body };
    return spool(result.statusCode, headers, body, services, tenant, result.noRedirect);
  }
  if (Buffer.isBuffer(body)) return { statusCode: result.statusCode, headers, body: body.toString('base64'), isBase64Encoded: true };
  if (typeof body === 'string') return { statusCode: result.statusCode, headers, body };
  return { statusCode: result.statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

/** Buffers up to the inline limit; a longer stream goes to blob storage and the client is sent there. */
async function spool(statusCode: number, headers: Record<string, string>, stream: Readable, services: Services, tenant: string | undefined, noRedirect = false): Promise<HttpResponse> {
  const limit = services.config.inlineBodyLimit;
  const chunks: Buffer[] = [];
  let size = 0;
  const iterator = stream[Symbol.asyncIterator]();
  for (;;) {
    const next = await iterator.next();
    if (next.done) return { statusCode, headers, body: Buffer.concat(chunks).toString('base64'), isBase64Encoded: true };
    chunks.push(Buffer.from(next.value));
    size += next.value.length;
    if (size > limit) break;
  }
  if (noRedirect) {
    stream.destroy();
    throw new TooLargeError(`the response is over ${limit} bytes, more than this deployment can answer inline; use the /v1 API, which answers large bodies with a presigned URL`);
  }
  const key = blobKeys.exportArchive(tenant ?? 'public');
  await services.blobs.put(
    key,
    Readable.from(
      (async function* () {
        yield* chunks;
        for (let n = await iterator.next(); !n.done; n = await iterator.next()) yield Buffer.from(n.value);
      })(),
    ),
  );
  const location = await services.blobs.presign(key, 'GET', services.config.presignSeconds);
  return { statusCode: 303, headers: { location }, body: undefined };
}
