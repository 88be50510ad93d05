import { bytesOf, headerRefs, jsonContent, type parameters, prose, requestBodyRef, responseRef, schemaRef, type Json, type Status } from './components.js';
import type { ResponseSchemaName } from '../http/response-schemas.js';

/**
 * What the route table cannot say about each operation: prose, body, and the responses it gives.
 * Keyed by the route's operation name (functions/routes.ts); the document is built by walking the
 * routes, and a route without an entry here makes it throw.
 */
export interface OperationDoc {
  readonly tag: 'system' | 'images' | 'containers' | 'volumes' | 'files' | 'uploads';
  readonly summary: string;
  readonly description?: string;
  /**
   * Flags only this operation takes, with what they mean here. Every other query parameter its
   * validator takes is documented by name (sharedQueryParameters); the validator decides which.
   */
  readonly query?: Readonly<Record<string, string>>;
  /** Request headers it reads. */
  readonly headers?: readonly HeaderParameter[];
  readonly requestBody?: Json;
  /** Its own responses: its successes, or a reusable response where its content is specific. */
  readonly responses: Readonly<Record<number, Json>>;
  /**
   * Other statuses it may answer, each with its reusable response. 400 (unknown query parameters)
   * and 500 are added to every operation, and 401, 403 and 503 to every secured one.
   */
  readonly statuses?: readonly Status[];
}

type HeaderParameter = { [K in keyof typeof parameters]: (typeof parameters)[K]['in'] extends 'header' ? K : never }[keyof typeof parameters];

const json = (description: string, schema: Json, extra: Json = {}) => ({ description, ...extra, content: jsonContent(schema) });
const listOf = (name: ResponseSchemaName) => ({ type: 'array', items: schemaRef(name) });
const tar = (description: string) => ({ description, content: { 'application/x-tar': bytesOf('application/x-tar') } });
const jsonBody = (name: Parameters<typeof schemaRef>[0], required: boolean) => ({ required, content: jsonContent(schemaRef(name)) });
const removed = { 204: { description: 'Removed.' } };

const system: Record<string, OperationDoc> = {
  health: {
    tag: 'system',
    summary: 'Liveness check',
    responses: { 200: json('The API is up.', schemaRef('Health')) },
  },
  openapi: {
    tag: 'system',
    summary: 'This OpenAPI document',
    responses: { 200: json('The OpenAPI 3.1 document.', { type: 'object' }) },
  },
  systemDf: {
    tag: 'system',
    summary: 'Disk usage (`docker system df`)',
    description: prose("Counts, sizes and reclaimable bytes of the tenant's images, containers and volumes.", 'No container runs, so all container bytes count as reclaimable.'),
    responses: { 200: json('Disk usage.', schemaRef('DiskUsage')) },
  },
  sweep: {
    tag: 'system',
    summary: "Garbage-collect the tenant's storage",
    description: prose(
      'Mark and sweep: namespaces of removed containers and volumes, layers no image uses, and orphaned objects.',
      'Recent objects are spared, so in-flight writes are safe. A scheduled sweep also runs over every tenant.',
    ),
    responses: { 200: json('What was removed.', schemaRef('SweepReport')) },
  },
  listEvents: {
    tag: 'system',
    summary: 'The durable event feed',
    description: prose(
      "What changed in the tenant's images, containers and volumes, oldest first: each event is written in the transaction of its change, so none is lost or invented.",
      "Pass the answer's `cursor` as `since` for the next page (an empty page keeps the cursor).",
      'An event shows 2 s after it happened, so a slower concurrent change cannot land behind a cursor; events are kept 7 days.',
    ),
    responses: { 200: json('A page of events.', schemaRef('EventPage')) },
  },
};

