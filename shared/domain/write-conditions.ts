import type { Condition } from '../ports/metadata-store.js';
import type { Resolved } from './resolver.js';

/** How often a change is recomputed after losing a race with another writer. */
export const ATTEMPTS = 5;

/** The transaction fails if the node changed since it was resolved. */
export function unchanged(r: Resolved): Condition[] {
  if (!r.top) return [{ kind: 'absent' }];
  if (r.top.type === 'whiteout') return [{ kind: 'equals', field: 't', value: 'w' }];
  return [{ kind: 'equals', field: 'e', value: r.top.etag }];
}
