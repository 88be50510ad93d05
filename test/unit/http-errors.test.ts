import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { ConflictError } from '../../shared/errors.js';
import type { Services } from '../../functions/composition.js';
import { createHandler } from '../../functions/http/create-handler.js';
import type { HttpEvent, Operation } from '../../functions/http/types.js';

/** The one error mapper: typed errors keep their status and message; anything else is a bare 500. */
const services = () => ({ config: { tenantClaim: 'tenant', logLevel: 'CRITICAL', inlineBodyLimit: 1024, presignSeconds: 60 } }) as unknown as Services;

function handlerThrowing(error: unknown) {
  const fail: Operation = async () => {
    throw error;
  };
  return createHandler('system', { health: fail, openapi: fail, systemDf: fail, sweep: fail, listEvents: fail }, services);
}

function event(routeKey: string, claims?: Record<string, string>): HttpEvent {
  return {
    version: '2.0',
    routeKey,
    rawPath: '/',
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    requestContext: { requestId: 'r1', http: { method: 'GET', path: '/' }, authorizer: claims ? { jwt: { claims } } : undefined },
  } as unknown as HttpEvent;
}

const context = { awsRequestId: 'a1' } as Context;

describe('error mapping', () => {
  it('a typed domain error keeps its status, message and code', async () => {
    const response = await handlerThrowing(new ConflictError('volume v1 is in use'))(event('GET /healthz'), context);
    expect(response.statusCode).toBe(409);
    expect(JSON.parse(response.body as string)).toEqual({ message: 'volume v1 is in use', code: 'conflict' });
  });

  it('an unexpected error is a 500 that says nothing about the internals', async () => {
    const secret = new Error('connect ECONNREFUSED 10.1.2.3:8000 at DynamoDBClient /opt/secret/path.js:12');
    const response = await handlerThrowing(secret)(event('GET /healthz'), context);
    expect(response.statusCode).toBe(500);
    expect(response.body).toBe(JSON.stringify({ message: 'internal error', code: 'internal' }));
    expect(response.body).not.toMatch(/ECONNREFUSED|secret|at /);
  });

  it('throttling is a 503 with Retry-After', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    const response = await handlerThrowing(throttled)(event('GET /healthz'), context);
    expect(response.statusCode).toBe(503);
    expect(response.headers['retry-after']).toBe('1');
  });

  it('a protected route without credentials is 401 and runs nothing', async () => {
    let ran = false;
    const handler = createHandler(
      'system',
      {
        health: async () => ({ statusCode: 200 }),
        openapi: async () => ({ statusCode: 200 }),
        systemDf: async () => ((ran = true), { statusCode: 200 }),
        sweep: async () => ({ statusCode: 200 }),
        listEvents: async () => ({ statusCode: 200 }),
      },
      services,
    );
    const response = await handler(event('GET /v1/system/df'), context);
    expect(response.statusCode).toBe(401);
    expect(ran).toBe(false);
    const forged = await handler(event('GET /v1/system/df', { tenant: 'bad tenant!' }), context);
    expect(forged.statusCode).toBe(403);
    expect(ran).toBe(false);
  });
});
