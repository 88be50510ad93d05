import type { ExpiryRequest } from '../../shared/domain/expiry.js';

/** The expiry fields of a create or update body, or undefined when it names none. */
export function expiryOf(body: ExpiryRequest): ExpiryRequest | undefined {
  const { expiresAt, ttlSeconds, extendOnWrite } = body;
  return expiresAt === undefined && ttlSeconds === undefined && extendOnWrite === undefined ? undefined : { expiresAt, ttlSeconds, extendOnWrite };
}
