import written from './openapi.json' with { type: 'json' };
import { requestJsonSchemas } from './http/schemas.js';
import { DEFAULT_ROUTE, routes } from './routes.js';

/** The routes this document describes: not the Docker Engine API behind the default route, which moby's swagger documents. */
export const documentedRoutes = routes.filter((route) => route.path !== DEFAULT_ROUTE);

/**
 * The OpenAPI document: paths, responses and response schemas as written in openapi.json, and
 * the request body schemas generated from the very zod schemas the handlers validate with.
 */
export function openApiDocument(): Record<string, unknown> {
  return { ...written, components: { ...written.components, schemas: { ...written.components.schemas, ...requestJsonSchemas() } } };
}
