import { Readable } from 'node:stream';
import { EVENT_SETTLE_MS, type EventLog, type StrataEvent } from '../../shared/domain/events.js';
import { InvalidInputError } from '../../shared/errors.js';
import { Filters } from './filters.js';
import type { DockerRoute } from './router.js';

/** One message of the Engine API's `/events` stream. */
export interface DockerEventMessage {
  readonly Type: 'image' | 'container' | 'volume';
  readonly Action: string;
  readonly Actor: { readonly ID: string; readonly Attributes: Readonly<Record<string, string>> };
  readonly scope: 'local';
  readonly time: number;
  readonly timeNano: number;
  /** The pre-1.22 fields the CLI still reads for images and containers. */
  readonly status?: string;
  readonly id?: string;
  readonly from?: string;
}

/** Docker's messages for one Strata event: the actions dockerd emits for the same change. */
export function dockerMessages(event: StrataEvent): DockerEventMessage[] {
  const d = event.detail as Record<string, unknown>;
  const at = { scope: 'local' as const, time: Math.floor(event.time / 1000), timeNano: event.time * 1_000_000 };
  const image = (action: string, id: string, attributes: Record<string, string>): DockerEventMessage => ({
    status: action,
    id,
    Type: 'image',
    Action: action,
    Actor: { ID: id, Attributes: attributes },
    ...at,
  });
  const container = (action: string, attributes: Record<string, string>): DockerEventMessage => ({
    status: action,
    id: String(d.container),
    from: attributes.image,
    Type: 'container',
    Action: action,
    Actor: { ID: String(d.container), Attributes: attributes },
    ...at,
  });
  const volume = (action: string): DockerEventMessage => ({ Type: 'volume', Action: action, Actor: { ID: String(d.volume), Attributes: { driver: 'local' } }, ...at });
  const tags = (d.tags as string[] | undefined) ?? [];
  switch (event.type) {
    case 'image.loaded':
      return [image('load', String(d.image), { name: String(d.image) })];
    case 'image.tagged':
      return [image('tag', String(d.image), { name: String(d.tag) })];
    // dockerd names the image by its ID, not the tag, in load, untag and delete.
    case 'image.untagged':
      return tags.map(() => image('untag', String(d.image), { name: String(d.image) }));
    case 'image.removed':
      return [...tags.map(() => image('untag', String(d.image), { name: String(d.image) })), image('delete', String(d.image), { name: String(d.image) })];
    case 'container.created':
      return [container('create', { image: String(d.image), name: String(d.name) })];
    // A fork is a new container to anything that speaks Docker.
    case 'container.forked':
      return [container('create', { image: String(d.image), name: String(d.name) })];
    case 'container.renamed':
      return [container('rename', { name: String(d.name), oldName: `/${String(d.previousName)}` })];
    // A commit with a reference tags the new image first.
    case 'container.committed':
      return [...(tags[0] ? [image('tag', String(d.image), { name: tags[0] })] : []), container('commit', { name: String(d.name), imageID: String(d.image) })];
    case 'container.removed':
      return [container('destroy', { image: String(d.image), name: String(d.name) })];
    case 'volume.created':
      return [volume('create')];
    case 'volume.removed':
      return [volume('destroy')];
    case 'container.merged':
    case 'tree.changed':
    case 'upload.finalized':
    case 'job.progress':
    case 'job.completed':
      return []; // Docker has no merges, change feeds, uploads or asynchronous jobs.
  }
}

/** `since`/`until` as the CLI sends them: Unix seconds, optionally with a fraction (`1700000000.000000000`). */
function dockerTime(raw: string | null, name: string): number | undefined {
  if (raw === null || raw === '') return undefined;
  if (!/^\d{1,12}(\.\d{1,9})?$/.test(raw)) throw new InvalidInputError(`${name} must be Unix seconds, not ${JSON.stringify(raw)}`);
  return Math.floor(Number(raw) * 1000);
}

/** The feed cursor just before the first event at `ms` (ids start with the time in base 36). */
const cursorAt = (ms: number) => `${Math.max(0, ms).toString(36).padStart(9, '0')}-`;

const FILTERS = ['type', 'event', 'image', 'container', 'volume', 'scope'];

function matches(filters: Filters, message: DockerEventMessage): boolean {
  const actor = message.Actor;
  const names = [actor.ID, actor.Attributes.name ?? '', actor.Attributes.name?.replace(/^\//, '') ?? ''];
  return (
    filters.any('type', (t) => t === message.Type) &&
    filters.any('event', (e) => e === message.Action) &&
    filters.any('scope', (s) => s === 'local') &&
    (message.Type !== 'image' || filters.any('image', (i) => names.includes(i) || actor.ID.startsWith(i) || actor.ID.startsWith(`sha256:${i}`))) &&
    (message.Type !== 'container' || filters.any('container', (c) => names.includes(c) || actor.ID.startsWith(c))) &&
    (message.Type !== 'volume' || filters.any('volume', (v) => v === actor.ID)) &&
    // A filter for one kind of object hides the others, as dockerd's does.
    (!filters.has('image') || message.Type === 'image' || (message.Type === 'container' && filters.get('image').includes(actor.Attributes.image ?? ''))) &&
    (!filters.has('container') || message.Type === 'container') &&
    (!filters.has('volume') || message.Type === 'volume')
  );
}

/** How often a held-open stream looks for new events. */
const POLL_MS = 1000;

/**
 * The messages from `since` to `until` (ms), in order; with no `until`, keeps looking for new
 * ones until the reader goes away. Events show once they have settled (EVENT_SETTLE_MS).
 */
async function* messages(events: EventLog, tenant: string, filters: Filters, since: number, until: number | undefined): AsyncGenerator<string> {
  let cursor = cursorAt(since);
  for (;;) {
    const end = Math.min(until ?? Number.POSITIVE_INFINITY, Date.now() - EVENT_SETTLE_MS + 1);
    const page = await events.list(tenant, { since: cursor, before: end });
    for (const event of page.events) for (const message of dockerMessages(event)) if (matches(filters, message)) yield `${JSON.stringify(message)}\n`;
    cursor = page.cursor ?? cursor;
    if (page.events.length > 0) continue;
    if (until !== undefined && end >= until) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * `docker events`: past events from `since`, then new ones as they happen until `until`. Where
 * responses cannot stay open (Lambda), the answer ends at the time of the request, so the CLI
 * shows what happened so far and exits: run it with `--since` (and it follows nothing new).
 */
export const eventRoutes: DockerRoute[] = [
  {
    method: 'GET',
    path: '/events',
    operation: async ({ request, query }) => {
      const filters = Filters.parse(query.get('filters'), FILTERS);
      const now = Date.now();
      const since = dockerTime(query.get('since'), 'since') ?? now;
      let until = dockerTime(query.get('until'), 'until');
      const { services, tenant } = request;
      if (!services.canStream && !services.streamsBodies) until = Math.min(until ?? now, now);
      const headers = { 'content-type': 'application/json' };
      if (until !== undefined && until <= now - EVENT_SETTLE_MS) {
        // Only the past: one answer, no stream to hold.
        let body = '';
        for await (const line of messages(services.engine.events, tenant, filters, since, until)) body += line;
        return { statusCode: 200, headers, body };
      }
      return { statusCode: 200, headers, body: Readable.from(messages(services.engine.events, tenant, filters, since, until)), noRedirect: true };
    },
  },
];
