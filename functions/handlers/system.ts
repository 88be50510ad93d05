import { PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import type { Context } from 'aws-lambda';
import { cloudEventBridge, cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import type { HttpEvent } from '../http/types.js';
import { systemOperations } from '../operations/system.js';
import { SWEEP_EVENT, TENANT_SWEEP } from '../sweep-events.js';

const http = createHandler('system', systemOperations, cloudServices);

type TenantSweepEvent = { source: typeof TENANT_SWEEP.source; 'detail-type': typeof TENANT_SWEEP.detailType; detail: { tenant: string } };

/**
 * Besides its routes, the system function runs the sweep: the schedule's event lists the
 * tenants and puts one `sweep.tenant` event per tenant on the bus (10 per request), and each of
 * those comes back as its own invocation that sweeps that tenant alone, so no invocation walks
 * every tenant.
 */
export const handler = async (event: HttpEvent | typeof SWEEP_EVENT | TenantSweepEvent, context: Context) => {
  if ('source' in event && event.source === SWEEP_EVENT.source) {
    const tenants = await cloudServices().engine.sweeper.tenants();
    const { client, busName } = cloudEventBridge();
    const entries: PutEventsRequestEntry[] = tenants.map((tenant) => ({ EventBusName: busName, Source: TENANT_SWEEP.source, DetailType: TENANT_SWEEP.detailType, Detail: JSON.stringify({ tenant }) }));
    let failed = 0;
    for (let i = 0; i < entries.length; i += 10) failed += (await client.send(new PutEventsCommand({ Entries: entries.slice(i, i + 10) }))).FailedEntryCount ?? 0;
    // A tenant whose event was refused is swept next time; saying so makes the invocation fail visibly.
    if (failed) throw new Error(`${failed} of ${entries.length} tenant sweeps could not be queued`);
    return { tenants: tenants.length };
  }
  if ('source' in event && event.source === TENANT_SWEEP.source) return cloudServices().engine.sweeper.sweep(event.detail.tenant);
  return http(event as HttpEvent, context);
};
