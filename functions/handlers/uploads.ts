import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import { uploadOperations } from '../operations/uploads.js';

export const handler = createHandler('uploads', uploadOperations, cloudServices);
