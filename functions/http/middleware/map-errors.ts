import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { StrataError } from '../../../shared/errors.js';
import type { HttpEvent, HttpResponse } from '../types.js';

const THROTTLED = new Set(['ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded', 'SlowDown', 'TooManyRequestsException']);

function body(message: string, code: string, details?: Record<string, unknown>) {
  return JSON.stringify({ message, code, ...details });
}

/**
 * A registry client (docker, podman, skopeo) that gets 401 learns from this header where to get
 * a token: the registry's token endpoint, which takes the tenant token as a Basic password.
 */
function registryChallenge(event: HttpEvent, status: number): Record<string, string> {
  const path = event.rawPath ?? '';
  if (status !== 401 || !(path === '/v2' || path.startsWith('/v2/'))) return {};
  const host = event.headers?.host ?? event.requestContext?.domainName ?? 'localhost';
  const proto = event.headers?.['x-forwarded-proto'] ?? (event.requestContext?.domainName?.includes('.amazonaws.com') ? 'https' : 'http');
  return { 'www-authenticate': `Bearer realm="${proto}://${host}/v2/token",service="strata"`, 'docker-distribution-api-version': 'registry/2.0' };
}

/**
 * The one place errors become HTTP: typed domain errors carry their status; throttling is 503;
 * anything else is a 500 whose details go to the log, never to the client.
 */
export function mapErrors(): MiddlewareObj<HttpEvent, HttpResponse, Error, Context & { logger?: Logger }> {
  return {
    onError: (request) => {
      const error = request.error;
      const headers = { 'content-type': 'application/json' };
      if (error instanceof StrataError) {
        request.response = {
          statusCode: error.status,
          headers: { ...headers, ...registryChallenge(request.event, error.status) },
          body: body(error.message, error.code, error.status < 500 ? error.details : undefined),
        };
        return;
      }
      if (error && THROTTLED.has(error.name)) {
        request.response = { statusCode: 503, headers: { ...headers, 'retry-after': '1' }, body: body('storage is busy; retry shortly', 'unavailable') };
        return;
      }
      request.context.logger?.error('unhandled error', error as Error);
      request.response = { statusCode: 500, headers, body: body('internal error', 'internal') };
    },
  };
}
