import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { ForbiddenError, UnauthorizedError } from '../../../shared/errors.js';
import { checkTenant } from '../../../shared/keys.js';
import type { HttpEvent, HttpResponse } from '../types.js';

export interface AuthenticateOptions {
  /** The JWT claim naming the tenant. */
  readonly tenantClaim: string | (() => string);
  /** Route keys that answer without credentials. */
  readonly publicRoutes: ReadonlySet<string>;
}

const defaults: AuthenticateOptions = { tenantClaim: 'tenant', publicRoutes: new Set() };

/**
 * Finds the tenant the request acts for: a JWT claim (API Gateway's JWT authorizer, or the local
 * server's token check, which fills in the same field), else the calling AWS account under IAM
 * auth. A request without one gets 401 and touches nothing.
 */
export function authenticate(options: Partial<AuthenticateOptions> = {}): MiddlewareObj<HttpEvent, HttpResponse, Error, Context & { tenant?: string }> {
  const { tenantClaim, publicRoutes } = { ...defaults, ...options };
  return {
    before: (request) => {
      if (publicRoutes.has(request.event.routeKey)) return;
      const authorizer = request.event.requestContext?.authorizer;
      const claimName = typeof tenantClaim === 'function' ? tenantClaim() : tenantClaim;
      const claim = authorizer?.jwt?.claims?.[claimName] ?? authorizer?.iam?.accountId;
      if (typeof claim !== 'string' || claim === '') throw new UnauthorizedError('missing or invalid credentials');
      try {
        request.context.tenant = checkTenant(claim);
      } catch {
        throw new ForbiddenError('the credentials name no valid tenant');
      }
    },
  };
}
