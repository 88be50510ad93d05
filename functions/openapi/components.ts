import { z } from 'zod';
import type { ResponseSchemaName } from '../http/response-schemas.js';
import { fileMode, type requestSchemas } from '../http/schemas.js';

/**
 * The reusable parts of the OpenAPI document: security schemes, parameters, request bodies,
 * headers and responses. Body schemas are not here: they are generated from the zod schemas the
 * handlers validate requests with (functions/http/schemas.ts) and that describe the responses
 * (functions/http/response-schemas.ts).
 */

export type Json = Record<string, unknown>;

/** Sentences of one description, one per line in the source. */
export const prose = (...sentences: string[]) => sentences.join(' ');

type SchemaName = ResponseSchemaName | keyof typeof requestSchemas | keyof typeof parameterSchemas;

export const schemaRef = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });
export const parameterRef = (name: keyof typeof parameters) => ({ $ref: `#/components/parameters/${name}` });
export const responseRef = (name: keyof typeof responses) => ({ $ref: `#/components/responses/${name}` });
export const requestBodyRef = (name: keyof typeof requestBodies) => ({ $ref: `#/components/requestBodies/${name}` });

export const jsonContent = (schema: Json) => ({ 'application/json': { schema } });
export const bytesOf = (mediaType: string) => ({ schema: { type: 'string', contentMediaType: mediaType } });

