import type { ContainerSummary } from '../../shared/domain/containers.js';
import { type ImageConfig, withProcessSettings } from '../../shared/domain/image-config.js';
import type { ImageSummary } from '../../shared/domain/images.js';
import type { VolumeSummary } from '../../shared/domain/volumes.js';
import { compareVersions } from './router.js';

/**
 * Strata's summaries in the shapes of moby's api/swagger.yaml. Fields about processes,
 * networks and hosts have the values of a container that was created and never started.
 */

const NEVER = '0001-01-01T00:00:00Z';
const seconds = (ms: number) => Math.floor(ms / 1000);
const iso = (ms: number) => new Date(ms).toISOString();

/** `docker image ls` and `docker system df`: SharedSize and Containers only where computed. */
export function imageSummary(image: ImageSummary, options: { sizes?: boolean; labels?: Record<string, string> } = {}) {
  return {
    Id: image.id,
    ParentId: image.parent ?? '',
    RepoTags: image.tags,
    RepoDigests: [],
    Created: seconds(image.created),
    Size: image.size,
    SharedSize: options.sizes ? image.sharedSize : -1,
    Labels: options.labels ?? {},
    Containers: options.sizes ? image.containers : -1,
  };
}

/** `docker image inspect`. */
export function imageInspect(image: ImageSummary, config: ImageConfig, version: string) {
  return {
    Id: image.id,
    RepoTags: image.tags,
    RepoDigests: [],
    Parent: image.parent ?? '',
    Comment: config.history?.at(-1)?.comment ?? '',
    Created: config.created ?? iso(image.created),
    DockerVersion: '',
    Author: config.author ?? '',
    Config: config.config ?? null,
    Architecture: config.architecture ?? '',
    Os: config.os ?? '',
    Size: image.size,
    // VirtualSize left the API in 1.44.
    ...(compareVersions(version, '1.44') < 0 ? { VirtualSize: image.size } : {}),
    GraphDriver: { Name: 'strata', Data: null },
    RootFS: { Type: 'layers', Layers: image.layers.map((l) => l.diffId) },
    Metadata: { LastTagTime: NEVER },
  };
}

function mounts(container: ContainerSummary) {
  return container.mounts.map((m) => ({ Type: 'volume', Name: m.volume, Source: '', Destination: m.target, Driver: 'local', Mode: m.readOnly ? 'ro' : '', RW: !m.readOnly, Propagation: '' }));
}

/** `docker ps`: every Strata container is in Docker's `created` state. */
export function containerSummary(container: ContainerSummary) {
  return {
    Id: container.id,
    Names: [`/${container.name}`],
    Image: container.imageRef ?? container.image,
    ImageID: container.image,
    Command: '',
    Created: seconds(container.created),
    Ports: [],
    ...(container.size === undefined ? {} : { SizeRw: container.size, SizeRootFs: container.virtualSize }),
    Labels: container.labels,
    State: 'created',
    Status: 'Created',
    HostConfig: { NetworkMode: 'none' },
    NetworkSettings: { Networks: {} },
    Mounts: mounts(container),
  };
}

/** `docker inspect` of a container; its Config is the image's with what `create` was given on top. */
export function containerInspect(container: ContainerSummary, image: ImageConfig, withSize: boolean) {
  const runtime = withProcessSettings(image.config, container.process);
  return {
    Id: container.id,
    Created: iso(container.created),
    Path: runtime.Entrypoint?.[0] ?? runtime.Cmd?.[0] ?? '',
    Args: [...(runtime.Entrypoint ?? []), ...(runtime.Cmd ?? [])].slice(1),
    State: { Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: NEVER, FinishedAt: NEVER },
    Image: container.image,
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: '',
    Name: `/${container.name}`,
    RestartCount: 0,
    Driver: 'strata',
    Platform: image.os ?? 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      Binds: container.mounts.filter((m) => !m.anonymous).map((m) => `${m.volume}:${m.target}${m.readOnly ? ':ro' : ''}`),
      NetworkMode: 'none',
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      Mounts: [],
    },
    GraphDriver: { Name: 'strata', Data: null },
    ...(withSize ? { SizeRw: container.size ?? 0, SizeRootFs: container.virtualSize ?? 0 } : {}),
    Mounts: mounts(container),
    Config: {
      Hostname: container.id.slice(0, 12),
      Domainname: '',
      User: runtime.User ?? '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: runtime.Env ?? null,
      Cmd: runtime.Cmd ?? null,
      Image: container.imageRef ?? container.image,
      Volumes: Object.fromEntries(container.mounts.filter((m) => m.anonymous).map((m) => [m.target, {}])),
      WorkingDir: runtime.WorkingDir ?? '',
      Entrypoint: runtime.Entrypoint ?? null,
      OnBuild: null,
      Labels: { ...(runtime.Labels ?? {}), ...container.labels },
    },
    NetworkSettings: { Networks: {}, Ports: {} },
  };
}

/** `docker volume ls` and `inspect`; UsageData (size, containers using it) in `docker system df`. */
export function volumeSummary(volume: VolumeSummary, options: { usage?: boolean } = {}) {
  return {
    Name: volume.name,
    Driver: 'local',
    Mountpoint: '',
    CreatedAt: iso(volume.created),
    Labels: volume.labels,
    Scope: 'local',
    Options: {},
    ...(options.usage ? { UsageData: { Size: volume.size, RefCount: volume.refCount } } : {}),
  };
}
