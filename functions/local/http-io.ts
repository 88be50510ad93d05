import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Context } from 'aws-lambda';
import type { HttpEvent, HttpResponse } from '../http/types.js';

/*
 * Between node's HTTP and Lambda's shapes: a request becomes an API Gateway HTTP API (payload
 * 2.0) event and a Lambda context, a handler's response goes back out (streamed where its body
 * is a stream).
 */

/** The body, or undefined once it passes `limit` (the rest is drained, not kept). */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
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

export function toEvent(req: IncomingMessage, url: URL, method: string, routeKey: string, pathParameters: Record<string, string>, body: Buffer, tenant: string | undefined): HttpEvent {
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
    // The bytes themselves, not base64 in a string: a 6 MB body stays 6 MB in memory.
    body: undefined,
    rawBody: body.length ? body : undefined,
    isBase64Encoded: false,
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

export function lambdaContext(name: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  return { awsRequestId: randomUUID(), functionName: `strata-${name}`, callbackWaitsForEmptyEventLoop: false, getRemainingTimeInMillis: () => deadline - Date.now() } as unknown as Context;
}

export async function respond(res: ServerResponse, response: HttpResponse, head: boolean) {
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

/** A JSON answer the server gives itself (no handler involved). */
export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
