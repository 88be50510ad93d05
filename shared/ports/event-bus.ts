import type { StrataEvent } from '../domain/events.js';

/** Where events go out to integrators: EventBridge in the cloud. */
export interface EventBus {
  /**
   * Publishes `events` in order and answers how many, counted from the first, were accepted.
   * Stops at the first one refused, so a retry from there keeps the order (and repeats no
   * event that was accepted before it). Rejects, with the transport's error, only when not
   * even the first could be sent; after part of the batch went out it answers that part.
   */
  publish(events: readonly StrataEvent[]): Promise<number>;
}
