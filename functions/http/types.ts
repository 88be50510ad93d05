import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import type { Readable } from 'node:stream';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Services } from '../composition.js';

/** API Gateway HTTP API (payload v2) event, with the authorizer fields Strata reads. */
export type HttpEvent = APIGatewayProxyEventV2 & {
  /** The local server's body as bytes (API Gateway sends `body`, base64 for binary). */
  rawBody?: Buffer;
  requestContext: APIGatewayProxyEventV2['requestContext'] & {
    authorizer?: { jwt?: { claims?: Record<string, unknown> }; iam?: { accountId?: string } };
  };
};

/** A response before shaping: `body` may be JSON-able data, bytes or a stream. */
export interface HttpResult {
  statusCode: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** What to call the bytes if a large stream is spooled to a presigned URL. */
  fileName?: string;
  /** The client cannot follow a 303 (the docker CLI): stream where possible, else refuse past the inline limit. */
  noRedirect?: boolean;
}

/** The Lambda response after shaping (a Readable body only where the server streams). */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body?: string | Readable;
  isBase64Encoded?: boolean;
}

/** What an operation receives: the parsed request and the services. */
export interface RequestContext {
  readonly event: HttpEvent;
  readonly tenant: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly services: Services;
  readonly logger: Logger;
  /** The raw request body (empty when none). */
  body(): Buffer;
  /** The body parsed as JSON (an empty body is `{}`); 400 when it is not JSON. */
  json<T = Record<string, unknown>>(): T;
}

export type Operation = (request: RequestContext) => Promise<HttpResult>;

export type LambdaHandler = (event: HttpEvent, context: Context) => Promise<HttpResponse>;
