import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import { volumeOperations } from '../operations/volumes.js';

export const handler = createHandler('volumes', volumeOperations, cloudServices);
