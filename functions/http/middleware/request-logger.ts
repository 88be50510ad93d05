import type { Logger } from '@aws-lambda-powertools/logger';
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { HttpEvent, HttpResponse } from '../types.js';

export interface RequestLoggerOptions {
  readonly logger: Logger;
}

const defaults = { logger: undefined as unknown as Logger };

/** One structured JSON log line per request, with its request id, route, status and duration. */
export function requestLogger(options: Partial<RequestLoggerOptions> = {}): MiddlewareObj<HttpEvent, HttpResponse, Error, Context & { logger?: Logger }> {
  const { logger } = { ...defaults, ...options };
  const started = new WeakMap<object, number>();
  const line = (event: HttpEvent, statusCode: number, start: number | undefined) =>
    logger.info('request', { route: event.routeKey, status: statusCode, ms: start === undefined ? undefined : Date.now() - start });
  return {
    before: (request) => {
      started.set(request.event, Date.now());
      logger.resetKeys?.();
      logger.appendKeys({ requestId: request.event.requestContext?.requestId ?? request.context.awsRequestId });
      request.context.logger = logger;
    },
    after: (request) => {
      line(request.event, request.response?.statusCode ?? 0, started.get(request.event));
    },
    onError: (request) => {
      if (request.response) line(request.event, request.response.statusCode, started.get(request.event));
    },
  };
}
