import { createHash, createHmac } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EVENT_SETTLE_MS, type EventLog, type StrataEvent } from '../../shared/domain/events.js';
import { checkTenant } from '../../shared/keys.js';

/** One subscriber: every event of `tenant` is POSTed to `url`, signed with `secret`. */
export interface Webhook {
  readonly url: string;
  readonly secret: string;
  readonly tenant: string;
}

/** A JSON file `{ "webhooks": [{ "url": "...", "secret": "...", "tenant": "local" }] }` (STRATA_WEBHOOKS_FILE). */
export async function readWebhooks(path: string): Promise<Webhook[]> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as { webhooks?: unknown };
  if (!Array.isArray(parsed.webhooks)) throw new Error(`${path} must hold {"webhooks": [{"url", "secret", "tenant"}]}`);
  return parsed.webhooks.map((hook, i) => {
    const { url, secret, tenant = 'local' } = (hook ?? {}) as Record<string, unknown>;
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) throw new Error(`${path}: webhooks[${i}].url must be an http(s) URL`);
    if (typeof secret !== 'string' || secret.length < 16) throw new Error(`${path}: webhooks[${i}].secret must be a string of at least 16 characters`);
    return { url, secret, tenant: checkTenant(String(tenant)) };
  });
}

/**
 * The signature a receiver checks: HMAC-SHA256 of `<timestamp>.<body>` with the shared secret,
 * hex, as `X-Strata-Signature: sha256=<hex>`. The timestamp (seconds, `X-Strata-Timestamp`) is
 * signed too, so a receiver can refuse replays of old deliveries.
 */
export function signature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface DeliveryOptions {
  /** How often an idle subscriber looks for new events. @default 1000 */
  readonly pollMs?: number;
  /** The first retry's delay, doubled per failure up to a minute. @default 1000 */
  readonly retryMs?: number;
  /** A delivery that takes longer failed. @default 10000 */
  readonly timeoutMs?: number;
  readonly log?: (message: string) => void;
}

/**
 * Delivers the event feed to webhooks, at least once and in order: one event at a time per
 * subscriber, the next only after a 2xx, retried with backoff until it succeeds. Each
 * subscriber's cursor is kept in the data folder, so a restart resumes where delivery stopped
 * (an event may then arrive twice, with the same id: receivers deduplicate by `id`).
 */
export class WebhookDelivery {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly wake = new Set<() => void>();

  constructor(
    private readonly events: EventLog,
    private readonly hooks: readonly Webhook[],
    private readonly stateDir: string,
    private readonly options: DeliveryOptions = {},
  ) {}

  async start(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true });
    for (const hook of this.hooks) this.loops.push(this.run(hook));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.wake) wake();
    await Promise.all(this.loops);
  }

  private async run(hook: Webhook): Promise<void> {
    const cursorFile = join(this.stateDir, `${createHash('sha256').update(`${hook.tenant} ${hook.url}`).digest('hex').slice(0, 32)}.cursor`);
    let cursor = await readFile(cursorFile, 'utf8').catch(() => undefined);
    let failures = 0;
    while (!this.stopped) {
      let page: StrataEvent[] = [];
      try {
        page = (await this.events.list(hook.tenant, { since: cursor, limit: 100, before: Date.now() - EVENT_SETTLE_MS })).events;
      } catch (error) {
        this.options.log?.(`webhook ${hook.url}: reading events failed: ${(error as Error).message}`);
      }
      for (const event of page) {
        while (!this.stopped && !(await this.deliver(hook, event))) {
          failures++;
          await this.sleep(Math.min(60_000, (this.options.retryMs ?? 1000) * 2 ** (failures - 1)));
        }
        if (this.stopped) return;
        failures = 0;
        cursor = event.id;
        await writeFile(`${cursorFile}.tmp`, cursor);
        await rename(`${cursorFile}.tmp`, cursorFile);
      }
      if (page.length === 0) await this.sleep(this.options.pollMs ?? 1000);
    }
  }

  private async deliver(hook: Webhook, event: StrataEvent): Promise<boolean> {
    const body = JSON.stringify(event);
    const timestamp = String(Math.floor(Date.now() / 1000));
    try {
      const response = await fetch(hook.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-strata-event-id': event.id,
          'x-strata-event-type': event.type,
          'x-strata-timestamp': timestamp,
          'x-strata-signature': signature(hook.secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
      await response.body?.cancel();
      if (response.ok) return true;
      this.options.log?.(`webhook ${hook.url}: event ${event.id} answered ${response.status}; retrying`);
    } catch (error) {
      this.options.log?.(`webhook ${hook.url}: event ${event.id} failed (${(error as Error).message}); retrying`);
    }
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.add(done);
    });
  }
}
