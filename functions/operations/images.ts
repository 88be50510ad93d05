import { Readable } from 'node:stream';
import { InvalidInputError } from '../../shared/errors.js';
import { flag } from '../http/parse.js';
import { parseWith, TagRequest } from '../http/schemas.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';
import { uploadedBlob } from './files.js';
import { idempotently } from './idempotent.js';
import { jobBody, queuedJob } from './jobs.js';

/** Images: list, load (inline tar, a finished upload, or as a job), inspect, tag, untag, remove, save; jobs. */
export const imageOperations: Record<string, Operation> = {
  listImages: async ({ tenant, services }) => json(200, await services.engine.images.list(tenant)),

  loadImage: async (request) => {
    const { tenant, services, query } = request;
    if (flag(query, 'async')) {
      // Past API Gateway's 30 s: the load runs as a job from the table's stream; poll its URL.
      if (!query.upload) throw new InvalidInputError('an asynchronous load takes ?upload=<id> of a finished upload');
      const job = await services.engine.jobs.queueLoad(tenant, query.upload, await uploadedBlob(request, query.upload));
      return json(202, await jobBody(job, request), { location: `/v1/jobs/${job.id}` });
    }
    const source = query.upload ? Readable.from(await services.blobs.get(await uploadedBlob(request, query.upload))) : request.body();
    if (!query.upload && request.body().length === 0) throw new InvalidInputError('send a docker-archive or OCI layout tar as the body, or ?upload=<id>');
    const { result: images, headers } = await idempotently(request, (recordAlso) => services.engine.images.load(tenant, Buffer.isBuffer(source) ? [source] : source, recordAlso));
    return json(201, { images }, headers);
  },

  getJob: async (request) => json(200, await jobBody(await request.services.engine.jobs.get(request.tenant, request.params.job), request)),

  inspectImage: async ({ tenant, services, params }) => json(200, await services.engine.images.inspect(tenant, params.ref)),

  removeImage: async ({ tenant, services, params, query }) => json(200, await services.engine.images.remove(tenant, params.ref, { force: flag(query, 'force') })),

  tagImage: async (request) => {
    const tag = await request.services.engine.images.tag(request.tenant, request.params.ref, parseWith(TagRequest, request.json()).tag);
    return json(201, { tag });
  },

  untagImage: async ({ tenant, services, params }) => {
    await services.engine.images.untag(tenant, params.tag, params.ref);
    return { statusCode: 204 };
  },

  saveImage: async (request) => {
    const { tenant, services, params, query } = request;
    if (flag(query, 'async')) {
      // Checked now, so a typo is a 404 here rather than a failed job later.
      await services.engine.images.resolve(tenant, params.ref);
      return queuedJob(request, { jobKind: 'save', refs: [params.ref] });
    }
    return { statusCode: 200, headers: { 'content-type': 'application/x-tar' }, body: await services.engine.images.save(tenant, [params.ref]) };
  },
};