const images: Record<string, OperationDoc> = {
  listImages: {
    tag: 'images',
    summary: 'List images',
    responses: { 200: json("The tenant's images.", listOf('ImageSummary')) },
  },
  loadImage: {
    tag: 'images',
    summary: 'Load images from an archive (`docker load`)',
    description: prose(
      'The body is a docker-archive (`docker save`) or OCI image layout tar, plain, gzip or zstd.',
      'Send it inline, or give `?upload=<id>` of a finished upload and no body.',
      'Every image in the archive is loaded with its tags; layers already stored are kept once.',
    ),
    query: { async: 'With `upload`: answer 202 at once and load as a job (`GET /v1/jobs/{id}` shows its progress), for archives that take longer than the 30 s a request may.' },
    headers: ['IdempotencyKey'],
    requestBody: {
      required: false,
      content: { 'application/x-tar': bytesOf('application/x-tar'), 'application/octet-stream': bytesOf('application/octet-stream') },
    },
    responses: {
      201: json('The images loaded.', schemaRef('LoadResult')),
      202: json('The load was queued as a job.', schemaRef('Job'), { headers: headerRefs('Location') }),
    },
    statuses: [404, 409, 413, 422],
  },
  getJob: {
    tag: 'images',
    summary: 'An asynchronous load, save, export or commit: its status, progress and outcome',
    description: prose(
      'Poll until `status` is `succeeded` (with `result`) or `failed` (with `error`). `job.progress` events report progress every 10 s, and a `job.completed` event the end.',
      'A finished save or export links its tar (`result.download`), kept 24 hours.',
    ),
    responses: { 200: json('The job.', schemaRef('Job')) },
    statuses: [404],
  },
  inspectImage: {
    tag: 'images',
    summary: 'Inspect an image',
    responses: { 200: json('The image.', schemaRef('ImageSummary')) },
    statuses: [404, 409],
  },
  removeImage: {
    tag: 'images',
    summary: 'Remove an image (`docker rmi`)',
    description: prose(
      'By a tag of an image with other tags, removes only that tag.',
      'Otherwise removes the image and its tags; 409 while containers use it, unless `force`,',
      'which removes the tags and leaves the image (untagged) until its last container goes. Layers are reclaimed by the sweep.',
    ),
    query: { force: 'Untag an image that containers still use.' },
    responses: { 200: json('What was untagged and deleted.', schemaRef('RemoveImageResult')) },
    statuses: [404, 409],
  },
  tagImage: {
    tag: 'images',
    summary: 'Tag an image (`docker tag`)',
    description: 'Points the tag at the image, moving it if another image had it.',
    requestBody: jsonBody('TagRequest', true),
    responses: { 201: json('The tag, normalised (`repo:tag`).', schemaRef('TagResult')) },
    statuses: [404, 409],
  },
  untagImage: {
    tag: 'images',
    summary: 'Remove a tag',
    responses: { 204: { description: 'The tag is gone; the image stays.' } },
    statuses: [404, 409],
  },
  saveImage: {
    tag: 'images',
    summary: 'Save an image as a docker-archive tar (`docker save`)',
    query: { async: 'Answer 202 at once and write the tar as a job, for images that take longer than the 30 s a request may; the finished job links the tar.' },
    responses: { 200: tar('The docker-archive tar, streamed.'), 202: json('Queued as a job: poll `Location` (`GET /v1/jobs/{id}`).', schemaRef('Job'), { headers: headerRefs('Location') }) },
    statuses: [303, 404, 409],
  },
};

