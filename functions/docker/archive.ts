import { Readable } from 'node:stream';
import type { TreeTarget } from '../../shared/domain/files.js';
import type { FileStat } from '../../shared/domain/tree-read.js';
import { InvalidInputError, NotFoundError } from '../../shared/errors.js';
import type { RequestContext } from '../http/types.js';
import { orNoSuch } from './errors.js';
import { tarOfPath } from './path-tar.js';
import { extractInto, lstat } from './path-untar.js';
import type { DockerCall, DockerRoute } from './router.js';

/** Go's os.FileMode bits, which the CLI reads from the path-stat header. */
const GO_MODE = { dir: 2 ** 31, symlink: 2 ** 27, setuid: 2 ** 23, setgid: 2 ** 22, sticky: 2 ** 20 };

const truthy = (value: string | null) => value !== null && /^(1|true|yes)$/i.test(value);

/** `docker cp` both ways: HEAD and GET stat or archive a path, PUT unpacks a tar into a directory. */
export const archiveRoutes: DockerRoute[] = [
  {
    method: 'GET',
    path: '/containers/{id}/archive',
    operation: async (call) => {
      const { request, target, path, stat } = await statCall(call);
      const headers = { 'x-docker-container-path-stat': await statHeader(request, target, stat), 'content-type': 'application/x-tar' };
      if (request.event.requestContext.http.method === 'HEAD') return { statusCode: 200, headers };
      return { statusCode: 200, headers, body: tarOfPath(request.services.engine.files, request.tenant, target, stat, rootName(path)), noRedirect: true };
    },
  },
  {
    method: 'PUT',
    path: '/containers/{id}/archive',
    operation: async ({ request, params, query }) => {
      const target: TreeTarget = { kind: 'container', ref: params.id };
      const path = requiredPath(query.get('path'));
      const files = request.services.engine.files;
      await orNoSuch(`No such container: ${params.id}`, request.services.engine.containers.record(request.tenant, params.id));
      const dir = await files.stat(request.tenant, target, path, { follow: true }).catch((error) => {
        if (error instanceof NotFoundError) throw new NotFoundError(`Could not find the file ${path} in container ${params.id}`);
        throw error;
      });
      if (dir.type !== 'dir') throw new InvalidInputError(`extraction point is not a directory: ${path} is not a directory`);
      await extractInto(files, request.tenant, target, dir.path, Readable.from([request.body()]), {
        noOverwriteDirNonDir: truthy(query.get('noOverwriteDirNonDir')),
        copyUidGid: truthy(query.get('copyUIDGID')),
      });
      return { statusCode: 200, headers: {} };
    },
  },
];

function requiredPath(path: string | null): string {
  if (!path) throw new InvalidInputError('path is required: the path in the container');
  return path.startsWith('/') ? path : `/${path}`;
}

async function statCall({ request, params, query }: DockerCall): Promise<{ request: RequestContext; target: TreeTarget; path: string; stat: FileStat }> {
  const target: TreeTarget = { kind: 'container', ref: params.id };
  const path = requiredPath(query.get('path'));
  await orNoSuch(`No such container: ${params.id}`, request.services.engine.containers.record(request.tenant, params.id));
  // `/dir/.` and `/dir/` name the directory; a final symlink is the link itself, as lstat sees it.
  const follow = /\/\.?$/.test(path);
  const stat = follow
    ? await request.services.engine.files.stat(request.tenant, target, path, { follow }).catch(() => undefined)
    : await lstat(request.services.engine.files, request.tenant, target, path);
  if (!stat) throw new NotFoundError(`Could not find the file ${path} in container ${params.id}`);
  return { request, target, path, stat };
}

/** The root name of the entries: the path's last name (`.` for `/` and `/dir/.`). */
function rootName(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return parts.length === 0 ? '.' : parts[parts.length - 1];
}

/** base64 of `{name, size, mode, mtime, linkTarget}`; linkTarget is a symlink's target resolved in the container. */
async function statHeader(request: RequestContext, target: TreeTarget, stat: FileStat): Promise<string> {
  let mode = stat.mode & 0o777;
  if (stat.mode & 0o4000) mode += GO_MODE.setuid;
  if (stat.mode & 0o2000) mode += GO_MODE.setgid;
  if (stat.mode & 0o1000) mode += GO_MODE.sticky;
  if (stat.type === 'dir') mode += GO_MODE.dir;
  let linkTarget = '';
  if (stat.type === 'symlink') {
    mode += GO_MODE.symlink;
    const followed = await request.services.engine.files.stat(request.tenant, target, stat.path, { follow: true }).catch(() => undefined);
    linkTarget = followed?.path ?? stat.target ?? '';
  }
  const value = { name: stat.name || '/', size: stat.size, mode, mtime: new Date(stat.mtime).toISOString(), linkTarget };
  return Buffer.from(JSON.stringify(value)).toString('base64');
}
