/** What the schedule sends the sweep function: fan the sweep out, one event per tenant on the bus. */
export const SWEEP_EVENT = { source: 'strata.sweep' } as const;

/** What each tenant's sweep arrives as: an EventBridge rule on the bus sends it back to the sweep function. */
export const TENANT_SWEEP = { source: 'strata.internal', detailType: 'sweep.tenant' } as const;
