import { z } from 'zod';

/**
 * The events integrators receive, one schema per type. The feed (`GET /v1/events`), the local
 * webhooks and the EventBridge bus (as `detail`, with `detail-type` = `type`) carry the same
 * object, so one rule or one parser serves all three. `events.schema.json` is generated from
 * these (`npm run schemas`), and a test checks it is current and that real events match.
 */

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const imageId = digest.meta({ description: '`sha256:` digest of the image config.' });
const tags = z.array(z.string()).meta({ description: 'Normalized references, `name:tag`.' });
const containerId = z.string().meta({ description: 'The container id.' });

const jobKind = z.enum(['load', 'save', 'export', 'commit']);

const imageStored = {
  image: imageId,
  tags: tags.meta({ description: 'Tags it got (moved here from any image that had them).' }),
  size: z.int().min(0).meta({ description: 'Bytes of its layers’ contents.' }),
  layers: z.int().min(0),
  new: z.boolean().meta({ description: 'False when the image was already stored and only tags moved.' }),
};

const envelope = <T extends string, D extends z.ZodRawShape>(type: T, detail: D, description: string) =>
  z
    .object({
      id: z
        .string()
        .regex(/^[0-9a-z]{9}-[0-9a-f]{12}$/)
        .meta({ description: 'Unique and sortable; the same however often the event is delivered. The feed’s cursor.' }),
      type: z.literal(type),
      tenant: z.string(),
      time: z.int().min(0).meta({ description: 'When the change was made, ms since the epoch.' }),
      detail: z.strictObject(detail),
    })
    .meta({ description });

export const eventSchemas = [
  envelope('image.loaded', imageStored, 'An image of a loaded archive was recorded (one event per image).'),
  envelope('image.tagged', { image: imageId, tag: z.string() }, 'A tag was set on an image.'),
  envelope('image.untagged', { image: imageId, tags }, 'Tags were removed from an image.'),
  envelope('image.removed', { image: imageId, tags: tags.meta({ description: 'Tags it still had.' }) }, 'An image was removed.'),
  envelope('container.created', { container: containerId, name: z.string(), image: imageId, volumes: z.array(z.string()).meta({ description: 'Volumes it mounts.' }) }, 'A container was created.'),
  envelope('container.renamed', { container: containerId, name: z.string(), previousName: z.string() }, 'A container was renamed.'),
  envelope('container.committed', { ...imageStored, container: containerId, name: z.string().meta({ description: 'The container’s name.' }) }, 'A container was committed to an image.'),
  envelope(
    'container.forked',
    {
      container: containerId,
      name: z.string(),
      image: imageId,
      source: containerId.meta({ description: 'The container it was forked from.' }),
      layer: z.string().meta({ description: 'The layer both now share.' }),
    },
    'A container was forked: a new container whose tree is the source’s at that instant.',
  ),
  envelope(
    'container.merged',
    {
      container: containerId,
      name: z.string(),
      source: containerId.meta({ description: 'The container whose changes were merged in.' }),
      paths: z.int().min(0).meta({ description: 'Changes of the source taken.' }),
      conflicts: z.int().min(0).meta({ description: 'Paths both changed, settled by the strategy.' }),
    },
    'Another container’s changes were merged into a container.',
  ),
  envelope(
    'container.removed',
    { container: containerId, name: z.string(), image: imageId, expired: z.literal(true).optional().meta({ description: 'Removed because its expiry passed.' }) },
    'A container was removed; its storage is reclaimed after.',
  ),
  envelope('volume.created', { volume: z.string(), anonymous: z.boolean() }, 'A volume was created.'),
  envelope('volume.removed', { volume: z.string(), anonymous: z.boolean(), expired: z.literal(true).optional().meta({ description: 'Removed because its expiry passed.' }) }, 'A volume was removed.'),
  envelope(
    'upload.finalized',
    { upload: z.uuid(), size: z.int().min(0).meta({ description: 'Bytes received.' }), job: z.uuid().optional().meta({ description: 'The load it started, for an upload made with `load: true`.' }) },
    'An upload’s bytes landed in blob storage.',
  ),
  envelope(
    'job.progress',
    {
      job: z.uuid(),
      kind: jobKind,
      bytesDone: z.int().min(0),
      bytesTotal: z.int().min(0).meta({ description: '0 where it is not known ahead (a save or export).' }),
      layersDone: z.int().min(0),
    },
    'A running job’s progress, at most every 10 s.',
  ),
  envelope(
    'job.completed',
    {
      job: z.uuid(),
      kind: jobKind,
      status: z.enum(['succeeded', 'failed']),
      images: z
        .array(z.object({ id: imageId, tags }))
        .optional()
        .meta({ description: 'A load that succeeded: its images.' }),
      image: z.object({ id: imageId, tags }).optional().meta({ description: 'A commit that succeeded: the new image.' }),
      size: z.int().min(0).optional().meta({ description: 'A save or export that succeeded: bytes of the tar (`GET /v1/jobs/{job}` links it).' }),
      error: z.object({ message: z.string(), code: z.string() }).optional().meta({ description: 'When it failed.' }),
    },
    'An asynchronous load, save, export or commit finished (a load’s images also have their `image.loaded` events).',
  ),
  envelope(
    'tree.changed',
    {
      container: containerId.optional().meta({ description: 'A container’s feed: the container.' }),
      volume: z.string().optional().meta({ description: 'A volume’s feed: the volume’s name.' }),
      first: z.int().min(1).meta({ description: 'The first change’s number in the feed.' }),
      last: z.int().min(1).meta({ description: 'The last change’s number; the changes in between are all here, in order.' }),
      changes: z
        .array(
          z.strictObject({
            seq: z.int().min(1),
            time: z.int().min(0),
            kind: z.enum(['added', 'modified', 'deleted', 'renamed', 'merged']),
            path: z.string(),
            type: z.enum(['file', 'dir', 'symlink']).optional(),
            size: z.int().min(0).optional(),
            etag: z.string().optional(),
            from: z.string().optional(),
            paths: z.int().min(0).optional(),
          }),
        )
        .meta({ description: 'At most 100, as `GET …/feed` shows them.' }),
    },
    'EventBridge only: changes of a container’s or volume’s tree, in batches from its change feed. Delivery is at least once; order and drop repeats by (tree, seq).',
  ),
] as const;

export const Event = z.discriminatedUnion('type', eventSchemas).meta({ description: 'One change, as the feed, webhooks and EventBridge carry it.' });

/** The JSON Schema (2020-12) of events.schema.json, one `oneOf` branch per type. */
export function eventJsonSchema(): Record<string, unknown> {
  return {
    title: 'Strata event',
    ...z.toJSONSchema(Event, { io: 'output', target: 'draft-2020-12' }),
  };
}
