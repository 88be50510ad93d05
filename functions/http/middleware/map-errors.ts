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
 * The one place errors become HTTP: typed domain errors carry their status; throttling is 503;
 * anything else is a 500 whose details go to the log, never to the client.
 */
export function mapErrors(): MiddlewareObj<HttpEvent, HttpResponse, Error, Context & { logger?: Logger }> {
  return {
    onError: (request) => {
      const error = request.error;
      const headers = { 'content-type': 'application/json' };
      if (error instanceof StrataError) {
        request.response = { statusCode: error.status, headers, body: body(error.message, error.code, error.status < 500 ? error.details : undefined) };
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
