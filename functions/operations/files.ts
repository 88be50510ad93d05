import { Readable } from 'node:stream';
import { FsError, InvalidInputError, PreconditionFailedError } from '../../shared/errors.js';
import type { TreeTarget } from '../../shared/domain/files.js';
import type { FileStat } from '../../shared/domain/tree-read.js';
import { flag, mode, nonNegativeInt, optionalInt } from '../http/parse.js';
import { AttributesRequest, FileActionRequest, parseWith } from '../http/schemas.js';
import { json, noContent } from '../http/responses.js';
import type { HttpResult, Operation, RequestContext } from '../http/types.js';

/**
 * File operations over HTTP, the same for images (read-only), containers and volumes:
 * GET reads a file (Range, ETag, 304) or lists a directory; HEAD stats; PUT writes a whole file
 * (or makes a directory or symlink with ?type=); PATCH writes bytes at an offset or changes
 * attributes (JSON); DELETE removes; POST renames and links.
 */

function targetOf(request: RequestContext): TreeTarget {
  const { params } = request;
  if (params.ref !== undefined) return { kind: 'image', ref: params.ref };
  if (params.id !== undefined) return { kind: 'container', ref: params.id };
  return { kind: 'volume', name: params.name };
}

function pathOf(request: RequestContext): string {
  return '/' + (request.params.path ?? '');
}

/** ETags travel quoted; weak ones compare by their value. */
function etagHeader(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '*') return '*';
  return v.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function preconditions(request: RequestContext) {
  return { ifMatch: etagHeader(request.headers['if-match']), ifNoneMatch: etagHeader(request.headers['if-none-match']) };
}

export function statHeaders(stat: FileStat): Record<string, string> {
  const headers: Record<string, string> = {
    etag: `"${stat.etag}"`,
    'x-strata-type': stat.type,
    'x-strata-mode': stat.mode.toString(8).padStart(4, '0'),
    'x-strata-uid': String(stat.uid),
    'x-strata-gid': String(stat.gid),
  };
  const modified = httpDate(stat.mtime);
  if (modified) headers['last-modified'] = modified;
  if (stat.target !== undefined) headers['x-strata-link-target'] = encodeURIComponent(stat.target);
  return headers;
}

/** An HTTP date, or undefined for a time outside years 1 to 9999 (a layer may carry any mtime). */
function httpDate(ms: number): string | undefined {
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  return Number.isNaN(year) || year < 1 || year > 9999 ? undefined : date.toUTCString();
}

