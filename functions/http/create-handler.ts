import { Logger } from '@aws-lambda-powertools/logger';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { DeadlineExceededError, InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { Services } from '../composition.js';
import { DEFAULT_ROUTE, routeKeyOf, routes, type HandlerName } from '../routes.js';
import { authenticate } from './middleware/authenticate.js';
import { mapErrors } from './middleware/map-errors.js';
import { normalizeHeaders } from './middleware/normalize-headers.js';
import { requestLogger } from './middleware/request-logger.js';
import { requestMetrics } from './middleware/request-metrics.js';
import { RequestCancelledError, runCancellable } from './cancellation.js';
import { shapeResponse } from './shape-response.js';
import { tracer } from './tracing.js';
import { checkQuery } from './schemas.js';
import type { HttpEvent, HttpResponse, LambdaHandler, Operation, RequestContext } from './types.js';

/**
 * One Lambda handler on the shared middleware stack: normalise headers, log, authenticate,
 * dispatch by API Gateway's route key to an operation, shape the response, map errors.
 * The local server builds its handlers with this very function.
 *
 * The operation and the shaping of its response run under the deadline: when it passes (or the
 * local server's client goes away, `context.clientGone`), the request is answered and the
 * storage work behind it is stopped (see cancellation.ts).
 */
export function createHandler(name: HandlerName, operations: Readonly<Record<string, Operation>>, services: () => Services): LambdaHandler {
  const own = routes.filter((r) => r.handler === name);
  const byRouteKey = new Map(own.map((r) => [routeKeyOf(r), operations[r.operation]]));
  const operationNames = new Map(own.map((r) => [routeKeyOf(r), r.operation]));
  for (const r of own) if (!operations[r.operation]) throw new Error(`handler ${name} lacks operation ${r.operation}`);
  const publicRoutes = new Set(routes.filter((r) => r.public).map(routeKeyOf));
  const logger = new Logger({ serviceName: 'strata' });
  let leveled = false;

  const dispatch = async (event: HttpEvent, context: HandlerContext) => {
    if (!leveled) {
      logger.setLogLevel(services().config.logLevel as Parameters<Logger['setLogLevel']>[0]);
      leveled = true;
    }
    const operation = byRouteKey.get(event.routeKey);
    if (!operation) throw new NotFoundError(`no route ${event.routeKey}`);
    tracer.putAnnotation('operation', operationNames.get(event.routeKey) ?? 'unrouted');
    let raw: Buffer | undefined;
    const query = Object.fromEntries(Object.entries(event.queryStringParameters ?? {}).filter(([, v]) => v !== undefined)) as Record<string, string>;
    // The Docker Engine API, like dockerd, ignores query parameters it does not know.
    if (event.routeKey !== DEFAULT_ROUTE) checkQuery(operationNames.get(event.routeKey)!, query);
    const request: RequestContext = {
      event,
      tenant: context.tenant ?? '',
      params: decodeParams(event.pathParameters ?? {}),
      query,
      headers: event.headers as Record<string, string>,
      services: services(),
      logger: context.logger ?? logger,
      body: () => (raw ??= event.rawBody ?? (event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : Buffer.alloc(0))),
      json: <T>() => {
        const text = request.body().toString('utf8');
        if (!text.trim()) return {} as T;
        let parsed: unknown;
        try {
          // No key may reach an object's prototype, whichever field it is in.
          parsed = JSON.parse(text, (key, value) => {
            if (key === '__proto__') throw new InvalidInputError('the key "__proto__" is not allowed in a JSON body');
            return value;
          });
        } catch (error) {
          if (error instanceof InvalidInputError) throw error;
          throw new InvalidInputError('the body is not valid JSON');
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidInputError('the body must be a JSON object');
        return parsed as T;
      },
    };
    // Its own deadline: middy's abort signal is one for all requests in flight in the process.
    const deadline = new AbortController();
    const timer = context.getRemainingTimeInMillis ? setTimeout(() => deadline.abort(), Math.max(0, context.getRemainingTimeInMillis() - DEADLINE_MARGIN_MS)) : undefined;
    const cancelled = context.clientGone ? AbortSignal.any([deadline.signal, context.clientGone]) : deadline.signal;
    try {
      return await runCancellable(cancelled, async () => shapeResponse(await operation(request), request.services, context.tenant));
    } catch (error) {
      // Cut off at the deadline: the answer middy gives then, whichever of the two comes first.
      if (error instanceof RequestCancelledError) throw deadlineExceeded();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };

  // Answered a second before the function's own deadline (Lambda's, or the local server's), so
  // a request that cannot finish still gets a JSON answer instead of a dropped connection.
  return (
    middy<HttpEvent, HttpResponse, Error, HandlerContext>({
      timeoutEarlyInMillis: DEADLINE_MARGIN_MS,
      timeoutEarlyResponse: () => {
        throw deadlineExceeded();
      },
    })
      // Responses are bodies of files and archives: traces keep their status, never their bytes.
      .use(captureLambdaHandler(tracer, { captureResponse: false }))
      .use(requestMetrics({ calls: () => services().calls, operationOf: (event) => operationNames.get(event.routeKey) ?? 'unrouted' }))
      .use(normalizeHeaders())
      .use(requestLogger({ logger }))
      .use(mapErrors())
      .use(authenticate({ tenantClaim: () => services().config.tenantClaim, publicRoutes }))
      .handler(dispatch) as unknown as LambdaHandler
  );
}

const DEADLINE_MARGIN_MS = 1000;

const deadlineExceeded = () => new DeadlineExceededError('the request did not finish within its deadline; a change it made may or may not have taken effect');

/** Lambda's context, with what the middleware adds and what the local server passes. */
type HandlerContext = Context & { tenant?: string; logger?: Logger; clientGone?: AbortSignal };

function decodeParams(params: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      throw new InvalidInputError(`path parameter ${k} is not valid percent-encoding`);
    }
  }
  return out;
}
