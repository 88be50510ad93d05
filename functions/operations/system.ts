import { readFileSync } from 'node:fs';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';

let openapi: unknown;

/** Health, the OpenAPI document, disk usage, and a tenant's own sweep. */
export const systemOperations: Record<string, Operation> = {
  health: async () => json(200, { status: 'ok' }),
  openapi: async () => json(200, (openapi ??= JSON.parse(readFileSync(new URL('../openapi.json', import.meta.url), 'utf8')))),
  systemDf: async ({ tenant, services }) => json(200, await services.engine.diskUsage(tenant)),
  sweep: async ({ tenant, services }) => json(200, await services.engine.sweeper.sweep(tenant)),
};
