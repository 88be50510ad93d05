import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { Context } from 'aws-lambda';
import { ConflictError, NotFoundError, RangeNotSatisfiableError } from '../../shared/errors.js';
import type { Services } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import type { HttpEvent, HttpResponse, LambdaHandler, Operation } from '../http/types.js';
import { containerOperations } from '../operations/containers.js';
import { fileOperations } from '../operations/files.js';
import { imageOperations } from '../operations/images.js';
import { systemOperations } from '../operations/system.js';
import { uploadOperations } from '../operations/uploads.js';
import { volumeOperations } from '../operations/volumes.js';
import { dockerOperations } from '../docker/operations.js';
import { DEFAULT_ROUTE, routeKeyOf, routes, type HandlerName, type Route } from '../routes.js';
import { BLOB_PATH, verifyBlobUrl } from './blob-urls.js';

const operationsOf: Record<HandlerName, Record<string, Operation>> = {
  images: imageOperations,
  containers: containerOperations,
  files: fileOperations,
  volumes: volumeOperations,
  system: systemOperations,
  uploads: uploadOperations,
  docker: dockerOperations,
};

export interface LocalServerOptions {
  readonly services: Services;
  readonly port: number;
  readonly host: string;
  /** Bearer token -> tenant. Undefined: one tenant, `local`, and only on loopback. */
  readonly tokens?: ReadonlyMap<string, string>;
  /** Secret behind the server's own presigned blob URLs. */
  readonly signingKey: Buffer;
  /** Largest request body taken inline; larger ones go through /v1/uploads. */
  readonly maxBodyBytes: number;
  /** Each request's deadline, as a Lambda function's timeout. @default 15 minutes (Lambda's maximum) */
  readonly requestTimeoutMs?: number;
}

