import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Services } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import type { LambdaHandler, Operation } from '../http/types.js';
import { containerOperations } from '../operations/containers.js';
import { fileOperations } from '../operations/files.js';
import { imageOperations } from '../operations/images.js';
import { systemOperations } from '../operations/system.js';
import { uploadOperations } from '../operations/uploads.js';
import { volumeOperations } from '../operations/volumes.js';
import { dockerOperations } from '../docker/operations.js';
import { DEFAULT_ROUTE, routeKeyOf, routes, type HandlerName, type Route } from '../routes.js';
import { UPLOAD_SUFFIX } from '../../shared/keys.js';
import { type ObjectCreatedEvent, uploadLanded } from '../handlers/upload-landed.js';
import { BLOB_PATH, serveBlobUrl } from './blob-urls.js';
import { lambdaContext, readBody, respond, send, toEvent } from './http-io.js';

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
  /** The same for the Docker Engine API, whose CLI cannot use uploads. @default maxBodyBytes */
  readonly maxDockerBodyBytes?: number;
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
    if (url.pathname.startsWith(BLOB_PATH)) return serveBlobUrl(req, res, method, url, options.signingKey, options.services.blobs, notifyStored);
    const matches = compiled.map((c) => ({ c, m: c.pattern.exec(url.pathname) })).filter((x) => x.m);
    // A path no route matches goes to the default route, as in API Gateway.
    const hit = matches.find((x) => x.c.route.method === method) ?? (matches.length === 0 && fallback ? { c: fallback, m: fallback.pattern.exec(url.pathname) } : undefined);
    if (!hit) {
      if (matches.length)
        return send(res, 405, { message: `${method} is not allowed on ${url.pathname}`, code: 'method_not_allowed' }, { allow: [...new Set(matches.map((x) => x.c.route.method))].join(', ') });
      return send(res, 404, { message: `no route for ${method} ${url.pathname}`, code: 'not_found' });
    }
    const limit = hit.c.route.handler === 'docker' ? (options.maxDockerBodyBytes ?? options.maxBodyBytes) : options.maxBodyBytes;
    const tooLarge = () => send(res, 413, { message: `bodies over ${limit} bytes go through POST /v1/uploads`, code: 'too_large' });
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      req.resume();
      return tooLarge();
    }
    let body: Buffer | undefined;
    try {
      body = await readBody(req, limit);
    } catch (error) {
      // The client went away mid-body: nothing was started, nobody is left to answer.
      if (req.destroyed || (error as NodeJS.ErrnoException).code === 'ECONNRESET') return res.destroy();
      throw error;
    }
    if (!body) return tooLarge();
    const pathParameters: Record<string, string> = {};
    hit.c.names.forEach((name, i) => {
      pathParameters[name] = hit.m![i + 1];
    });
    const event = toEvent(req, url, method, routeKeyOf(hit.c.route), pathParameters, body, tenantOf(req));
    // A client that goes away before its answer is complete cancels the work behind it.
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const context = Object.assign(lambdaContext(hit.c.route.handler, options.requestTimeoutMs ?? 15 * 60_000), { clientGone: gone.signal });
    const response = await handlers.get(hit.c.route.handler)!(event, context);
    await respond(res, response, method === 'HEAD');
  }

  // S3's Object Created event, here: the same handler, with the event EventBridge delivers.
  const landed = uploadLanded(() => options.services);
  async function notifyStored(key: string, size: number): Promise<void> {
    if (!key.endsWith(UPLOAD_SUFFIX)) return;
    const event = { source: 'aws.s3', 'detail-type': 'Object Created', detail: { bucket: { name: 'local' }, object: { key, size } } } as unknown as ObjectCreatedEvent;
    // The bytes are stored either way; a failure leaves the upload for `?upload=` to name.
    await landed(event).catch((error) => console.error(JSON.stringify({ level: 'ERROR', message: 'upload notification failed', key, error: String(error) })));
  }

  /** The tenant of a bearer token, or of a Basic password that is one (how `docker login` sends it to the registry's token endpoint). */
  function tenantOf(req: IncomingMessage): string | undefined {
    if (!options.tokens) return 'local';
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (bearer) return options.tokens.get(bearer[1].trim());
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const password = basic ? Buffer.from(basic[1].trim(), 'base64').toString('utf8').split(':').slice(1).join(':') : undefined;
    return password ? options.tokens.get(password) : undefined;
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
