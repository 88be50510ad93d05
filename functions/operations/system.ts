import { openApiDocument } from '../openapi/document.js';
import { EVENT_SETTLE_MS, MAX_EVENT_PAGE } from '../../shared/domain/events.js';
import { InvalidInputError } from '../../shared/errors.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';

let document: Record<string, unknown> | undefined;

/** Health, the OpenAPI document (imported, so the Lambda bundle carries it), disk usage, and a tenant's own sweep. */
export const systemOperations: Record<string, Operation> = {
  health: async () => json(200, { status: 'ok' }),
  openapi: async () => json(200, (document ??= openApiDocument())),
  systemDf: async ({ tenant, services }) => json(200, await services.engine.diskUsage(tenant)),
  sweep: async ({ tenant, services }) => json(200, await services.engine.sweeper.sweep(tenant)),
  listEvents: async ({ tenant, services, query }) => {
    const limit = query.limit === undefined ? undefined : Number(query.limit);
    if (limit !== undefined && (limit < 1 || limit > MAX_EVENT_PAGE)) throw new InvalidInputError(`limit must be from 1 to ${MAX_EVENT_PAGE}`);
    const page = await services.engine.events.list(tenant, { since: query.since, limit, before: Date.now() - EVENT_SETTLE_MS });
    return json(200, { events: page.events, cursor: page.cursor ?? null });
  },
};
