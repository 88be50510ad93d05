import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import { containerOperations } from '../operations/containers.js';

export const handler = createHandler('containers', containerOperations, cloudServices);