const containers: Record<string, OperationDoc> = {
  createContainer: {
    tag: 'containers',
    summary: 'Create a container (`docker create`)',
    description: prose(
      'Copies nothing: the container is an empty writable layer over the image.',
      'A mount naming a missing volume creates it; a mount without a volume gets a new anonymous one.',
      '`quota` bounds its own bytes and entries (checked in every change; 507 past it). `expiresAt` or `ttlSeconds` make it expire: it is gone from listings and lookups at once, and removed with its anonymous volumes (by DynamoDB TTL and the reclaimer deployed, every minute on the local server); `extendOnWrite` pushes the expiry back on each write.',
    ),
    requestBody: jsonBody('CreateContainerRequest', true),
    responses: {
      201: json('The new container.', schemaRef('ContainerSummary'), { headers: headerRefs('Location') }),
    },
    statuses: [404, 409],
  },
  listContainers: {
    tag: 'containers',
    summary: 'List containers, newest first',
    query: { size: 'Include `size` and `virtualSize`.' },
    responses: { 200: json("The tenant's containers.", listOf('ContainerSummary')) },
  },
  inspectContainer: {
    tag: 'containers',
    summary: 'Inspect a container, with its sizes',
    responses: { 200: json('The container.', schemaRef('ContainerSummary')) },
    statuses: [404, 409],
  },
  updateContainer: {
    tag: 'containers',
    summary: "Change a container's quota or expiry",
    description: prose(
      '`quota`: sets, lifts (null) or keeps (absent) each limit of a container made with a quota; 409 for one made without (a quota is given at creation).',
      '`ttlSeconds` sets the expiry that far from now, `expiresAt` to an instant, null (either) clears it; `extendOnWrite` alone turns pushing it back on or off.',
      'An empty body changes nothing and answers the container.',
    ),
    requestBody: jsonBody('UpdateContainerRequest', false),
    responses: { 200: json('The container.', schemaRef('ContainerSummary')) },
    statuses: [404, 409],
  },
  containerFeed: {
    tag: 'containers',
    summary: "The container's change feed",
    description: prose(
      "Every change of the container's tree, numbered 1, 2, 3, ... in commit order with no gap: a reader that has read up to `n` has seen every change up to `n`.",
      "Each entry is written in the transaction of its change, so no acknowledged change lacks one and none is invented. Writes into a mounted volume are in the volume's feed.",
      'Pass `next` as `after` to go on; with `wait` the request waits for the next change. Entries are kept 7 days: a cursor older than that answers 410.',
      'The feed follows the container through forks and renames; a fork starts a feed of its own.',
    ),
    responses: { 200: json('A page of changes.', schemaRef('FeedPage')) },
    statuses: [404, 409, 410],
  },
  removeContainer: {
    tag: 'containers',
    summary: 'Remove a container (`docker rm`)',
    description: 'Named volumes always stay. Its files are reclaimed by the sweep.',
    query: { volumes: 'Also remove its anonymous volumes no other container uses.', v: 'Same as `volumes`.' },
    responses: removed,
    statuses: [404, 409],
  },
  containerChanges: {
    tag: 'containers',
    summary: 'Changes against the image (`docker diff`), or against another tree',
    description: prose(
      'Paths in order; parents of changes count as changed; a deleted directory is one entry. Volumes are not included.',
      'Computed from the layers the two trees do not share, so the cost follows the changes since their common ancestor, not the size of the image.',
    ),
    query: {
      patch: '`true`: add a unified diff to each changed text file (256 KiB per file, 200 files, 2 MiB in all).',
    },
    responses: { 200: json('The changes.', listOf('Change')) },
    statuses: [404, 409],
  },
  forkContainer: {
    tag: 'containers',
    summary: 'Fork: a new container whose tree is this one now',
    description: prose(
      "O(1): no entry is copied. The source's writable layer is sealed and shared by both, and each gets a fresh layer above it, so a write to one is never seen by the other.",
      'The fork mounts the same volumes (volumes are shared storage, never forked). A chain holds at most 32 forks; past that, commit and create from the image.',
    ),
    requestBody: jsonBody('ForkRequest', false),
    responses: { 201: json('The fork.', schemaRef('ContainerSummary'), { headers: headerRefs('Location') }) },
    statuses: [404, 409],
  },
  mergeContainer: {
    tag: 'containers',
    summary: "Merge another container's changes into this one",
    description: prose(
      "A three-way merge per path since the two trees' common ancestor (the layers they share; for two containers of one image never forked, the image).",
      'A change only the source made is taken; the same change on both sides is no conflict; different changes of one path, a deletion against a change at or below it, and a file against a directory are conflicts.',
      "A directory renamed on one side carries the other side's changes inside it to its new path.",
      'All or nothing: the result is built aside and put in place in one transaction, so no reader ever sees half a merge; a write to either container while the merge is planned makes it plan again.',
      "No bytes are copied: merged files point at the source's blobs, which live on as long as this container needs them. Volumes are not merged.",
    ),
    requestBody: jsonBody('MergeRequest', true),
    responses: {
      200: json('What was merged, and the conflicts the strategy settled.', schemaRef('MergeResult')),
      409: json('Under `fail`: the conflicts, and nothing was merged. Also: the chain would be too deep, or the containers kept changing (retry).', schemaRef('MergeConflicts')),
    },
    statuses: [404, 507],
  },
  commitContainer: {
    tag: 'containers',
    summary: "Commit the container's changes as a new image (`docker commit`)",
    description: prose("The new image is the container's image plus one layer of its changes (volumes excluded).", 'The body may be empty.'),
    headers: ['IdempotencyKey'],
    requestBody: jsonBody('CommitRequest', false),
    query: { async: 'Answer 202 at once and commit as a job, for containers whose changes take longer than the 30 s a request may.' },
    responses: { 201: json('The new image.', schemaRef('ImageRef')), 202: json('Queued as a job: poll `Location` (`GET /v1/jobs/{id}`).', schemaRef('Job'), { headers: headerRefs('Location') }) },
    statuses: [404, 409, 413, 422],
  },
  exportContainer: {
    tag: 'containers',
    summary: 'Export the merged file tree as a tar (`docker export`)',
    description: 'Volumes are not included.',
    query: { async: 'Answer 202 at once and write the tar as a job, for trees that take longer than the 30 s a request may; the finished job links the tar.' },
    responses: { 200: tar('The tar, streamed.'), 202: json('Queued as a job: poll `Location` (`GET /v1/jobs/{id}`).', schemaRef('Job'), { headers: headerRefs('Location') }) },
    statuses: [303, 404, 409, 413],
  },
};

