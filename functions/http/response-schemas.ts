import { z } from 'zod';
import { Event } from './event-schemas.js';

/**
 * One zod schema per JSON response body, by the names the OpenAPI document gives them. The
 * document's response schemas are generated from these, and a unit test parses real responses of
 * the handlers with them, so what is documented is what is sent. Shapes follow the engine's
 * summaries (shared/domain/*.ts) and what the operations add (functions/operations/*.ts).
 */

const count = z.int().min(0);
const bytes = (description?: string) => (description ? z.int().min(0).meta({ description }) : z.int().min(0));
const epochMs = (description = 'Milliseconds since the epoch.') => z.int().meta({ description });
const names = z.array(z.string());
const labels = z.record(z.string(), z.string());

export const ErrorBody = z
  .object({
    message: z.string().meta({ description: 'What went wrong, for people.' }),
    code: z.string().meta({
      description:
        'For programs: `invalid_input`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `precondition_failed`, ' +
        '`too_large`, `range_not_satisfiable`, `unavailable`, `deadline_exceeded`, `internal`, or a filesystem code ' +
        '(`ENOTDIR`, `EISDIR`, `ELOOP`, `EINVAL`, `EPERM` with 400; `ENOTEMPTY`, `EEXIST` with 409).',
    }),
  })
  .meta({ description: 'Every error. 5xx messages carry no details.' });

export const Health = z.object({ status: z.literal('ok') });

export const FileStat = z.object({
  path: z.string().meta({ description: 'Absolute path in the tree, after following symlinks where the operation does.' }),
  name: z.string().meta({ description: 'Last path component; empty for the root.' }),
  type: z.enum(['file', 'dir', 'symlink']),
  size: bytes('Bytes; 0 for directories and symlinks.'),
  mode: z.int().min(0).max(0o7777).meta({ description: 'Permission bits (`X-Strata-Mode` gives them in octal).' }),
  uid: count,
  gid: count,
  mtime: epochMs(),
  etag: z.string().meta({ description: 'Unquoted; the `ETag` header quotes it.' }),
  target: z.string().optional().meta({ description: 'Symlinks only: the target as written.' }),
  nlink: count.optional().meta({ description: 'Files only: how many names the file has (hard links).' }),
  inode: z.string().optional().meta({ description: "Hard-linked files only: the identity all the file's names share." }),
});

export const DirPage = z.object({
  path: z.string().meta({ description: "The directory's absolute path." }),
  entries: z.array(FileStat),
  cursor: z.string().optional().meta({ description: 'Opaque; pass back as `?cursor=` for the next page. Absent on the last page.' }),
});

export const ImageSummary = z.object({
  id: z.string().meta({ description: '`sha256:` digest of the image config.' }),
  tags: names,
  created: epochMs("The config's `created`, in milliseconds since the epoch; when it was stored if the config has none."),
  size: bytes('Bytes of files in its layers.'),
  sharedSize: bytes('Bytes of layers shared with at least one other image.'),
  containers: count.meta({ description: 'Containers using it.' }),
  layers: z.array(z.object({ diffId: z.string(), size: count })).meta({ description: 'Bottom first.' }),
  parent: z.string().optional().meta({ description: 'The image a commit was made from.' }),
});

export const ImageRef = z.object({ id: z.string(), tags: names });

export const LoadResult = z.object({ images: z.array(ImageRef) });

export const Job = z
  .object({
    id: z.uuid(),
    kind: z.enum(['load', 'save', 'export', 'commit']),
    status: z.enum(['awaiting-upload', 'queued', 'running', 'succeeded', 'failed']).meta({ description: '`awaiting-upload`: a load whose upload has not received its bytes yet.' }),
    upload: z.string().optional().meta({ description: 'A load: the upload whose bytes are the archive.' }),
    images: z.array(z.string()).optional().meta({ description: 'A save: the images it writes.' }),
    container: z.string().optional().meta({ description: 'An export or a commit: the container.' }),
    progress: z.object({
      bytesDone: bytes('A load: archive bytes read so far, as uploaded (before decompression); a save or export: tar bytes written.'),
      bytesTotal: bytes('A load: the size of the upload; 0 where it is not known ahead.'),
      layersDone: count.meta({ description: 'Layers stored so far (layers small enough to be held in memory count only when the load succeeds).' }),
    }),
    result: z
      .object({
        images: LoadResult.shape.images.optional().meta({ description: 'A load: the images loaded.' }),
        image: ImageRef.optional().meta({ description: 'A commit: the new image.' }),
        size: bytes('A save or export: bytes of the tar.').optional(),
        download: z
          .url()
          .optional()
          .meta({ description: 'A save or export: a presigned URL of the tar, valid for the usual presign time; GET the job again for a fresh one (the tar is kept 24 hours).' }),
      })
      .optional()
      .meta({ description: 'When it succeeded.' }),
    error: z.object({ message: z.string(), code: z.string() }).optional().meta({ description: 'When it failed: what a synchronous request would have been answered.' }),
    created: epochMs(),
    updated: epochMs(),
  })
  .meta({ description: 'Work running outside the request that asked for it: a load, or a save, export or commit too long for one request.' });

