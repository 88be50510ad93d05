import { InvalidInputError, StrataError } from '../../shared/errors.js';
import type { HttpResult, RequestContext } from '../http/types.js';

/** The API versions served: the docker CLI 28 negotiates 1.47, Debian's CLI 20.10 asks for 1.41. */
export const MAX_API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';

/** 501: a Docker feature Strata does not have. "not supported" lets `docker inspect` try the next object type. */
export class NotImplementedError extends StrataError {
  readonly status = 501;
  readonly code = 'not_implemented';
}

/** What a Docker operation receives besides the request: path parameters, the query and the API version. */
export interface DockerCall {
  readonly request: RequestContext;
  readonly params: Readonly<Record<string, string>>;
  /** Every value of each query parameter, in order (`names=a&names=b`, `changes=ENV a=1,b`). */
  readonly query: URLSearchParams;
  /** `1.47` from `/v1.47/...`; the newest served when the path has none. */
  readonly version: string;
}

export type DockerOperation = (call: DockerCall) => Promise<HttpResult>;

export interface DockerRoute {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** `{name}` is one segment; `{name*}` is one or more (image names hold slashes). */
  readonly path: string;
  readonly operation: DockerOperation;
}

interface CompiledRoute {
  readonly route: DockerRoute;
  readonly pattern: RegExp;
  readonly names: readonly string[];
}

/** Matches `/v1.NN/...` and plain paths against a table of Docker routes. */
export class DockerRouter {
  private readonly compiled: CompiledRoute[];

  constructor(routes: readonly DockerRoute[]) {
    this.compiled = routes.map((route) => {
      const names: string[] = [];
      const source = route.path.replace(/\{(\w+)(\*?)\}/g, (_, name: string, many: string) => {
        names.push(name);
        return many ? '(.+)' : '([^/]+)';
      });
      return { route, pattern: new RegExp(`^${source}/?$`), names };
    });
  }

  dispatch(request: RequestContext): Promise<HttpResult> {
    const { version, path } = splitVersion(request.event.rawPath ?? request.event.requestContext.http.path);
    const method = request.event.requestContext.http.method.toUpperCase();
    // HEAD /_ping is the CLI's first request; every GET route answers HEAD with its headers.
    const candidates = this.compiled.filter((c) => c.route.method === method || (method === 'HEAD' && c.route.method === 'GET'));
    for (const { route, pattern, names } of candidates.sort((a, b) => Number(b.route.method === method) - Number(a.route.method === method))) {
      const match = pattern.exec(path);
      if (!match) continue;
      const params: Record<string, string> = {};
      names.forEach((name, i) => {
        params[name] = decodeSegment(match[i + 1], name);
      });
      return route.operation({ request, params, query: new URLSearchParams(request.event.rawQueryString ?? ''), version });
    }
    throw new NotImplementedError(`${method} ${path} is not supported: Strata serves the storage half of the Docker Engine API (images, containers as file trees, volumes, system df)`);
  }
}

function splitVersion(rawPath: string): { version: string; path: string } {
  const match = /^\/v(\d+\.\d+)(\/.*)$/.exec(rawPath);
  if (!match) return { version: MAX_API_VERSION, path: rawPath };
  const version = match[1];
  if (compareVersions(version, MAX_API_VERSION) > 0) throw new InvalidInputError(`client version ${version} is too new. Maximum supported API version is ${MAX_API_VERSION}`);
  if (compareVersions(version, MIN_API_VERSION) < 0)
    throw new InvalidInputError(`client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  return { version, path: match[2] };
}

/** Compares `1.41` with `1.47` numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

function decodeSegment(value: string, name: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidInputError(`${name} is not valid percent-encoding`);
  }
}
