import { responseJsonSchemas } from '../http/response-schemas.js';
import { flagParam, querySchemas, requestJsonSchemas } from '../http/schemas.js';
import { DEFAULT_ROUTE, routes, type Route } from '../routes.js';
import {
  flagQuery,
  headers,
  parameterRef,
  parameters,
  parameterSchemas,
  pathParameters,
  prose,
  requestBodies,
  responseRef,
  responses,
  securitySchemes,
  sharedQueryParameters,
  statusResponses,
  type Json,
  type Status,
} from './components.js';
import { operationDocs, type OperationDoc } from './operations.js';

/** The routes this document describes: not the Docker Engine API behind the default route, which moby's swagger documents. */
export const documentedRoutes = routes.filter((route) => route.path !== DEFAULT_ROUTE);

const info = {
  title: 'Strata',
  version: '0.1.0',
  summary: "Docker's storage model (layered images, copy-on-write containers, volumes) as a serverless HTTP API.",
  description: prose(
    "Every resource belongs to the caller's tenant, named by its credentials.",
    'Errors are JSON `{"message", "code"}`; 5xx errors carry no details.',
    'Times are milliseconds since the epoch unless a field says otherwise.',
    'A response body larger than the inline limit (STRATA_INLINE_LIMIT, 4 MiB by default) is answered with `303 See Other`',
    'to a presigned URL of the bytes (file reads, `save`, `export`), deployed and locally alike.',
    'Request bodies too large to send inline (about 6 MB in Lambda, STRATA_MAX_BODY_BYTES locally) go through `POST /v1/uploads`.',
  ),
};

const tags = [
  { name: 'system', description: 'Health, this document, disk usage and garbage collection.' },
  {
    name: 'images',
    description: prose('Load, save, tag and remove images.', '`{ref}` is an image ID (`sha256:…`), a unique ID prefix, or a tag (`repo[:tag]`; percent-encode `/` as `%2F`).'),
  },
  {
    name: 'containers',
    description: prose('Writable copy-on-write layers on top of an image. No processes run.', '`{id}` is a container ID, a unique ID prefix (4+ hex digits) or a name.'),
  },
  { name: 'volumes', description: 'Storage that outlives containers, mounted into them by name.' },
  {
    name: 'files',
    description: prose(
      'The same file API over an image (read-only), a container (merged view, volumes mounted) and a volume.',
      '`{path}` is the path inside the tree and may contain slashes.',
      "Symlinks resolve inside the tree's root (`..` never leaves it); reads and writes follow them.",
      'Hard links are real: every name of a file shows the same content and metadata, a write through one is seen through all,',
      'FileStat gives `nlink` and a shared `inode`, and removing a name leaves the others.',
      'File responses carry `ETag`, `Last-Modified` and `X-Strata-Type`, `X-Strata-Mode` (octal), `X-Strata-Uid`, `X-Strata-Gid`.',
      'GET and HEAD follow symlinks and describe the target;',
      '`?stat=true&follow=false` describes the link itself (FileStat `target`; in headers, `X-Strata-Link-Target`, percent-encoded).',
    ),
  },
  { name: 'uploads', description: 'Presigned uploads for bodies too large to send through the API.' },
];

/**
 * The OpenAPI document, built from the route table: paths and operation IDs from the routes,
 * query parameters from the query validators, and every body schema from the zod schemas that
 * validate requests and describe responses. Only prose and status lists are written by hand.
 */
export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info,
    tags,
    security: [{ bearerAuth: [] }, { sigv4: [] }],
    paths: openApiPaths(),
    components: {
      securitySchemes,
      parameters,
      requestBodies,
      headers,
      responses,
      schemas: { ...parameterSchemas, ...responseJsonSchemas(), ...requestJsonSchemas() },
    },
  };
}

/** API Gateway's greedy `{path+}` is `{path}` in OpenAPI. */
export const openApiPath = (route: Route) => route.path.replace(/\{(\w+)\+\}/g, '{$1}');

/** The document's `paths`: one operation per route, so a route without an OperationDoc (or a doc without a route) throws. */
export function openApiPaths(routesToDocument = documentedRoutes, docs = operationDocs): Record<string, Json> {
  const routed = new Set(routesToDocument.map((route) => route.operation));
  const stale = Object.keys(docs).filter((operation) => !routed.has(operation));
  if (stale.length) throw new Error(`functions/openapi/operations.ts documents operations no route has: ${stale.join(', ')}`);
  const out: Record<string, Json> = {};
  for (const route of routesToDocument) {
    const doc = docs[route.operation];
    if (!doc) throw new Error(`${route.method} ${route.path} (${route.operation}) has no entry in functions/openapi/operations.ts`);
    const path = openApiPath(route);
    out[path] ??= pathItem(path);
    out[path][route.method.toLowerCase()] = operation(route, doc);
  }
  return out;
}

/** Path parameters belong to the path, shared by its methods. */
function pathItem(path: string): Json {
  const names = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
  const undocumented = names.filter((name) => !pathParameters[name]);
  if (undocumented.length) throw new Error(`${path}: no pathParameters entry for ${undocumented.join(', ')}`);
  return names.length ? { parameters: names.map((name) => pathParameters[name]) } : {};
}

function operation(route: Route, doc: OperationDoc): Json {
  const parameters = [...queryParameters(route.operation, doc), ...(doc.headers ?? []).map(parameterRef)];
  return {
    operationId: route.operation,
    tags: [doc.tag],
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    ...(route.public ? { security: [] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(doc.requestBody ? { requestBody: doc.requestBody } : {}),
    responses: responsesOf(route, doc),
  };
}

/** Exactly the query parameters the operation's validator takes, so the document cannot offer one it refuses. */
function queryParameters(operation: string, doc: OperationDoc): Json[] {
  const shape = querySchemas[operation]?.shape ?? {};
  const own = doc.query ?? {};
  const refused = Object.keys(own).filter((name) => !(name in shape));
  if (refused.length) throw new Error(`${operation} documents query parameters its validator refuses: ${refused.join(', ')}`);
  return Object.keys(shape).map((name) => {
    const description = own[name];
    if (description !== undefined) {
      // Documented here as a Flag, so it must be validated as one.
      if (shape[name] !== flagParam) throw new Error(`${operation}: ?${name} is not a flag; describe it in sharedQueryParameters`);
      return flagQuery(name, description);
    }
    const shared = sharedQueryParameters[name];
    if (!shared) throw new Error(`${operation}: query parameter ${name} is documented nowhere`);
    return shared;
  });
}

function responsesOf(route: Route, doc: OperationDoc): Json {
  // Every route refuses unknown query parameters (400) and may fail (500); secured ones also
  // authenticate (401, 403) and touch storage, which may throttle (503).
  const common: Status[] = route.public ? [400, 500] : [400, 401, 403, 500, 503];
  const statuses = [...common, ...(doc.statuses ?? [])];
  const twice = statuses.filter((status, i) => statuses.indexOf(status) !== i || status in doc.responses);
  if (twice.length) throw new Error(`${route.operation} gives statuses ${twice.join(', ')} twice`);
  const reused = Object.fromEntries(statuses.map((status) => [status, responseRef(statusResponses[status])]));
  const all: Record<string, Json> = { ...doc.responses, ...reused };
  return Object.fromEntries(
    Object.keys(all)
      .sort()
      .map((status) => [status, all[status]]),
  );
}