export const TagResult = z.object({ tag: z.string() });

export const RemoveImageResult = z.object({
  untagged: names,
  deleted: names.meta({ description: 'Image IDs removed; empty when only tags went.' }),
});

export const QuotaState = z
  .object({
    bytes: z.int().min(0).nullable().meta({ description: 'Most bytes; null: no limit.' }),
    entries: z.int().min(0).nullable().meta({ description: 'Most entries; null: no limit.' }),
    usedBytes: bytes('What counts against `bytes` now.'),
    usedEntries: count.meta({ description: 'What counts against `entries` now.' }),
  })
  .meta({ description: 'Present when the tree was made with a quota.' });

const expiryFields = {
  expiresAt: epochMs('When it expires (a volume a container uses waits for its last container).').optional(),
  ttlSeconds: z.int().min(1).optional().meta({ description: 'The time to live it was given.' }),
  extendOnWrite: z.boolean().optional().meta({ description: 'Each write pushes the expiry back to `ttlSeconds` from then.' }),
};

export const ContainerSummary = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/),
  name: z.string(),
  image: z.string().meta({ description: 'Image ID.' }),
  imageRef: z.string().optional().meta({ description: 'The image as named at creation.' }),
  created: epochMs(),
  mounts: z.array(z.object({ target: z.string(), volume: z.string(), readOnly: z.boolean(), anonymous: z.boolean() })),
  labels,
  process: z
    .object({ Cmd: names.optional(), Entrypoint: names.optional(), Env: names.optional(), WorkingDir: z.string().optional(), User: z.string().optional() })
    .meta({ description: 'Process settings given at create through the Docker API (`docker create -e A=1 img cmd`): kept for inspect and applied by commit. Strata runs nothing.' }),
  forkedFrom: z
    .object({
      container: z.string().meta({ description: 'The container this one was forked from (it may be gone since).' }),
      forkPoint: z.string().meta({ description: 'The tree both started from, for `changes?against=`.' }),
      at: epochMs(),
    })
    .optional(),
  size: bytes("Bytes of files the container created or changed (Docker's SizeRw), in its own layer and the layers it shares with its forks. Listings include it with `?size=true`.").optional(),
  virtualSize: bytes("Image size plus `size` (Docker's SizeRootFs).").optional(),
  quota: QuotaState.optional(),
  ...expiryFields,
});

const sideChange = z.enum(['added', 'modified', 'deleted', 'renamed', 'changed below', 'deleted above']);

export const MergeConflict = z.object({
  path: z.string().meta({ description: "In this container's coordinates." }),
  ours: sideChange.meta({
    description: "What this container did there since the common ancestor ('changed below': something inside a directory the source removed; 'deleted above': it removed a directory above).",
  }),
  theirs: sideChange.meta({ description: 'What the source did there.' }),
  resolution: z.enum(['ours', 'theirs']).optional().meta({ description: 'How the strategy settled it; absent under `fail`.' }),
});

export const MergeResult = z.object({
  container: ContainerSummary.meta({ description: 'This container after the merge.' }),
  merged: count.meta({ description: "The source's changes taken, conflicts settled for the source included (a renamed directory counts once)." }),
  conflicts: z.array(MergeConflict),
  strategy: z.enum(['fail', 'ours', 'theirs']),
  applied: z.boolean().meta({ description: 'False for a dry run, and when there was nothing to take.' }),
});

export const MergeConflicts = ErrorBody.extend({ conflicts: z.array(MergeConflict) }).meta({ description: 'A merge under `fail` that met conflicts: nothing was merged.' });

export const Change = z.object({
  path: z.string(),
  kind: z.literal([0, 1, 2]).meta({ description: "0 changed, 1 added, 2 deleted (Docker's kinds)." }),
  kindName: z.enum(['C', 'A', 'D']),
  patch: z.string().optional().meta({ description: 'With `?patch=true`: a unified diff of a text file.' }),
  patchOmitted: z.enum(['binary', 'too-large', 'limit']).optional().meta({ description: 'With `?patch=true`: why a file has no patch (not text; over 256 KiB; past 200 files or 2 MiB of patches).' }),
});

