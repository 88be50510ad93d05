import written from './openapi.json' with { type: 'json' };
import { requestJsonSchemas } from './http/schemas.js';

/**
 * The OpenAPI document: paths, responses and response schemas as written in openapi.json, and
 * the request body schemas generated from the very zod schemas the handlers validate with.
 */
export function openApiDocument(): Record<string, unknown> {
  return { ...written, components: { ...written.components, schemas: { ...written.components.schemas, ...requestJsonSchemas() } } };
}
