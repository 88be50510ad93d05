import { z } from 'zod';
import { isReservedLabelKey, MAX_ID, MAX_LABELS, MAX_MTIME_MS, MIN_MTIME_MS } from '../../shared/domain/limits.js';
import { MAX_QUOTA_LIMIT } from '../../shared/domain/quotas.js';
import { MAX_TTL_SECONDS } from '../../shared/domain/expiry.js';
import { InvalidInputError } from '../../shared/errors.js';

/**
 * One schema per JSON request body. Handlers parse with them (unknown fields are refused) and
 * the OpenAPI document's request schemas are generated from them, so the two cannot drift.
 * Ranges the domain owns (file sizes, label bytes) are checked again by the engine.
 */

const labelKey = z.string().refine((key) => !isReservedLabelKey(key), { error: (issue) => `label key ${JSON.stringify(issue.input)} is not allowed` });
const labels = z
  .record(labelKey, z.string({ error: 'labels must be an object of strings' }), { error: (issue) => (issue.code === 'invalid_type' ? 'labels must be an object of strings' : undefined) })
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);
const id = (name: string) => {
  const message = `${name} must be an integer from 0 to ${MAX_ID}`;
  return z.number({ error: message }).int(message).min(0, message).max(MAX_ID, message);
};
const modeMessage = 'mode must be an integer from 0 to 0o7777 (or an octal string like "0644")';
/** Permission bits in a JSON body; the OpenAPI document's Mode schema is generated from it. */
export const fileMode = z.union(
  [z.number({ error: modeMessage }).int(modeMessage).min(0, modeMessage).max(0o7777, modeMessage), z.string({ error: modeMessage }).regex(/^0?[0-7]{1,4}$/, modeMessage)],
  { error: modeMessage },
);

export const TagRequest = z
  .strictObject({ tag: z.string({ error: 'tag is required and must be a string' }).min(1, 'tag is required and must be a string') })
  .meta({ description: '`repo[:tag]`; `:latest` if no tag is given.' });

export const MountRequest = z.strictObject({
  target: z.string({ error: 'mounts[].target is required and must be a string' }).meta({ description: 'Absolute path in the container; not `/`.' }),
  volume: z.string().optional().meta({ description: 'Volume name, created if missing. Omitted: a new anonymous volume.' }),
  readOnly: z.boolean().optional(),
});

const quotaLimit = (name: string, what: string) => {
  const message = `quota.${name} must be a whole number from 0 to ${MAX_QUOTA_LIMIT}`;
  return z.number({ error: message }).int(message).min(0, message).max(MAX_QUOTA_LIMIT, message).meta({ description: what });
};
const quotaLimits = {
  bytes: quotaLimit('bytes', "Most bytes of file content in the tree's own layers (what `size` counts)."),
  entries: quotaLimit('entries', "Most entries in the tree's own layers: files, directories, symlinks and deletion markers."),
};
export const Quota = z
  .strictObject({ bytes: quotaLimits.bytes.optional(), entries: quotaLimits.entries.optional() }, { error: 'quota must be an object with bytes and entries' })
  .meta({ description: 'Limits checked in the transaction of every change: a change past one is refused (507) and nothing of it is written. Absent: no limit of that kind.' });
export const QuotaUpdate = z
  .strictObject({ bytes: quotaLimits.bytes.nullable().optional(), entries: quotaLimits.entries.nullable().optional() }, { error: 'quota must be an object with bytes and entries' })
  .meta({ description: 'New limits: a number sets one, null lifts it, an absent field keeps it. A limit below what is used refuses further growth until enough is freed.' });

const expiresAt = z
  .number({ error: 'expiresAt must be milliseconds since the epoch' })
  .int('expiresAt must be milliseconds since the epoch')
  .meta({ description: 'When it expires, ms since the epoch (in the future). An expired tree is gone from listings and lookups at once; its storage is reclaimed after.' });
const ttlSeconds = z
  .number({ error: `ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}` })
  .int(`ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`)
  .min(1, `ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`)
  .max(MAX_TTL_SECONDS, `ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`)
  .meta({ description: 'Expires this many seconds from now (instead of `expiresAt`).' });
const extendOnWrite = z
  .boolean({ error: 'extendOnWrite must be true or false' })
  .meta({ description: 'With `ttlSeconds`: each write pushes the expiry back to `ttlSeconds` from then (checked once a tenth of it has passed), so only idle trees expire.' });
const expiry = { expiresAt: expiresAt.optional(), ttlSeconds: ttlSeconds.optional(), extendOnWrite: extendOnWrite.optional() };
const expiryUpdate = {
  expiresAt: expiresAt.nullable().optional().meta({ description: 'A new expiry instant; null: never expire.' }),
  ttlSeconds: ttlSeconds.nullable().optional().meta({ description: 'Expire this many seconds from now; null: never expire.' }),
  extendOnWrite: extendOnWrite.optional(),
};

