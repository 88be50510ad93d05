import { randomUUID } from 'node:crypto';
import { blobKeys, keys } from '../../shared/keys.js';
import { json } from '../http/responses.js';
import type { Operation } from '../http/types.js';

/**
 * Large bodies skip the function: the client gets a presigned PUT URL, sends the bytes to blob
 * storage, then names the upload (`?upload=<id>`) in a file write or an image load.
 */
export const uploadOperations: Record<string, Operation> = {
  createUpload: async ({ tenant, services }) => {
    const id = randomUUID();
    const key = blobKeys.upload(tenant);
    const expiresIn = services.config.presignSeconds;
    await services.meta.transact([{ op: 'put', item: { ...keys.upload(tenant, id), attrs: { key, created: Date.now() } }, conditions: [{ kind: 'absent' }] }]);
    const url = await services.blobs.presign(key, 'PUT', expiresIn);
    return json(201, { id, url, method: 'PUT', expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() });
  },
};