interface CompiledRoute {
  readonly route: Route;
  readonly pattern: RegExp;
  readonly names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/\{(\w+)(\+?)\}/g, (_, name: string, greedy: string) => {
    names.push(name);
    return greedy ? '(.+)' : '([^/]+)';
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

/**
 * The whole API on one machine: each HTTP request becomes an API Gateway HTTP API (payload v2)
 * event for the very handlers Lambda runs, and their response goes back out, streamed.
 */
export async function startLocalServer(options: LocalServerOptions): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  if (!options.tokens && !['127.0.0.1', 'localhost', '::1'].includes(options.host)) {
    throw new Error('without a token file (STRATA_TOKENS_FILE) the local server only listens on loopback');
  }
  const handlers = new Map<HandlerName, LambdaHandler>();
  for (const name of Object.keys(operationsOf) as HandlerName[])
    handlers.set(
      name,
      createHandler(name, operationsOf[name], () => options.services),
    );
  // Literal paths before parameterised ones, so /v1/volumes/prune never reads as a volume name.
  const compiled = routes
    .filter((r) => r.path !== DEFAULT_ROUTE)
    .map(compile)
    .sort((a, b) => a.names.length - b.names.length);
  const fallbackRoute = routes.find((r) => r.path === DEFAULT_ROUTE);
  const fallback: CompiledRoute | undefined = fallbackRoute && { route: fallbackRoute, pattern: /^/, names: [] };

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      console.error(JSON.stringify({ level: 'ERROR', message: 'local server failure', error: String(error) }));
      if (!res.headersSent) send(res, 500, { message: 'internal error', code: 'internal' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const method = (req.method ?? 'GET').toUpperCase();
    // URL parsing resolves `..` and `%2e%2e` segments, which would let a path reach another
    // route (another container) than the one it names; such paths are refused instead.
    if (hasDotSegment(req.url ?? '/')) {
      req.resume();
      return send(res, 400, { message: 'path segments . and .. (plain or percent-encoded) are not allowed in a URL', code: 'invalid_input' });
    }
    const url = new URL(req.url ?? '/', 'http://local');
    if (url.pathname.startsWith(BLOB_PATH)) return blobUrl(req, res, method, url);
    const matches = compiled.map((c) => ({ c, m: c.pattern.exec(url.pathname) })).filter((x) => x.m);
    // A path no route matches goes to the default route, as in API Gateway.
    const hit = matches.find((x) => x.c.route.method === method) ?? (matches.length === 0 && fallback ? { c: fallback, m: fallback.pattern.exec(url.pathname) } : undefined);
    if (!hit) {
      if (matches.length)
        return send(res, 405, { message: `${method} is not allowed on ${url.pathname}`, code: 'method_not_allowed' }, { allow: [...new Set(matches.map((x) => x.c.route.method))].join(', ') });
      return send(res, 404, { message: `no route for ${method} ${url.pathname}`, code: 'not_found' });
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > options.maxBodyBytes) {
      req.resume();
      return send(res, 413, { message: `bodies over ${options.maxBodyBytes} bytes go through POST /v1/uploads`, code: 'too_large' });
    }
    let body: Buffer | undefined;
    try {
      body = await readBody(req, options.maxBodyBytes);
    } catch (error) {
      // The client went away mid-body: nothing was started, nobody is left to answer.
      if (req.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') return res.destroy();
      throw error;
    }
    if (!body) return send(res, 413, { message: `bodies over ${options.maxBodyBytes} bytes go through POST /v1/uploads`, code: 'too_large' });
    const pathParameters: Record<string, string> = {};
    hit.c.names.forEach((name, i) => {
      pathParameters[name] = hit.m![i + 1];
    });
    const event = toEvent(req, url, method, routeKeyOf(hit.c.route), pathParameters, body, tenantOf(req));
    const response = await handlers.get(hit.c.route.handler)!(event, lambdaContext(hit.c.route.handler, options.requestTimeoutMs ?? 15 * 60_000));
    await respond(res, response, method === 'HEAD');
  }

  function tenantOf(req: IncomingMessage): string | undefined {
    if (!options.tokens) return 'local';
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return match ? options.tokens.get(match[1].trim()) : undefined;
  }

  async function blobUrl(req: IncomingMessage, res: ServerResponse, method: string, url: URL) {
    const key = verifyBlobUrl(options.signingKey, method === 'HEAD' ? 'GET' : method, url.pathname, url.searchParams);
    if (!key) {
      req.resume();
      return send(res, 403, { message: 'the URL is invalid or has expired', code: 'forbidden' });
    }
    const blobs = options.services.blobs;
    try {
      if (method === 'PUT') {
        const { size } = await blobs.put(key, req);
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

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function hasDotSegment(rawUrl: string): boolean {
  const path = rawUrl.split('?')[0];
  return path.split('/').some((segment) => /^(\.|%2e){1,2}$/i.test(segment));
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function toEvent(req: IncomingMessage, url: URL, method: string, routeKey: string, pathParameters: Record<string, string>, body: Buffer, tenant: string | undefined): HttpEvent {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(',') : value;
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters,
    body: body.length ? body.toString('base64') : undefined,
    isBase64Encoded: body.length > 0,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: { method, path: url.pathname, protocol: `HTTP/${req.httpVersion}`, sourceIp: req.socket.remoteAddress ?? '', userAgent: headers['user-agent'] ?? '' },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
      // The same shape API Gateway's JWT authorizer produces, so handlers read one field.
      authorizer: tenant ? { jwt: { claims: { tenant }, scopes: [] } } : undefined,
    },
  } as unknown as HttpEvent;
}

function lambdaContext(name: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return { awsRequestId: randomUUID(), functionName: `strata-${name}`, callbackWaitsForEmptyEventLoop: false, getRemainingTimeInMillis: () => deadline - Date.now() } as unknown as Context;
}

async function respond(res: ServerResponse, response: HttpResponse, head: boolean) {
  const headers = { ...response.headers };
  const body = response.body;
  if (body instanceof Readable) {
    res.writeHead(response.statusCode, headers);
    if (head) {
      body.destroy();
      return res.end();
    }
    body.on('error', () => res.destroy());
    // A client that goes away stops the source too (a held-open stream would poll forever).
    res.on('close', () => body.destroy());
    body.pipe(res);
    return;
  }
  const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(body, response.isBase64Encoded ? 'base64' : 'utf8');
  if (!('content-length' in headers) || !head) headers['content-length'] = String(bytes.length);
  res.writeHead(response.statusCode, headers);
  res.end(head ? undefined : bytes);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
