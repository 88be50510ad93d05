import { Idempotency, type IdempotencyOps } from '../../shared/domain/idempotency.js';
import type { RequestContext } from '../http/types.js';

/**
 * Runs `work` once per `Idempotency-Key`, when the request carries one: a retry of the same
 * request answers the first one's result with `Idempotent-Replayed: true`, a different request
 * under a used key is 422, and without the header every call does the work.
 */
export async function idempotently<T>(request: RequestContext, work: (recordAlso?: (result: T) => IdempotencyOps) => Promise<T>): Promise<{ result: T; headers: Record<string, string> }> {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return { result: await work(), headers: {} };
  const key = Idempotency.checkKey(header);
  const { event } = request;
  const fingerprint = Idempotency.fingerprint(event.routeKey, JSON.stringify(request.params), JSON.stringify(Object.entries(request.query).sort()), request.body());
  const { result, replayed } = await request.services.engine.idempotency.once(request.tenant, key, fingerprint, work);
  return { result, headers: replayed ? { 'idempotent-replayed': 'true' } : {} };
}
