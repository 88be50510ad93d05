import { CreateUploadRequest, parseWith } from '../http/schemas.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';

/**
 * Large bodies skip the function: the client gets a presigned PUT URL, sends the bytes to blob
 * storage, then names the upload (`?upload=<id>`) in a file write or an image load; or, made
 * with `{"load": true}`, the upload loads itself as a job when its bytes land.
 */
export const uploadOperations: Record<string, Operation> = {
  createUpload: async (request) => {
    const { tenant, services } = request;
    const { load } = parseWith(CreateUploadRequest, request.json());
    const upload = await services.engine.uploads.create(tenant, load ? 'load' : 'none');
    const expiresIn = services.config.presignSeconds;
    const url = await services.blobs.presign(upload.key, 'PUT', expiresIn);
    return json(201, {
      id: upload.id,
      url,
      method: 'PUT',
      expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString(),
      ...(upload.job ? { job: upload.job } : {}),
    });
  },
};