export const CreateContainerRequest = z.strictObject({
  image: z.string({ error: 'image is required and must be a string' }).min(1, 'image is required and must be a string').meta({ description: 'Image ID, ID prefix or tag.' }),
  name: z.string().optional().meta({ description: 'Unique per tenant; default `strata_` plus 12 hex digits of the ID.' }),
  mounts: z.array(MountRequest).optional(),
  labels: labels.optional(),
  quota: Quota.optional().meta({ description: "A quota can only be given at creation; its limits can be changed later. Forks take their source's." }),
  ...expiry,
});

export const UpdateContainerRequest = z.strictObject({
  quota: QuotaUpdate.optional(),
  ...expiryUpdate,
});

export const ForkRequest = z.strictObject({
  name: z.string().optional().meta({ description: 'Unique per tenant; default `strata_` plus 12 hex digits of the ID.' }),
  labels: labels.optional().meta({ description: "Default: the source's labels." }),
});

export const MergeRequest = z.strictObject({
  from: z
    .string({ error: 'from is required: the container whose changes to merge in' })
    .min(1, 'from is required: the container whose changes to merge in')
    .meta({ description: 'The container whose changes since the common ancestor are merged in (name or ID); it stays as it is.' }),
  strategy: z.enum(['fail', 'ours', 'theirs'], { error: 'strategy must be fail, ours or theirs' }).optional().meta({
    description: 'What to do where both changed one path: `fail` (default) merges nothing and answers 409 with the conflicts; `ours` keeps this container side, `theirs` takes the source side.',
  }),
  dryRun: z.boolean().optional().meta({ description: 'Only report what would be merged and what conflicts; change nothing.' }),
});

export const CommitRequest = z.strictObject({
  reference: z.string().optional().meta({ description: '`repo[:tag]` to tag the new image with.' }),
  author: z.string().optional(),
  comment: z.string().optional(),
});

export const CreateVolumeRequest = z.strictObject({
  name: z.string().optional().meta({ description: 'Omitted: an anonymous volume.' }),
  labels: labels.optional(),
  quota: Quota.optional().meta({ description: 'A quota can only be given at creation; its limits can be changed later.' }),
  ...expiry,
});

export const UpdateVolumeRequest = z.strictObject({
  quota: QuotaUpdate.optional(),
  ...expiryUpdate,
});

export const AttributesRequest = z
  .strictObject({
    size: z
      .number({ error: 'size must be a non-negative integer' })
      .int('size must be a non-negative integer')
      .min(0, 'size must be a non-negative integer')
      .optional()
      .meta({ description: 'Truncate or extend (with a hole) to this size.' }),
    mode: fileMode.optional(),
    uid: id('uid').optional(),
    gid: id('gid').optional(),
    mtime: z
      .number({ error: 'mtime must be milliseconds since the epoch' })
      .int('mtime must be milliseconds since the epoch')
      .min(MIN_MTIME_MS, `mtime must be from ${MIN_MTIME_MS} to ${MAX_MTIME_MS}`)
      .max(MAX_MTIME_MS, `mtime must be from ${MIN_MTIME_MS} to ${MAX_MTIME_MS} (years 1 to 9999)`)
      .optional(),
  })
  .refine((a) => Object.values(a).some((v) => v !== undefined), 'give at least one of size, mode, uid, gid, mtime');

export const FileActionRequest = z.discriminatedUnion(
  'action',
  [
    z.strictObject({ action: z.literal('rename'), to: z.string({ error: 'to is required and must be a string' }).min(1, 'to is required and must be a string') }),
    z.strictObject({ action: z.literal('link'), target: z.string({ error: 'target is required and must be a string' }).min(1, 'target is required and must be a string') }),
    z.strictObject({ action: z.literal('symlink'), target: z.string({ error: 'target is required and must be a string' }).min(1, 'target is required and must be a string') }),
    z.strictObject({ action: z.literal('mkdir'), mode: fileMode.optional(), parents: z.boolean().optional() }),
  ],
  { error: 'action must be rename, link, symlink or mkdir' },
);

/** By the names the OpenAPI document refers to them. */
export const CreateUploadRequest = z.strictObject({
  load: z.boolean().optional().meta({ description: 'Load the bytes as an image archive once they land, as a job (`job` in the answer): no further call needed.' }),
});

