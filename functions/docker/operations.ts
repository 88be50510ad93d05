import type { Operation } from '../http/types.js';
import { containerRoutes } from './containers.js';
import { eventRoutes } from './events.js';
import { imageRoutes } from './images.js';
import { DockerRouter } from './router.js';
import { isRegistryPath, registryApi } from '../registry/registry-api.js';
import { systemRoutes } from './system.js';
import { volumeRoutes } from './volumes.js';

const router = new DockerRouter([...systemRoutes, ...imageRoutes, ...containerRoutes, ...volumeRoutes, ...eventRoutes]);

/**
 * The Docker Engine API behind the default route: one operation that routes by Docker's paths;
 * the registry's `/v2/` paths (which API Gateway's route syntax cannot match either) go to it.
 */
export const dockerOperations: Record<string, Operation> = {
  dockerEngine: (request) => (isRegistryPath(request.event.rawPath ?? request.event.requestContext.http.path) ? registryApi(request) : router.dispatch(request)),
};
