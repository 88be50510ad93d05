/**
 * The one route table. The local server and the CDK stack both read it, so the HTTP surface
 * cannot drift between them. `handler` names a module in functions/handlers/ exporting `handler`;
 * routes that share a handler module share one Lambda function.
 */
export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'PATCH' | 'POST' | 'DELETE';

export type HandlerName = 'images' | 'containers' | 'files' | 'volumes' | 'system' | 'uploads' | 'docker';

/** API Gateway's catch-all: the route of every request no other route takes. */
export const DEFAULT_ROUTE = '$default';

export interface Route {
  /** `ANY` only on the default route. */
  readonly method: HttpMethod | 'ANY';
  /** API Gateway path syntax: `{name}` for one segment, `{path+}` for the rest; or DEFAULT_ROUTE. */
  readonly path: string;
  readonly handler: HandlerName;
  /** Operation name, used as the OpenAPI operationId and in logs. */
  readonly operation: string;
  /** True for routes that answer without credentials. */
  readonly public?: boolean;
}

const fsMethods: HttpMethod[] = ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'POST'];

export const routes: readonly Route[] = [
  { method: 'GET', path: '/healthz', handler: 'system', operation: 'health', public: true },
  { method: 'GET', path: '/openapi.json', handler: 'system', operation: 'openapi', public: true },
  { method: 'GET', path: '/v1/system/df', handler: 'system', operation: 'systemDf' },
  { method: 'POST', path: '/v1/system/sweep', handler: 'system', operation: 'sweep' },
  { method: 'GET', path: '/v1/events', handler: 'system', operation: 'listEvents' },

  { method: 'GET', path: '/v1/images', handler: 'images', operation: 'listImages' },
  { method: 'POST', path: '/v1/images/load', handler: 'images', operation: 'loadImage' },
  { method: 'GET', path: '/v1/jobs/{job}', handler: 'images', operation: 'getJob' },
  { method: 'GET', path: '/v1/images/{ref}', handler: 'images', operation: 'inspectImage' },
  { method: 'DELETE', path: '/v1/images/{ref}', handler: 'images', operation: 'removeImage' },
  { method: 'POST', path: '/v1/images/{ref}/tags', handler: 'images', operation: 'tagImage' },
  { method: 'DELETE', path: '/v1/images/{ref}/tags/{tag}', handler: 'images', operation: 'untagImage' },
  { method: 'GET', path: '/v1/images/{ref}/save', handler: 'images', operation: 'saveImage' },
  { method: 'GET', path: '/v1/images/{ref}/fs', handler: 'files', operation: 'imageFsRoot' },
  { method: 'GET', path: '/v1/images/{ref}/fs/{path+}', handler: 'files', operation: 'imageFsGet' },
  { method: 'HEAD', path: '/v1/images/{ref}/fs/{path+}', handler: 'files', operation: 'imageFsHead' },

  { method: 'POST', path: '/v1/containers', handler: 'containers', operation: 'createContainer' },
  { method: 'GET', path: '/v1/containers', handler: 'containers', operation: 'listContainers' },
  { method: 'GET', path: '/v1/containers/{id}', handler: 'containers', operation: 'inspectContainer' },
  { method: 'PATCH', path: '/v1/containers/{id}', handler: 'containers', operation: 'updateContainer' },
  { method: 'DELETE', path: '/v1/containers/{id}', handler: 'containers', operation: 'removeContainer' },
  { method: 'GET', path: '/v1/containers/{id}/changes', handler: 'containers', operation: 'containerChanges' },
  { method: 'GET', path: '/v1/containers/{id}/feed', handler: 'containers', operation: 'containerFeed' },
  { method: 'POST', path: '/v1/containers/{id}/fork', handler: 'containers', operation: 'forkContainer' },
  { method: 'POST', path: '/v1/containers/{id}/merge', handler: 'containers', operation: 'mergeContainer' },
  { method: 'POST', path: '/v1/containers/{id}/commit', handler: 'containers', operation: 'commitContainer' },
  { method: 'GET', path: '/v1/containers/{id}/export', handler: 'containers', operation: 'exportContainer' },
  { method: 'GET', path: '/v1/containers/{id}/fs', handler: 'files', operation: 'containerFsRoot' },
  ...fsMethods.map((method) => ({
    method,
    path: '/v1/containers/{id}/fs/{path+}',
    handler: 'files' as const,
    operation: `containerFs${method[0]}${method.slice(1).toLowerCase()}`,
  })),

  { method: 'POST', path: '/v1/volumes', handler: 'volumes', operation: 'createVolume' },
  { method: 'GET', path: '/v1/volumes', handler: 'volumes', operation: 'listVolumes' },
  { method: 'POST', path: '/v1/volumes/prune', handler: 'volumes', operation: 'pruneVolumes' },
  { method: 'GET', path: '/v1/volumes/{name}', handler: 'volumes', operation: 'inspectVolume' },
  { method: 'PATCH', path: '/v1/volumes/{name}', handler: 'volumes', operation: 'updateVolume' },
  { method: 'GET', path: '/v1/volumes/{name}/feed', handler: 'volumes', operation: 'volumeFeed' },
  { method: 'DELETE', path: '/v1/volumes/{name}', handler: 'volumes', operation: 'removeVolume' },
  { method: 'GET', path: '/v1/volumes/{name}/fs', handler: 'files', operation: 'volumeFsRoot' },
  ...fsMethods.map((method) => ({
    method,
    path: '/v1/volumes/{name}/fs/{path+}',
    handler: 'files' as const,
    operation: `volumeFs${method[0]}${method.slice(1).toLowerCase()}`,
  })),

  { method: 'POST', path: '/v1/uploads', handler: 'uploads', operation: 'createUpload' },

  // The Docker Engine API (`/_ping`, `/v1.47/containers/json`, ...) routes itself: image names
  // hold slashes anywhere in a path, which API Gateway's route syntax cannot match.
  { method: 'ANY', path: DEFAULT_ROUTE, handler: 'docker', operation: 'dockerEngine' },
];

/** The route key API Gateway puts in each event (`GET /v1/images`, or `$default`). */
export function routeKeyOf(route: Route): string {
  return route.path === DEFAULT_ROUTE ? DEFAULT_ROUTE : `${route.method} ${route.path}`;
}
