import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import { imageOperations } from '../operations/images.js';

export const handler = createHandler('images', imageOperations, cloudServices);
