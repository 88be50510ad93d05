import { cloudServices } from '../composition.js';
import { dockerOperations } from '../docker/operations.js';
import { createHandler } from '../http/create-handler.js';

export const handler = createHandler('docker', dockerOperations, cloudServices);
