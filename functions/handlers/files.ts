import { cloudServices } from '../composition.js';
import { createHandler } from '../http/create-handler.js';
import { fileOperations } from '../operations/files.js';

export const handler = createHandler('files', fileOperations, cloudServices);