const volumes: Record<string, OperationDoc> = {
  createVolume: {
    tag: 'volumes',
    summary: 'Create a volume (`docker volume create`)',
    description: prose(
      'Without a name, an anonymous volume with a random 64-hex-digit name.',
      'Creating a name that exists returns that volume unchanged.',
      '`quota` bounds its bytes and entries. `expiresAt` or `ttlSeconds` make it expire: unused, it is gone at once; in use, it goes with its last container.',
    ),
    requestBody: jsonBody('CreateVolumeRequest', false),
    responses: { 201: json('The volume.', schemaRef('VolumeSummary')) },
  },
  listVolumes: {
    tag: 'volumes',
    summary: 'List volumes',
    responses: { 200: json("The tenant's volumes.", listOf('VolumeSummary')) },
  },
  pruneVolumes: {
    tag: 'volumes',
    summary: 'Remove unused volumes (`docker volume prune`)',
    description: 'Removes unused anonymous volumes, or every unused volume with `all`.',
    query: { all: 'Also remove unused named volumes.' },
    responses: { 200: json('What was removed.', schemaRef('PruneResult')) },
  },
  inspectVolume: {
    tag: 'volumes',
    summary: 'Inspect a volume',
    responses: { 200: json('The volume.', schemaRef('VolumeSummary')) },
    statuses: [404],
  },
  updateVolume: {
    tag: 'volumes',
    summary: "Change a volume's quota or expiry",
    description: prose(
      '`quota`: sets, lifts (null) or keeps (absent) each limit of a volume made with a quota; 409 for one made without.',
      '`ttlSeconds` sets the expiry that far from now, `expiresAt` to an instant, null (either) clears it; `extendOnWrite` alone turns pushing it back (on writes into the volume itself) on or off.',
    ),
    requestBody: jsonBody('UpdateVolumeRequest', false),
    responses: { 200: json('The volume.', schemaRef('VolumeSummary')) },
    statuses: [404, 409],
  },
  volumeFeed: {
    tag: 'volumes',
    summary: "The volume's change feed",
    description: prose(
      "Every change of the volume's tree, through any container that mounts it or directly, numbered in commit order with no gap (see the container feed).",
      'Pass `next` as `after` to go on; `wait` waits for the next change. A cursor older than the 7 days kept answers 410.',
    ),
    responses: { 200: json('A page of changes.', schemaRef('FeedPage')) },
    statuses: [404, 410],
  },
  removeVolume: {
    tag: 'volumes',
    summary: 'Remove a volume (`docker volume rm`)',
    description: '409 while a container uses it. Its files are reclaimed by the sweep.',
    query: { force: 'A missing volume answers 204 instead of 404. Does not remove a volume in use.' },
    responses: removed,
    statuses: [404, 409],
  },
};

const uploads: Record<string, OperationDoc> = {
  createUpload: {
    tag: 'uploads',
    summary: 'Start a presigned upload',
    description: prose(
      'Answers a presigned URL: send the bytes there with the given method before it expires,',
      'then name the upload with `?upload=<id>` in a file PUT or PATCH or an image load.',
      'With `{"load": true}` the bytes are loaded as an image archive when they land, by the job the answer names: nothing else to call.',
    ),
    requestBody: jsonBody('CreateUploadRequest', false),
    responses: { 201: json('The upload.', schemaRef('Upload')) },
  },
};

/**
 * The file API is the same over the three trees. Images are read-only; volume names are exact,
 * so only image and container references can be an ambiguous prefix (409).
 */
