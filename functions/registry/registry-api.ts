import { InvalidInputError, NotFoundError, StrataError } from '../../shared/errors.js';
import { type BlobLocation, checkRepository, isDigest, Registry } from '../../shared/domain/registry.js';
import type { HttpResult, RequestContext } from '../http/types.js';

/**
 * The OCI Distribution API's pull side under `/v2/` (shared/domain/registry.ts has the model):
 * `docker pull`, `podman pull` and `skopeo copy` read any image Strata holds. The local server
 * streams blobs; deployed, a blob is a redirect to a presigned URL of its bytes, so no layer
 * passes through a function and Lambda's body limit never applies. Pushing answers 405
 * UNSUPPORTED for now. Errors are the spec's `{"errors": [{code, message, detail}]}`.
 */
const API_VERSION = { 'docker-distribution-api-version': 'registry/2.0' };

/** Whether a request path is the registry's (`/v2`, `/v2/...`). */
export function isRegistryPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

type Kind = 'manifest' | 'blob' | 'name';

export async function registryApi(request: RequestContext): Promise<HttpResult> {
  const path = request.event.rawPath ?? request.event.requestContext.http.path;
  const method = request.event.requestContext.http.method.toUpperCase();
  const head = method === 'HEAD';
  let kind: Kind = 'name';
  try {
    if (method !== 'GET' && method !== 'HEAD') return error(405, 'UNSUPPORTED', `${method} is not supported: Strata's registry serves pulls; pushing comes later`);
    if (path === '/v2' || path === '/v2/') return reply(200, {}, head);
    // The token endpoint a 401's challenge names: credentials that reached here are good, and the
    // token is the tenant token itself (sent as the Basic password, or already as a bearer).
    if (path === '/v2/token') return reply(200, tokenOf(request.headers.authorization ?? ''), head);
    const registry = new Registry(request.services.meta);
    const tenant = request.tenant;
    const query = new URLSearchParams(request.event.rawQueryString ?? '');
    const page = { last: query.get('last') ?? undefined, limit: query.has('n') ? pageSize(query.get('n')!) : undefined };
    if (path === '/v2/_catalog') return reply(200, { repositories: await registry.catalog(tenant, page) }, head);
    let match = /^\/v2\/(.+)\/tags\/list$/.exec(path);
    if (match) return reply(200, { name: match[1], tags: await registry.tags(tenant, match[1], page) }, head);
    match = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (match) {
      checkRepository(match[1]);
      kind = 'manifest';
      const accept = (request.headers.accept ?? '').split(',').map((type) => type.split(';')[0].trim());
      const document = await registry.manifest(tenant, match[1], decodeURIComponent(match[2]), accept);
      return {
        statusCode: 200,
        headers: { ...API_VERSION, 'content-type': document.mediaType, 'docker-content-digest': document.digest, 'content-length': String(document.bytes.length), etag: `"${document.digest}"` },
        body: head ? undefined : document.bytes,
      };
    }
    match = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path);
    if (match) {
      checkRepository(match[1]);
      kind = 'blob';
      if (!isDigest(match[2])) throw new InvalidInputError(`invalid digest ${JSON.stringify(match[2])}`);
      return blob(request, await registry.blob(tenant, match[1], match[2]), match[2], head);
    }
    return error(404, 'NAME_UNKNOWN', `no such registry path: ${path}`);
  } catch (failure) {
    if (failure instanceof NotFoundError) return error(404, kind === 'manifest' ? 'MANIFEST_UNKNOWN' : kind === 'blob' ? 'BLOB_UNKNOWN' : 'NAME_UNKNOWN', failure.message);
    if (failure instanceof InvalidInputError) return error(400, kind === 'blob' ? 'DIGEST_INVALID' : kind === 'manifest' ? 'MANIFEST_INVALID' : 'NAME_INVALID', failure.message);
    if (failure instanceof StrataError && failure.status < 500) return error(failure.status, 'DENIED', failure.message);
    throw failure;
  }
}

/** A blob's bytes: streamed where the server streams (a `Range` honoured), else a redirect to a presigned URL of them. */
async function blob(request: RequestContext, location: BlobLocation, digest: string, head: boolean): Promise<HttpResult> {
  const { services } = request;
  const headers = { ...API_VERSION, 'docker-content-digest': digest, 'accept-ranges': 'bytes' };
  if (head) return { statusCode: 200, headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(location.size) } };
  if (!services.streamsBodies) return { statusCode: 307, headers: { ...headers, location: await services.blobs.presign(location.key, 'GET', services.config.presignSeconds) } };
  const range = parseRange(request.headers.range, location.size);
  if (range === 'unsatisfiable') return { statusCode: 416, headers: { ...headers, 'content-range': `bytes */${location.size}` } };
  const body = await services.blobs.get(location.key, range);
  return {
    statusCode: range ? 206 : 200,
    headers: {
      ...headers,
      'content-type': 'application/octet-stream',
      'content-length': String(range ? range.end - range.start : location.size),
      ...(range ? { 'content-range': `bytes ${range.start}-${range.end - 1}/${location.size}` } : {}),
    },
    body,
  };
}

/** One `bytes=start-end` range (end inclusive, as HTTP writes it), or none. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'unsatisfiable' {
  if (!header) return undefined;
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = match[2] === '' ? size : Math.min(Number(match[2]) + 1, size);
  return start >= size || end <= start ? 'unsatisfiable' : { start, end };
}

function tokenOf(authorization: string): { token: string; access_token: string } {
  const basic = /^Basic\s+(.+)$/i.exec(authorization);
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization);
  const token = basic ? Buffer.from(basic[1].trim(), 'base64').toString('utf8').split(':').slice(1).join(':') : (bearer?.[1].trim() ?? 'anonymous');
  return { token, access_token: token };
}

function pageSize(raw: string): number {
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1) throw new InvalidInputError('n must be a positive number');
  return Number(raw);
}

function reply(statusCode: number, body: unknown, head: boolean): HttpResult {
  const bytes = Buffer.from(JSON.stringify(body));
  return { statusCode, headers: { ...API_VERSION, 'content-type': 'application/json', 'content-length': String(bytes.length) }, body: head ? undefined : bytes };
}

function error(statusCode: number, code: string, message: string): HttpResult {
  return { statusCode, headers: { ...API_VERSION, 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ errors: [{ code, message, detail: {} }] })) };
}
