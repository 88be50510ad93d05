import { Readable } from 'node:stream';
import { InvalidInputError } from '../../shared/errors.js';
import { flag } from '../http/parse.js';
import { parseWith, TagRequest } from '../http/schemas.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';
import { uploadedBlob } from './files.js';
import { idempotently } from './idempotent.js';

/** Images: list, load (inline tar or a finished upload), inspect, tag, untag, remove, save. */
export const imageOperations: Record<string, Operation> = {
  listImages: async ({ tenant, services }) => json(200, await services.engine.images.list(tenant)),

  loadImage: async (request) => {
    const { tenant, services, query } = request;
    const source = query.upload ? Readable.from(await services.blobs.get(await uploadedBlob(request, query.upload))) : request.body();
    if (!query.upload && request.body().length === 0) throw new InvalidInputError('send a docker-archive or OCI layout tar as the body, or ?upload=<id>');
    const { result: images, headers } = await idempotently(request, (recordAlso) => services.engine.images.load(tenant, Buffer.isBuffer(source) ? [source] : source, recordAlso));
    return json(201, { images }, headers);
  },

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

  saveImage: async ({ tenant, services, params }) => ({
    statusCode: 200,
    headers: { 'content-type': 'application/x-tar' },
    body: await services.engine.images.save(tenant, [params.ref]),
  }),
};
