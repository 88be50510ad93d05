import { openApiDocument } from '../openapi/document.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';

let document: Record<string, unknown> | undefined;

/** Health, the OpenAPI document (imported, so the Lambda bundle carries it), disk usage, and a tenant's own sweep. */
export const systemOperations: Record<string, Operation> = {
  health: async () => json(200, { status: 'ok' }),
  openapi: async () => json(200, (document ??= openApiDocument())),
  systemDf: async ({ tenant, services }) => json(200, await services.engine.diskUsage(tenant)),
  sweep: async ({ tenant, services }) => json(200, await services.engine.sweeper.sweep(tenant)),
};
