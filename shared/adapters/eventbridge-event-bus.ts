import { type EventBridgeClient, PutEventsCommand, type PutEventsCommandOutput, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import type { StrataEvent } from '../domain/events.js';
import type { EventBus } from '../ports/event-bus.js';

/** EventBridge `source` of every Strata event; `detail-type` is the event's type. */
export const EVENT_SOURCE = 'strata';

/** PutEvents takes at most 10 entries and 256 KiB per request. */
const MAX_ENTRIES = 10;
const MAX_REQUEST_BYTES = 256 * 1024;

/** Publishes to one bus. `detail` is the whole event as the feed shows it (id, type, tenant, time, detail). */
export class EventBridgeEventBus implements EventBus {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly busName: string,
  ) {}

  async publish(events: readonly StrataEvent[]): Promise<number> {
    let accepted = 0;
    for (const batch of batches(events.map((e) => this.entryOf(e)))) {
      let answer: PutEventsCommandOutput;
      try {
        answer = await this.client.send(new PutEventsCommand({ Entries: batch }));
      } catch (error) {
        if (accepted === 0) throw error;
        return accepted;
      }
      // Entries answer in request order; one with an ErrorCode was not published.
      const refused = (answer.Entries ?? []).findIndex((entry) => entry.ErrorCode !== undefined);
      if (refused >= 0) return accepted + refused;
      accepted += batch.length;
    }
    return accepted;
  }

  private entryOf(event: StrataEvent): PutEventsRequestEntry {
    return {
      EventBusName: this.busName,
      Source: EVENT_SOURCE,
      DetailType: event.type,
      Time: new Date(event.time),
      Detail: JSON.stringify({ id: event.id, type: event.type, tenant: event.tenant, time: event.time, detail: event.detail }),
    };
  }
}

/** How EventBridge counts an entry against the request limit (its documented formula, roughly). */
function entryBytes(entry: PutEventsRequestEntry): number {
  return 14 + Buffer.byteLength(entry.Source ?? '') + Buffer.byteLength(entry.DetailType ?? '') + Buffer.byteLength(entry.Detail ?? '');
}

function batches(entries: readonly PutEventsRequestEntry[]): PutEventsRequestEntry[][] {
  const out: PutEventsRequestEntry[][] = [];
  let current: PutEventsRequestEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entryBytes(entry);
    if (current.length === MAX_ENTRIES || (current.length > 0 && bytes + size > MAX_REQUEST_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length) out.push(current);
  return out;
}
