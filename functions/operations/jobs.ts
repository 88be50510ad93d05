import type { JobRecord, JobSpec } from '../../shared/domain/jobs.js';
import { json } from '../http/responses.js';
import type { HttpResult, RequestContext } from '../http/types.js';

/** A job as clients see it: no storage keys, no lease; a finished save or export links its tar. */
export async function jobBody(job: JobRecord, request: RequestContext): Promise<Record<string, unknown>> {
  const { services } = request;
  const archive = job.result?.archive;
  const result = job.result && {
    ...(job.result.images ? { images: job.result.images } : {}),
    ...(job.result.image ? { image: job.result.image } : {}),
    ...(archive ? { size: archive.size, download: await services.blobs.presign(archive.key, 'GET', services.config.presignSeconds) } : {}),
  };
  return {
    id: job.id,
    kind: job.jobKind,
    status: job.status,
    ...(job.jobKind === 'load' ? { upload: job.upload } : {}),
    ...(job.jobKind === 'save' ? { images: job.refs } : {}),
    ...(job.jobKind === 'export' || job.jobKind === 'commit' ? { container: job.container } : {}),
    progress: { bytesDone: job.bytesDone, bytesTotal: job.bytesTotal, layersDone: job.layersDone },
    ...(result ? { result } : {}),
    ...(job.error ? { error: job.error } : {}),
    created: job.created,
    updated: job.updated,
  };
}

/** 202 with the queued job and where to poll it. */
export async function queuedJob(request: RequestContext, spec: JobSpec): Promise<HttpResult> {
  const job = await request.services.engine.jobs.queue(request.tenant, spec);
  return json(202, await jobBody(job, request), { location: `/v1/jobs/${job.id}` });
}
