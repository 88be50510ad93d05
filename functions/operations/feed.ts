import { optionalInt } from '../http/parse.js';

/** A feed request's cursor, page size and wait (`?wait=` in seconds) as the engine takes them. */
export function feedOptions(query: Readonly<Record<string, string>>): { after?: number | 'latest'; limit?: number; waitMs?: number } {
  return {
    after: query.after === 'latest' ? 'latest' : optionalInt(query.after, 'after'),
    limit: optionalInt(query.limit, 'limit'),
    waitMs: query.wait === undefined ? undefined : Math.round(Number(query.wait) * 1000),
  };
}
