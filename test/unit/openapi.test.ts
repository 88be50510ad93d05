import { describe, expect, it } from 'vitest';
import { querySchemas } from '../../functions/http/schemas.js';
import { documentedRoutes as routes, openApiDocument } from '../../functions/openapi.js';
import type { Route } from '../../functions/routes.js';

/**
 * The OpenAPI document (written paths, generated request schemas) must describe exactly the route table: same paths and
 * methods, operationId = route.operation, errors as the Error schema, public routes unsecured,
 * and no dangling $ref.
 */

type Json = Record<string, any>;

const doc = openApiDocument() as Json;

const METHODS = ['get', 'head', 'put', 'patch', 'post', 'delete', 'options', 'trace'] as const;
const ERROR_REF = '#/components/schemas/Error';

/** API Gateway's greedy `{path+}` is `{path}` in OpenAPI. */
const openapiPath = (route: Route) => route.path.replace(/\{(\w+)\+\}/g, '{$1}');
const key = (method: string, path: string) => `${method.toUpperCase()} ${path}`;

/** Every operation in the document, by `METHOD /path`. */
const operations = new Map<string, Json>();
for (const [path, item] of Object.entries(doc.paths as Json)) {
  for (const method of METHODS) if (item[method]) operations.set(key(method, path), item[method]);
}

/** Follows a local `$ref` (`#/a/b/c`); undefined when it points nowhere. */
function resolvePointer(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: any = doc;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function deref(value: Json): Json {
  let node = value;
  for (let hops = 0; node && typeof node.$ref === 'string' && hops < 10; hops++) node = resolvePointer(node.$ref) as Json;
  return node;
}

/** Every `$ref` string anywhere in the document, with where it was found. */
function allRefs(node: unknown, at = '#'): { ref: string; at: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => allRefs(v, `${at}/${i}`));
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [{ ref: v, at }] : allRefs(v, `${at}/${k}`)));
}

function referencesError(response: Json): boolean {
  const resolved = deref(response);
  return Object.values((resolved?.content ?? {}) as Json).some((media) => media?.schema?.$ref === ERROR_REF);
}

describe('openapi.json', () => {
  it('lists for each operation exactly the query parameters its validator takes', () => {
    const pathItems = doc.paths as Json;
    for (const route of routes) {
      const item = pathItems[openapiPath(route)];
      const parameters = [...(item.parameters ?? []), ...(item[route.method.toLowerCase()].parameters ?? [])].map(deref);
      const documented = parameters.filter((p) => p.in === 'query').map((p) => p.name).sort();
      const validated = Object.keys(querySchemas[route.operation]?.shape ?? {}).sort();
      expect(documented, `${route.method} ${route.path}`).toEqual(validated);
    }
  });

  it('takes its request schemas from the validators, which refuse unknown fields', () => {
    const schemas = doc.components.schemas as Json;
    expect(schemas.CreateContainerRequest).toMatchObject({ type: 'object', required: ['image'], additionalProperties: false });
    expect(schemas.CreateContainerRequest.properties.mounts.items).toMatchObject({ required: ['target'], additionalProperties: false });
    expect(schemas.FileAttributes.properties.uid).toMatchObject({ type: 'integer', minimum: 0, maximum: 4294967294 });
    expect(schemas.FileAction.oneOf ?? schemas.FileAction.anyOf).toHaveLength(4);
  });

  it('is OpenAPI 3.1', () => {
    expect(doc.openapi).toMatch(/^3\.1/);
  });

  it('has every route of the route table, with operationId = route.operation', () => {
    for (const route of routes) {
      const operation = operations.get(key(route.method, openapiPath(route)));
      expect(operation, `${route.method} ${route.path} is missing`).toBeDefined();
      expect(operation!.operationId, `${route.method} ${route.path}`).toBe(route.operation);
    }
  });

  it('has no operation that is not in the route table', () => {
    const fromTable = new Set(routes.map((route) => key(route.method, openapiPath(route))));
    expect([...operations.keys()].filter((k) => !fromTable.has(k))).toEqual([]);
    expect(operations.size).toBe(routes.length);
  });

  it('has unique operationIds', () => {
    const ids = [...operations.values()].map((op) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('declares every path parameter of every templated path', () => {
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const method of METHODS) {
        if (!item[method]) continue;
        const params = [...(item.parameters ?? []), ...(item[method].parameters ?? [])].map(deref).filter((p) => p.in === 'path');
        expect(params.map((p) => p.name).sort(), `${method.toUpperCase()} ${path}`).toEqual(templated);
        for (const p of params) expect(p.required, `${p.name} in ${path}`).toBe(true);
      }
    }
  });

  it('gives every non-public operation a 4xx response with the Error schema', () => {
    const publicKeys = new Set(routes.filter((r) => r.public).map((r) => key(r.method, openapiPath(r))));
    for (const [k, operation] of operations) {
      if (publicKeys.has(k)) continue;
      const errors = Object.entries(operation.responses as Json).filter(([status, response]) => /^4\d\d$/.test(status) && referencesError(response));
      expect(errors.length, `${k} declares no 4xx with ${ERROR_REF}`).toBeGreaterThan(0);
    }
  });

  it('secures everything by default and leaves exactly the public routes open', () => {
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toContainEqual({ bearerAuth: [] });
    for (const route of routes) {
      const operation = operations.get(key(route.method, openapiPath(route)))!;
      if (route.public) expect(operation.security, `${route.method} ${route.path}`).toEqual([]);
      else expect(operation.security, `${route.method} ${route.path} overrides security`).toBeUndefined();
    }
  });

  it('resolves every $ref to an existing component', () => {
    const refs = allRefs(doc);
    expect(refs.length).toBeGreaterThan(0);
    const dangling = refs.filter(({ ref }) => !ref.startsWith('#/components/') || resolvePointer(ref) === undefined);
    expect(dangling).toEqual([]);
  });
});