export const requestSchemas = {
  CreateUploadRequest,
  TagRequest,
  MountRequest,
  CreateContainerRequest,
  UpdateContainerRequest,
  ForkRequest,
  MergeRequest,
  CommitRequest,
  CreateVolumeRequest,
  UpdateVolumeRequest,
  FileAttributes: AttributesRequest,
  FileAction: FileActionRequest,
};

/** Parses a body with its schema; the first problem becomes a 400 that names the field. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  let issue = result.error.issues[0]!;
  // A record's bad key is reported inside an invalid_key issue.
  if (issue.code === 'invalid_key' && issue.issues[0]) issue = { ...issue.issues[0], path: issue.path } as typeof issue;
  const where = issue.path.length ? issue.path.join('.') : '';
  if (issue.code === 'unrecognized_keys')
    throw new InvalidInputError(`unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(where ? `${where}.${k}` : k)).join(', ')}`);
  throw new InvalidInputError(issue.message.includes(' ') ? issue.message : `${where || 'body'}: ${issue.message}`);
}

/** The JSON Schemas (2020-12, as OpenAPI 3.1 uses) of every request body. */
export function requestJsonSchemas(): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(requestSchemas).map(([name, schema]) => {
      const { $schema: _dialect, ...jsonSchema } = z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
      return [name, jsonSchema];
    }),
  );
}

// ---- query parameters ------------------------------------------------------------------------

/** A true/false query parameter (read by `flag` in parse.ts); the OpenAPI document types it as its Flag schema. */
export const flagParam = z
  .string()
  .regex(/^(|1|0|true|false|yes|no)$/i, 'must be true or false')
  .optional();
const cursor = z.string().optional();
const limit = z.string().regex(/^\d+$/, 'limit must be a non-negative integer').optional();
const upload = z.string().optional();
const listing = { cursor, limit };
const fileRead = { stat: flagParam, follow: flagParam, ...listing };
const fileWrite = {
  type: z.enum(['file', 'dir', 'symlink'], { error: 'type must be file, dir or symlink' }).optional(),
  mode: z.string().optional(),
  parents: flagParam,
  target: z.string().optional(),
  upload,
};
const filePatch = { offset: z.string().optional(), append: flagParam, upload };
const feed = {
  after: z
    .string()
    .regex(/^(\d{1,15}|latest)$/, 'after must be a sequence number from an earlier page, or latest')
    .optional(),
  limit,
  wait: z
    .string()
    .regex(/^\d{1,2}(\.\d+)?$/, 'wait must be seconds, at most 20')
    .refine((v) => Number(v) <= 20, 'wait must be seconds, at most 20')
    .optional(),
};

/**
 * The query parameters each operation takes; any other is refused (400). The OpenAPI test checks
 * that the document lists exactly these for each operation.
 */
export const querySchemas: Readonly<Record<string, z.ZodObject>> = Object.fromEntries(
  Object.entries({
    listContainers: { size: flagParam },
    listEvents: {
      since: z
        .string()
        .regex(/^[0-9a-z]{9}-[0-9a-f]{12}$/, 'since must be the cursor of an earlier page of events')
        .optional(),
      limit,
    },
    removeContainer: { volumes: flagParam, v: flagParam },
    removeImage: { force: flagParam },
    loadImage: { upload, async: flagParam },
    saveImage: { async: flagParam },
    exportContainer: { async: flagParam },
    commitContainer: { async: flagParam },
    containerChanges: {
      against: z.string().min(1, 'against must name a container, image:<ref> or fork:<point>').max(300, 'against is too long').optional(),
      patch: flagParam,
    },
    containerFeed: feed,
    volumeFeed: feed,
    removeVolume: { force: flagParam },
    pruneVolumes: { all: flagParam },
    imageFsRoot: listing,
    containerFsRoot: listing,
    volumeFsRoot: listing,
    imageFsGet: fileRead,
    containerFsGet: fileRead,
    volumeFsGet: fileRead,
    containerFsPut: fileWrite,
    volumeFsPut: fileWrite,
    containerFsPatch: filePatch,
    volumeFsPatch: filePatch,
    containerFsDelete: { recursive: flagParam },
    volumeFsDelete: { recursive: flagParam },
  }).map(([operation, shape]) => [operation, z.strictObject(shape)]),
);

const noQuery = z.strictObject({});

/** Refuses query parameters the operation does not take, naming them. Values are parsed by the operation. */
export function checkQuery(operation: string, query: Readonly<Record<string, string>>): void {
  const result = (querySchemas[operation] ?? noQuery).safeParse(query);
  if (result.success) return;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') throw new InvalidInputError(`unknown query parameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`);
  const name = String(issue.path[0] ?? 'query');
  throw new InvalidInputError(issue.message.startsWith(name) ? issue.message : `${name} ${issue.message}`);
}