async function read(request: RequestContext, head: boolean): Promise<HttpResult> {
  const { tenant, services, query } = request;
  const files = services.engine.files;
  const target = targetOf(request);
  const path = pathOf(request);
  if (flag(query, 'stat')) return json(200, await files.stat(tenant, target, path, { follow: !query.follow || flag(query, 'follow') }));
  const rangeHeader = request.headers.range;
  let range: { start: number; end?: number } | undefined;
  if (rangeHeader) {
    const match = /^bytes=(\d*)-(\d*)$/.exec(rangeHeader.trim());
    if (!match || (match[1] === '' && match[2] === '')) return json(416, { message: `unsupported Range ${rangeHeader}; use one bytes=start-end range`, code: 'range_not_satisfiable' });
    if (match[1] === '') {
      const size = (await files.stat(tenant, target, path)).size;
      range = { start: Math.max(0, size - Number(match[2])), end: size };
    } else range = { start: Number(match[1]), end: match[2] === '' ? undefined : Number(match[2]) + 1 };
  }
  let result: Awaited<ReturnType<typeof files.read>>;
  try {
    result = await files.read(tenant, target, path, range);
  } catch (error) {
    if (error instanceof FsError && error.code === 'EISDIR') return list(request, head);
    throw error;
  }
  const { stat, start, end, body, extents } = result;
  const headers: Record<string, string> = { ...statHeaders(stat), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
  const noneMatch = etagHeader(request.headers['if-none-match']);
  const ifMatch = etagHeader(request.headers['if-match']);
  if ((noneMatch && (noneMatch === '*' || noneMatch === stat.etag)) || head) body.destroy();
  if (ifMatch && ifMatch !== '*' && ifMatch !== stat.etag) throw new PreconditionFailedError(`${stat.path} has changed`);
  if (noneMatch && (noneMatch === '*' || noneMatch === stat.etag)) return { statusCode: 304, headers };
  const partial = range !== undefined;
  // Where the server can stream (the local server), a sparse file is streamed rather than
  // copied out: its holes are zeros made on the fly, never written to a blob.
  const streamed = services.streamsBodies || (services.canStream && files.tooSparseToCopy(extents));
  if (!head && !streamed && end - start > services.config.inlineBodyLimit) {
    // Too big for a Lambda response: copy it out (server-side where possible) and send the client there.
    body.destroy();
    const { key } = await files.copyOut(tenant, extents, services.config.presignSeconds * 1000);
    return { statusCode: 303, headers: { ...headers, location: await services.blobs.presign(key, 'GET', services.config.presignSeconds) } };
  }
  headers['content-length'] = String(end - start);
  if (partial) headers['content-range'] = `bytes ${start}-${Math.max(start, end - 1)}/${stat.size}`;
  return { statusCode: partial ? 206 : 200, headers, body: head ? undefined : body, noRedirect: streamed && !services.streamsBodies };
}

async function list(request: RequestContext, head: boolean): Promise<HttpResult> {
  const { tenant, services, query } = request;
  const target = targetOf(request);
  const path = pathOf(request);
  const stat = await services.engine.files.stat(tenant, target, path);
  if (head) return { statusCode: 200, headers: statHeaders(stat) };
  const limit = optionalInt(query.limit, 'limit');
  const page = await services.engine.files.list(tenant, target, path, { cursor: query.cursor, limit });
  return json(200, { path: stat.path, ...page }, statHeaders(stat));
}

async function put(request: RequestContext): Promise<HttpResult> {
  const { tenant, services, query, headers } = request;
  const files = services.engine.files;
  const target = targetOf(request);
  const path = pathOf(request);
  const fileMode = mode(query.mode ?? headers['x-strata-mode']);
  switch (query.type ?? 'file') {
    case 'dir':
      return json(201, await files.mkdir(tenant, target, path, { mode: fileMode, parents: flag(query, 'parents') }));
    case 'symlink': {
      const linkTarget = query.target ?? request.body().toString('utf8');
      return json(201, await files.symlink(tenant, target, path, linkTarget));
    }
    case 'file': {
      const body = query.upload ? { copyOf: await uploadedBlob(request, query.upload) } : request.body();
      const stat = await files.writeFile(tenant, target, path, body, { ...preconditions(request), mode: fileMode });
      return json(200, stat, { etag: `"${stat.etag}"` });
    }
    default:
      throw new InvalidInputError('type must be file, dir or symlink');
  }
}

/** The blob behind a finished upload (see the uploads operation), scoped to the caller's tenant. */
export function uploadedBlob(request: RequestContext, id: string): Promise<string> {
  return request.services.engine.uploads.arrivedKey(request.tenant, id);
}

async function patch(request: RequestContext): Promise<HttpResult> {
  const { tenant, services, query, headers } = request;
  const files = services.engine.files;
  const target = targetOf(request);
  const path = pathOf(request);
  if ((headers['content-type'] ?? '').startsWith('application/json')) {
    const body = parseWith(AttributesRequest, request.json());
    const size = body.size;
    let stat: FileStat | undefined;
    if (size !== undefined) stat = await files.truncate(tenant, target, path, size, preconditions(request));
    const attributes = { mode: mode(body.mode), uid: body.uid, gid: body.gid, mtime: body.mtime };
    if (Object.values(attributes).some((v) => v !== undefined)) stat = await files.setAttributes(tenant, target, path, attributes, size === undefined ? preconditions(request) : {});
    if (!stat) throw new InvalidInputError('give at least one of size, mode, uid, gid, mtime');
    return json(200, stat, { etag: `"${stat.etag}"` });
  }
  const position = flag(query, 'append') ? 'end' : query.offset !== undefined ? nonNegativeInt(query.offset, 'offset') : undefined;
  if (position === undefined) throw new InvalidInputError('say where to write: ?offset=N or ?append=true (or send JSON attributes)');
  const body = query.upload ? Readable.from(await services.blobs.get(await uploadedBlob(request, query.upload))) : request.body();
  const stat = await files.writeRange(tenant, target, path, position, body, preconditions(request));
  return json(200, stat, { etag: `"${stat.etag}"` });
}

async function remove(request: RequestContext): Promise<HttpResult> {
  await request.services.engine.files.remove(request.tenant, targetOf(request), pathOf(request), { ...preconditions(request), recursive: flag(request.query, 'recursive') });
  return noContent();
}

/** Actions that name a second path: rename, link, symlink, mkdir. */
async function post(request: RequestContext): Promise<HttpResult> {
  const { tenant, services } = request;
  const files = services.engine.files;
  const target = targetOf(request);
  const path = pathOf(request);
  const body = parseWith(FileActionRequest, request.json());
  switch (body.action) {
    case 'rename':
      return json(200, await files.rename(tenant, target, path, body.to));
    case 'link':
      return json(201, await files.link(tenant, target, body.target, path));
    case 'symlink':
      return json(201, await files.symlink(tenant, target, path, body.target));
    case 'mkdir':
      return json(201, await files.mkdir(tenant, target, path, { mode: mode(body.mode), parents: body.parents === true }));
  }
}

const get: Operation = (request) => read(request, false);
const head: Operation = (request) => read(request, true);
const root: Operation = (request) => list(request, false);

export const fileOperations: Record<string, Operation> = {
  imageFsRoot: root,
  imageFsGet: get,
  imageFsHead: head,
  containerFsRoot: root,
  containerFsGet: get,
  containerFsHead: head,
  containerFsPut: put,
  containerFsPatch: patch,
  containerFsDelete: remove,
  containerFsPost: post,
  volumeFsRoot: root,
  volumeFsGet: get,
  volumeFsHead: head,
  volumeFsPut: put,
  volumeFsPatch: patch,
  volumeFsDelete: remove,
  volumeFsPost: post,
};
