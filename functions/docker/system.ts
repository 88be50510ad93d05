import { arch, cpus, totalmem } from 'node:os';
import { json } from '../http/responses.js';
import { containerSummary, volumeSummary } from './shapes.js';
import { MAX_API_VERSION, MIN_API_VERSION, type DockerRoute } from './router.js';
import { imageSummary } from './shapes.js';

const ENGINE_VERSION = '0.1.0-strata';
const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
const UNAME_MACHINE: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

const pingHeaders = {
  'api-version': MAX_API_VERSION,
  ostype: 'linux',
  'docker-experimental': 'false',
  'cache-control': 'no-cache, no-store, must-revalidate',
  pragma: 'no-cache',
};

/** Ping, version, info and disk usage: what `docker version`, `docker info` and `docker system df` ask. */
export const systemRoutes: DockerRoute[] = [
  { method: 'GET', path: '/_ping', operation: async () => ({ statusCode: 200, headers: { ...pingHeaders, 'content-type': 'text/plain; charset=utf-8' }, body: 'OK' }) },

  {
    method: 'GET',
    path: '/version',
    operation: async () => {
      const details = {
        ApiVersion: MAX_API_VERSION,
        MinAPIVersion: MIN_API_VERSION,
        GitCommit: 'strata',
        GoVersion: `node${process.versions.node}`,
        Os: 'linux',
        Arch: GOARCH[arch()] ?? arch(),
        BuildTime: '',
      };
      return json(200, {
        Platform: { Name: 'Strata (storage only: images, containers as file trees, volumes)' },
        Components: [{ Name: 'Engine', Version: ENGINE_VERSION, Details: { ...details, Experimental: 'false' } }],
        Version: ENGINE_VERSION,
        ...details,
        KernelVersion: 'none (Strata runs no processes)',
      });
    },
  },

  {
    method: 'GET',
    path: '/info',
    operation: async ({ request }) => {
      const { tenant, services } = request;
      const [images, containers] = await Promise.all([services.engine.images.records(tenant), services.engine.containers.list(tenant)]);
      return json(200, {
        ID: `strata:${tenant}`,
        Name: 'strata',
        Containers: containers.length,
        ContainersRunning: 0,
        ContainersPaused: 0,
        ContainersStopped: containers.length,
        Images: images.length,
        Driver: 'strata',
        DriverStatus: [['Storage', 'copy-on-write layers in a metadata store and a blob store']],
        Plugins: { Volume: ['local'], Network: [], Authorization: null, Log: [] },
        MemoryLimit: false,
        SwapLimit: false,
        Debug: false,
        NFd: 0,
        NGoroutines: 0,
        SystemTime: new Date().toISOString(),
        LoggingDriver: 'none',
        CgroupDriver: 'none',
        CgroupVersion: '2',
        NEventsListener: 0,
        KernelVersion: 'none',
        OperatingSystem: 'Strata',
        OSVersion: ENGINE_VERSION,
        OSType: 'linux',
        Architecture: UNAME_MACHINE[arch()] ?? arch(),
        IndexServerAddress: 'https://index.docker.io/v1/',
        RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
        NCPU: cpus().length,
        MemTotal: totalmem(),
        DockerRootDir: '',
        Labels: [],
        ExperimentalBuild: false,
        ServerVersion: ENGINE_VERSION,
        Runtimes: {},
        DefaultRuntime: 'none',
        Swarm: { LocalNodeState: 'inactive', ControlAvailable: false, NodeID: '', NodeAddr: '', RemoteManagers: null, Error: '' },
        LiveRestoreEnabled: false,
        Isolation: '',
        InitBinary: '',
        SecurityOptions: [],
        Warnings: ['Strata stores images, containers and volumes; it does not run containers'],
      });
    },
  },

  {
    method: 'GET',
    path: '/system/df',
    operation: async ({ request }) => {
      const usage = await request.services.engine.diskUsage(request.tenant);
      return json(200, {
        // Each layer once, however many images share it: the sum of unique and shared bytes.
        LayersSize: usage.images.size - usage.images.sharedSize + sharedOnce(usage.images.items),
        Images: usage.images.items.map((image) => imageSummary(image, { sizes: true })),
        Containers: usage.containers.items.map((container) => containerSummary(container)),
        Volumes: usage.volumes.items.map((volume) => volumeSummary(volume, { usage: true })),
        BuildCache: [],
      });
    },
  },
];

/** Bytes of shared layers, each counted once. */
function sharedOnce(images: readonly { layers: { diffId: string; size: number }[] }[]): number {
  const users = new Map<string, { size: number; count: number }>();
  for (const image of images)
    for (const layer of new Map(image.layers.map((l) => [l.diffId, l])).values()) users.set(layer.diffId, { size: layer.size, count: (users.get(layer.diffId)?.count ?? 0) + 1 });
  return [...users.values()].filter((u) => u.count > 1).reduce((sum, u) => sum + u.size, 0);
}
