import type { Context } from 'aws-lambda';
import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import type { HttpEvent } from '../http/types.js';
import { systemOperations } from '../operations/system.js';

const http = createHandler('system', systemOperations, cloudServices);

/** Besides its routes, the system function runs the scheduled sweep over every tenant. */
export const handler = async (event: HttpEvent | { source: 'strata.sweep' }, context: Context) => {
  if ('source' in event && event.source === 'strata.sweep') {
    const { engine } = cloudServices();
    const reports: Record<string, unknown> = {};
    for (const tenant of await engine.sweeper.tenants()) reports[tenant] = await engine.sweeper.sweep(tenant);
    return reports;
  }
  return http(event as HttpEvent, context);
};