/** Response headers by their HTTP names; each refers to the header component named without dashes. */
type HeaderName = 'ETag' | 'Last-Modified' | 'X-Strata-Type' | 'X-Strata-Mode' | 'X-Strata-Uid' | 'X-Strata-Gid' | 'Accept-Ranges' | 'Content-Length' | 'Content-Range' | 'Location' | 'Retry-After';
export const headerRefs = (...names: HeaderName[]) => Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name.replaceAll('-', '')}` }]));

const STAT_HEADERS: HeaderName[] = ['ETag', 'Last-Modified', 'X-Strata-Type', 'X-Strata-Mode', 'X-Strata-Uid', 'X-Strata-Gid'];
const CONTENT_HEADERS: HeaderName[] = [...STAT_HEADERS, 'Accept-Ranges', 'Content-Length'];

export const securitySchemes = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: prose(
      'In the cloud, a JWT from the configured issuer and audience (API Gateway JWT authorizer);',
      'its tenant claim (`tenant` unless STRATA_TENANT_CLAIM says otherwise) names the tenant.',
      "Locally, a token from the server's token file (STRATA_TOKENS_FILE, token to tenant);",
      'without that file the local server listens on loopback only and needs no token (tenant `local`).',
    ),
  },
  sigv4: {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description: 'AWS Signature Version 4 (IAM), used when the stack is deployed without a JWT issuer; the calling AWS account is the tenant.',
  },
};

const { $schema: _dialect, ...modeSchema } = z.toJSONSchema(fileMode, { io: 'input' });

/**
 * Schemas of single values, not bodies. Flag types the true/false query parameters (text that
 * `flag` in parse.ts reads, so not a zod schema); Mode is generated from the body validator's.
 */
export const parameterSchemas = {
  Flag: {
    type: 'boolean',
    description: '`true` or `false`; `1`/`0`, `yes`/`no` and an empty value (true) are accepted too. Anything else answers 400.',
  },
  Mode: { ...modeSchema, description: 'Permission bits: an integer up to 0o7777 (4095) or an octal string such as `"0644"`.' },
};

const octal = { type: 'string', pattern: '^0?[0-7]{1,4}$' };
const text = { type: 'string' };

const pathParameter = (name: string, description: string, extra: Json = {}) => ({ name, in: 'path' as const, required: true, description, schema: text, ...extra });
const query = (name: string, description: string, schema: Json = schemaRef('Flag')) => ({ name, in: 'query' as const, description, schema });
const header = (name: string, description: string, schema: Json = text, extra: Json = {}) => ({ name, in: 'header' as const, description, schema, ...extra });

export const parameters = {
  ImageRef: pathParameter('ref', 'Image ID (`sha256:…`), unique ID prefix, or tag (`repo[:tag]`; percent-encode `/` as `%2F`). An ambiguous prefix answers 409.'),
  ContainerRef: pathParameter('id', 'Container ID (64 hex digits), unique ID prefix (4+ hex digits) or name. An ambiguous prefix answers 409.'),
  VolumeName: pathParameter('name', 'Volume name.'),
  FilePath: pathParameter('path', 'Path inside the tree, without the leading `/`. Greedy: it may contain slashes (API Gateway `{path+}`). Percent-decoded.', { example: 'etc/nginx/nginx.conf' }),
  Cursor: query('cursor', 'Opaque cursor from the previous page of a directory listing; 400 if it is not one the API handed out.', text),
  Since: query('since', 'The `cursor` of the previous page of events (an event id); omitted: from the oldest event kept.', text),
  Limit: query('limit', 'Most entries per page (at most 1000, the default).', {
    type: 'integer',
    minimum: 1,
    maximum: 1000,
    default: 1000,
  }),
  Stat: query('stat', "Answer the path's FileStat as JSON instead of its content."),
  Follow: query('follow', 'With `stat`: follow a symlink at the path (default true); `false` stats the link itself.'),
  Range: header(
    'Range',
    prose('One byte range: `bytes=start-end`, `bytes=start-` or `bytes=-suffix`. Answers 206 with `Content-Range`;', 'a range outside the file or an unsupported form (several ranges) answers 416.'),
    { type: 'string', pattern: '^bytes=\\d*-\\d*$' },
    { example: 'bytes=0-1023' },
  ),
  IdempotencyKey: header(
    'Idempotency-Key',
    prose(
      '1-255 visible ASCII characters. A retry of the same request under the same key (within 24 h) makes nothing new:',
      'it answers the first result with `Idempotent-Replayed: true`, or 409 while that one is still recording.',
      'A different request under a used key answers 422.',
    ),
  ),
  IfMatch: header('If-Match', 'An ETag (quoted or not, `W/` ignored) or `*`. The path must exist with that ETag, else 412. Guards reads and writes.'),
  IfNoneMatch: header(
    'If-None-Match',
    prose(
      'An ETag or `*`. On reads, a match (or `*` for an existing file) answers 304.',
      'On writes, `*` means create only and an existing path answers 412; an ETag that matches the current one answers 412.',
    ),
  ),
  Against: query('against', 'The tree to compare with: a container (name or ID), `image:<ref>`, or a fork point of this container (`forkedFrom.forkPoint`, `fork:<hex>`). Default: the image.', text),
  Upload: query(
    'upload',
    prose('ID of an upload (`POST /v1/uploads`) whose bytes were sent; used instead of the request body.', '404 for an unknown upload, 400 if its bytes have not arrived.'),
    text,
  ),
  WriteType: query('type', 'What to make at the path.', { type: 'string', enum: ['file', 'dir', 'symlink'], default: 'file' }),
  ModeQuery: query('mode', 'Permission bits in octal (`0644`) for a new file or directory. Takes precedence over `X-Strata-Mode`.', octal),
  ModeHeader: header('X-Strata-Mode', 'Permission bits in octal, as `?mode=`.', octal),
  Parents: query('parents', 'With `type=dir`: make missing parents, and accept an existing directory (`mkdir -p`).'),
  SymlinkTarget: query('target', 'With `type=symlink`: the link target (1-4096 bytes, no NUL). Without it the body is the target.', text),
  Offset: query('offset', 'Byte offset to write the body at (bytes PATCH). Past the end, the gap reads as zeros.', { type: 'integer', minimum: 0 }),
  Append: query('append', 'Write the body at the end of the file (bytes PATCH).'),
  Recursive: query('recursive', 'Remove a non-empty directory and everything under it.'),
  FeedAfter: query('after', 'The `next` of the previous page (a sequence number); `latest` starts at the newest change, so only changes from now on come. Default 0: from the first change.', {
    type: 'string',
    pattern: '^(\\d{1,15}|latest)$',
  }),
  FeedWait: query('wait', 'Seconds (at most 20) to wait for a change when none follows the cursor yet: the answer comes as soon as one commits (long polling).', {
    type: 'number',
    minimum: 0,
    maximum: 20,
  }),
};

/** Path parameters by their name in the route table's paths: how `{ref}`, `{id}`, ... are documented. */
export const pathParameters: Readonly<Record<string, Json>> = {
  ref: parameterRef('ImageRef'),
  id: parameterRef('ContainerRef'),
  name: parameterRef('VolumeName'),
  path: parameterRef('FilePath'),
  job: pathParameter('job', 'The job ID, from the 202 answer of `POST /v1/images/load?async=true`.'),
  tag: pathParameter('tag', prose('The tag to remove (`repo[:tag]`; percent-encode `/` as `%2F`).', 'It must name the image `{ref}` names: a tag of another image answers 404 and stays.')),
};

/** Query parameters several operations take, by their name in the query validators (functions/http/schemas.ts). */
export const sharedQueryParameters: Readonly<Record<string, Json>> = {
  cursor: parameterRef('Cursor'),
  limit: parameterRef('Limit'),
  since: parameterRef('Since'),
  stat: parameterRef('Stat'),
  follow: parameterRef('Follow'),
  upload: parameterRef('Upload'),
  against: parameterRef('Against'),
  type: parameterRef('WriteType'),
  mode: parameterRef('ModeQuery'),
  parents: parameterRef('Parents'),
  target: parameterRef('SymlinkTarget'),
  offset: parameterRef('Offset'),
  append: parameterRef('Append'),
  recursive: parameterRef('Recursive'),
  after: parameterRef('FeedAfter'),
  wait: parameterRef('FeedWait'),
};

/** A query flag only one operation takes, described there. */
export const flagQuery = (name: string, description: string) => query(name, description);

export const requestBodies = {
  PutBody: {
    description: prose("`type=file`: the file's bytes (none with `?upload=`).", '`type=symlink`: the link target as UTF-8 text, unless `?target=` is given. `type=dir`: no body.'),
    required: false,
    content: { 'application/octet-stream': bytesOf('application/octet-stream'), 'text/plain': { schema: text } },
  },
  PatchBody: {
    description: 'JSON attributes, or bytes to write at `?offset=` / `?append=true` (none with `?upload=`).',
    required: false,
    content: { ...jsonContent(schemaRef('FileAttributes')), 'application/octet-stream': bytesOf('application/octet-stream') },
  },
};

export const headers = {
  ETag: { description: "The node's ETag, quoted; changes with every change to content or attributes.", schema: text },
  LastModified: { description: "The node's mtime as an HTTP date.", schema: text },
  XStrataType: { description: '`file`, `dir` or `symlink`.', schema: { type: 'string', enum: ['file', 'dir', 'symlink'] } },
  XStrataMode: { description: 'Permission bits, four octal digits.', schema: { type: 'string', pattern: '^[0-7]{4}$' } },
  XStrataUid: { description: 'Owner user ID.', schema: { type: 'string', pattern: '^\\d+$' } },
  XStrataGid: { description: 'Owner group ID.', schema: { type: 'string', pattern: '^\\d+$' } },
  XStrataLinkTarget: { description: "A symlink's target, percent-encoded; only where a symlink itself is described.", schema: text },
  AcceptRanges: { description: '`bytes`.', schema: { type: 'string', const: 'bytes' } },
  ContentLength: { description: 'Bytes in the (partial) content.', schema: { type: 'integer', minimum: 0 } },
  ContentRange: { description: '`bytes start-end/size`.', schema: text },
  Location: { description: 'Where the resource or the bytes are.', schema: { type: 'string', format: 'uri-reference' } },
  RetryAfter: { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } },
};

const fileStatResponse = (description: string, extra: Json = {}) => ({ description, ...extra, content: jsonContent(schemaRef('FileStat')) });
const errorResponse = (description: string, extra: Json = {}) => ({ description, ...extra, content: jsonContent(schemaRef('Error')) });

export const responses = {
  DirListing: {
    description: prose("A page of the directory's entries, names in byte order; pass `cursor` back for the next page.", 'The stat headers describe the directory.'),
    headers: headerRefs(...STAT_HEADERS),
    content: jsonContent(schemaRef('DirPage')),
  },
  FileRead: {
    description: "A file's bytes (symlinks followed), a directory listing (as DirListing), or with `?stat=true` the path's FileStat.",
    headers: headerRefs(...CONTENT_HEADERS),
    content: {
      'application/octet-stream': bytesOf('application/octet-stream'),
      ...jsonContent({ oneOf: [schemaRef('DirPage'), schemaRef('FileStat')] }),
    },
  },
  FilePartial: {
    description: 'The requested byte range of the file.',
    headers: headerRefs(...CONTENT_HEADERS, 'Content-Range'),
    content: { 'application/octet-stream': bytesOf('application/octet-stream') },
  },
  HeadOk: {
    description: 'The path exists; its stat in headers (a file also has `Content-Length` and `Accept-Ranges`).',
    headers: headerRefs(...CONTENT_HEADERS),
  },
  HeadPartial: { description: 'As HeadOk, for the requested byte range.', headers: headerRefs(...CONTENT_HEADERS, 'Content-Range') },
  NotModified: {
    description: "`If-None-Match` matched: the client's copy is current. No body.",
    headers: headerRefs('ETag', 'Last-Modified'),
  },
  FileStatWritten: fileStatResponse('The file as written.', { headers: headerRefs('ETag') }),
  FileStatCreated: fileStatResponse('The new directory, symlink or link.'),
  FileStatRenamed: fileStatResponse('The node at its new path.'),
  SeeOther: {
    description: prose(
      'The body (the file, or the requested range of it) is larger than the inline limit:',
      '`Location` is a presigned URL to GET it from, valid for STRATA_PRESIGN_SECONDS. File reads keep the stat headers. No body.',
    ),
    headers: headerRefs('Location'),
  },
  BadRequest: errorResponse(
    prose(
      'Invalid input (`invalid_input`): a query parameter the operation does not take, a bad value or body;',
      'or a filesystem error named in `code`: `ENOTDIR`, `EISDIR`, `ELOOP`, `EINVAL`, `EPERM`.',
    ),
  ),
  Unauthorized: errorResponse('Missing or invalid credentials (`unauthorized`).'),
  Forbidden: errorResponse('The credentials name no valid tenant, or the path is under a read-only mount (`forbidden`).'),
  NotFound: errorResponse('No such image, tag, container, volume, path or upload (`not_found`).'),
  Conflict: errorResponse(prose('The state forbids the change (`conflict`): in use, name taken, ambiguous ID prefix, mount point,', 'a concurrent change (retry); or `ENOTEMPTY` / `EEXIST`.')),
  Gone: errorResponse('A change feed cursor older than what the feed keeps (7 days) (`gone`): the message says where to follow from after reading the tree again.'),
  PreconditionFailed: errorResponse('`If-Match` or `If-None-Match` did not hold (`precondition_failed`).'),
  TooLarge: errorResponse(
    prose(
      'Over a limit (`too_large`): an archive over its size, entry count, name length or expansion ratio;',
      'a file size, offset or write end over STRATA_MAX_FILE_BYTES;',
      'a read past the inline limit, an export or a commit that would write out too many never-written bytes (holes)',
      'as zeros (read such a file in `Range` requests);',
      'or, on the local server, the request body is over STRATA_MAX_BODY_BYTES (use `POST /v1/uploads`).',
    ),
  ),
  QuotaExceeded: errorResponse('The change would take the container or volume past its byte or entry quota (`quota_exceeded`); the message names the limit, and nothing was written.'),
  RangeNotSatisfiable: errorResponse('The range lies outside the file, or is not one `bytes=` range (`range_not_satisfiable`).'),
  IdempotencyKeyReused: errorResponse('The Idempotency-Key was used before for a different request (`idempotency_key_reused`).'),
  InternalError: errorResponse('Internal error (`internal`); details go to the log only.'),
  Unavailable: errorResponse(
    prose('Storage is throttling (`unavailable`); retry shortly.', 'Or the request ran out of time (`deadline_exceeded`, no `Retry-After`): a change it made may or may not have taken effect.'),
    { headers: headerRefs('Retry-After') },
  ),
};

/** The reusable response of each status an operation may answer besides its own. */
export const statusResponses = {
  303: 'SeeOther',
  304: 'NotModified',
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Gone',
  412: 'PreconditionFailed',
  413: 'TooLarge',
  416: 'RangeNotSatisfiable',
  422: 'IdempotencyKeyReused',
  500: 'InternalError',
  503: 'Unavailable',
  507: 'QuotaExceeded',
} as const satisfies Record<number, keyof typeof responses>;

export type Status = keyof typeof statusResponses;