function fileOperations(tree: 'image' | 'container' | 'volume'): Record<string, OperationDoc> {
  const inTree = `in ${tree === 'image' ? 'an' : 'a'} ${tree}`;
  const ambiguous: Status[] = tree === 'volume' ? [] : [409];
  const preconditions: HeaderParameter[] = ['IfMatch', 'IfNoneMatch'];
  const reads: Record<string, OperationDoc> = {
    Root: {
      tag: 'files',
      summary: `List the ${tree}'s root directory`,
      responses: { 200: responseRef('DirListing') },
      statuses: [404, ...ambiguous],
    },
    Get: {
      tag: 'files',
      summary: `Read a file, list a directory, or stat a path ${inTree}`,
      description: prose(
        'A file answers its bytes (200, or 206 with `Range`); a directory answers a page of its entries (`cursor`, `limit`);',
        '`?stat=true` answers the FileStat of any path.',
        '`If-None-Match` matching the ETag (or `*`) answers 304; `If-Match` not matching answers 412.',
      ),
      headers: ['Range', ...preconditions],
      responses: { 200: responseRef('FileRead'), 206: responseRef('FilePartial') },
      statuses: [303, 304, 404, ...ambiguous, 412, 413, 416],
    },
    Head: {
      tag: 'files',
      summary: `Stat a path ${inTree} through headers`,
      description: 'As GET, without a body: the stat headers, and for a file `Content-Length`, `Accept-Ranges` and (with `Range`) `Content-Range`.',
      headers: ['Range', ...preconditions],
      responses: { 200: responseRef('HeadOk'), 206: responseRef('HeadPartial') },
      statuses: [304, 404, ...ambiguous, 412, 416],
    },
  };
  const container = tree === 'container';
  const writes: Record<string, OperationDoc> = {
    Put: {
      tag: 'files',
      summary: 'Write a whole file, or make a directory or symlink',
      description: prose(
        '`?type=file` (default) creates or replaces the file with the body, or with a finished upload (`?upload=<id>`);',
        'a symlink at the path is followed.',
        '`?type=dir` makes a directory (`?parents=true` makes missing parents and accepts an existing directory).',
        '`?type=symlink` makes a symlink to `?target=` or to the body as text.',
        '`If-Match` requires the current ETag; `If-None-Match: *` creates only.',
        ...(container ? ['Writes under a read-only mount answer 403.'] : []),
      ),
      headers: ['ModeHeader', ...preconditions],
      requestBody: requestBodyRef('PutBody'),
      responses: { 200: responseRef('FileStatWritten'), 201: responseRef('FileStatCreated') },
      statuses: [404, 409, 412, 413, 507],
    },
    Patch: {
      tag: 'files',
      summary: 'Write bytes at an offset, or change attributes',
      description: prose(
        'With `Content-Type: application/json`, sets attributes:',
        '`size` truncates or extends with zeros; `mode`, `uid`, `gid`, `mtime` change metadata.',
        'Otherwise the body (or `?upload=<id>`) is written at `?offset=N` or at the end with `?append=true`; the file must exist.',
        '`If-Match` requires the current ETag.',
      ),
      headers: preconditions,
      requestBody: requestBodyRef('PatchBody'),
      responses: { 200: responseRef('FileStatWritten') },
      statuses: [404, 409, 412, 413, 507],
    },
    Delete: {
      tag: 'files',
      summary: 'Remove a file, symlink or directory',
      description: prose(
        'A non-empty directory needs `?recursive=true` (else 409 ENOTEMPTY).',
        container ? 'The root and mount points cannot be removed. Removing a path that exists in the image leaves a whiteout.' : 'The root cannot be removed.',
      ),
      headers: preconditions,
      responses: removed,
      statuses: [404, 409, 412],
    },
    Post: {
      tag: 'files',
      summary: 'Rename, link, symlink or mkdir at the path',
      description: prose(
        '`rename` moves the path to `to` (200).',
        '`link` makes the path another name of the existing file `target`',
        '(201; a directory is refused with EPERM, a symlink is linked as a copy of itself).',
        '`symlink` makes the path a symlink to `target` (201). `mkdir` makes the path a directory (201).',
        ...(container ? ['Rename and link cannot cross a volume mount.'] : []),
      ),
      requestBody: jsonBody('FileAction', true),
      responses: { 200: responseRef('FileStatRenamed'), 201: responseRef('FileStatCreated') },
      statuses: [404, 409, 507],
    },
  };
  const all = tree === 'image' ? reads : { ...reads, ...writes };
  return Object.fromEntries(Object.entries(all).map(([method, doc]) => [`${tree}Fs${method}`, doc]));
}

export const operationDocs: Readonly<Record<string, OperationDoc>> = {
  ...system,
  ...images,
  ...fileOperations('image'),
  ...containers,
  ...fileOperations('container'),
  ...volumes,
  ...fileOperations('volume'),
  ...uploads,
};