export const VolumeSummary = z.object({
  name: z.string(),
  anonymous: z.boolean(),
  created: epochMs(),
  labels,
  refCount: count.meta({ description: 'Containers using it.' }),
  size: bytes('Bytes of files in it.'),
  quota: QuotaState.optional(),
  ...expiryFields,
});

export const FeedEntry = z.object({
  seq: z.int().min(1).meta({ description: 'Its number in the feed: 1, 2, 3, ... with no gap, in the order the changes committed.' }),
  time: epochMs(),
  kind: z.enum(['added', 'modified', 'deleted', 'renamed', 'merged']),
  path: z.string().meta({ description: "In the tree's own coordinates (a volume's root is `/`); a rename's new path; `/` for a merge." }),
  type: z.enum(['file', 'dir', 'symlink']).optional(),
  size: bytes('Files: bytes after the change.').optional(),
  etag: z.string().optional().meta({ description: 'The ETag after the change.' }),
  from: z.string().optional().meta({ description: "A rename: the old path. A merge: the source container's ID." }),
  paths: count.optional().meta({ description: 'A merge: how many paths it changed.' }),
  volume: z.string().optional().meta({ description: "A volume's feed: the volume's name." }),
});

export const FeedPage = z.object({
  entries: z.array(FeedEntry),
  next: count.meta({ description: 'Pass as `after` for the next page (the last `seq`, or the same cursor when nothing followed).' }),
});

export const PruneResult = z.object({
  removed: names.meta({ description: 'Names of the volumes removed.' }),
  reclaimed: bytes('Their bytes.'),
});

/** `docker system df`: one block per kind of thing. */
const usage = <T extends z.ZodType>(items: T, active: string, reclaimable?: string) =>
  z.object({
    count,
    active: count.meta({ description: active }),
    size: count,
    reclaimable: reclaimable ? count.meta({ description: reclaimable }) : count,
    items: z.array(items),
  });

export const DiskUsage = z.object({
  images: usage(ImageSummary, 'Images some container uses.', 'Unshared bytes of images no container uses.').extend({ sharedSize: count }),
  containers: usage(ContainerSummary, 'Always 0: no container runs.'),
  volumes: usage(VolumeSummary, 'Volumes some container uses.', 'Bytes of volumes no container uses.'),
});

export const SweepReport = z.object({ namespaces: count, nodes: count, layers: count, chains: count, blobs: count }).meta({ description: 'Counts of what was removed.' });

export const Upload = z.object({
  id: z.uuid().meta({ description: 'Name it as `?upload=<id>`.' }),
  url: z.url().meta({ description: 'Presigned URL to send the bytes to.' }),
  method: z.literal('PUT'),
  expiresAt: z.iso.datetime(),
  job: z.uuid().optional().meta({ description: 'With `load: true`: the job that loads the bytes once they land (`GET /v1/jobs/{job}`).' }),
});

export const EventPage = z.object({
  events: z.array(Event),
  cursor: z.string().nullable().meta({ description: 'Pass as `since` for the next page; null before the first event.' }),
});

export const responseSchemas = {
  Error: ErrorBody,
  Health,
  FileStat,
  DirPage,
  ImageSummary,
  ImageRef,
  LoadResult,
  Job,
  TagResult,
  RemoveImageResult,
  ContainerSummary,
  MergeResult,
  MergeConflicts,
  Change,
  VolumeSummary,
  PruneResult,
  DiskUsage,
  SweepReport,
  Upload,
  EventPage,
  FeedPage,
};

export type ResponseSchemaName = keyof typeof responseSchemas;

/**
 * The JSON Schemas (2020-12) of every response body. Converted together, so a body that holds
 * another (DirPage's entries, DiskUsage's items) refers to it by `$ref` instead of a copy.
 */
export function responseJsonSchemas(): Record<string, Record<string, unknown>> {
  const registry = z.registry<{ id: string }>();
  for (const [name, schema] of Object.entries(responseSchemas)) registry.add(schema, { id: name });
  const { schemas } = z.toJSONSchema(registry, {
    io: 'output',
    uri: (id) => `#/components/schemas/${id}`,
    override: ({ zodSchema, jsonSchema }) => {
      // Responses may gain fields: the document promises the ones listed, not that there are no others.
      if (zodSchema._zod.def.type === 'object' && jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
      // z.int() bounds every integer to the safe range; JSON numbers from this API never leave it anyway.
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
      // zod types numeric literals as `number`; integer ones (Change.kind) are integers.
      if (zodSchema._zod.def.type === 'literal' && jsonSchema.enum?.every(Number.isInteger)) jsonSchema.type = 'integer';
    },
  });
  return Object.fromEntries(Object.entries(schemas).map(([name, { $schema: _dialect, $id: _id, ...jsonSchema }]) => [name, jsonSchema as Record<string, unknown>]));
}
