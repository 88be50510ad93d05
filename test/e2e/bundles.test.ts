import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { App } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { StrataStack } from '../../cdk/strata-stack.js';
import { SWEEP_EVENT, TENANT_SWEEP } from '../../cdk/strata-api.js';
import { ensureTable } from '../../shared/adapters/dynamo-metadata-store.js';
import { ensureBucket, s3ClientFor } from '../../shared/adapters/s3-blob-store.js';
import { Event } from '../../functions/http/event-schemas.js';
import { streamRecords } from '../support/dynamo-stream.js';
import { EventBridgeRecorder } from '../support/eventbridge-recorder.js';
import { dockerArchive } from '../support/images.js';

/**
 * The functions as they deploy: the stack is synthesized with the real esbuild bundling, and
 * each bundle in cdk.out is imported by a plain `node` process (as Lambda's runtime imports it:
 * an ES module, no `require`, none of the test runner's module hooks) and invoked with API
 * Gateway v2 and EventBridge events against DynamoDB Local and Ceph RGW. A bundling mistake (a
 * missing module, a JSON import, CommonJS in the ESM output) fails here, never first in AWS.
 */
type LambdaHandler = (event: unknown) => Promise<any>;

/** Imports a bundle, calls its handler with the event on stdin, prints the result after a marker (the logger owns stdout too). */
const RUNNER = `
import { pathToFileURL } from 'node:url';
const [, bundle, exported] = process.argv;
let input = '';
for await (const chunk of process.stdin) input += chunk;
const context = { awsRequestId: 'bundle-test', functionName: 'strata', getRemainingTimeInMillis: () => 29000 };
const result = await (await import(pathToFileURL(bundle).href))[exported](JSON.parse(input), context);
process.stdout.write('\\n@@result@@' + JSON.stringify(result ?? null));
`;
const MARKER = '\n@@result@@';
/** What the last bundle run printed before its result: logs, and metrics as EMF lines. */
let lastOutput = '';

function runBundle(bundle: string, exported: string, event: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', RUNNER, bundle, exported], { env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const at = out.lastIndexOf(MARKER);
      if (code !== 0 || at < 0) reject(new Error(`${bundle} exited ${code}: ${err.slice(-2000)}`));
      else {
        lastOutput = out.slice(0, at);
        resolve(JSON.parse(out.slice(at + MARKER.length)));
      }
    });
    child.stdin.end(JSON.stringify(event));
  });
}

const TENANT = 'bundles';
let outdir: string;
let table: string;
let template: any;
const bus = new EventBridgeRecorder();
/** The handler of each function, by the name in its description (`Strata images handler` -> images). */
const handlers = new Map<string, LambdaHandler>();

beforeAll(async () => {
  outdir = await mkdtemp(join(tmpdir(), 'strata-cdk-out-'));
  const app = new App({ outdir });
  new StrataStack(app, 'Strata');
  app.synth();

  table = `bundles-${randomUUID().slice(0, 8)}`;
  const bucket = `bundles-${randomUUID().slice(0, 8)}`;
  // What the stack's environment gives each function, plus the endpoints of the local stand-ins.
  Object.assign(process.env, {
    STRATA_TABLE: table,
    STRATA_BUCKET: bucket,
    STRATA_TENANT_CLAIM: 'tenant',
    STRATA_DYNAMO_ENDPOINT: inject('dynamoEndpoint'),
    STRATA_S3_ENDPOINT: inject('s3Endpoint'),
    STRATA_S3_ACCESS_KEY: inject('s3AccessKey'),
    STRATA_S3_SECRET_KEY: inject('s3SecretKey'),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    STRATA_LOG_LEVEL: 'ERROR',
    STRATA_EVENT_BUS: 'strata-test-bus',
    STRATA_EVENTS_ENDPOINT: await bus.start(),
  });
  await ensureTable(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1' }), table);
  await ensureBucket(s3ClientFor({ endpoint: inject('s3Endpoint'), region: 'us-east-1', accessKeyId: inject('s3AccessKey'), secretAccessKey: inject('s3SecretKey') }), bucket);

  template = JSON.parse(await readFile(join(outdir, 'Strata.template.json'), 'utf8'));
  for (const resource of Object.values(template.Resources) as { Type: string; Properties: any }[]) {
    const description: string | undefined = resource.Properties?.Description;
    if (resource.Type !== 'AWS::Lambda::Function' || !description?.startsWith('Strata ')) continue;
    const [file, exported] = resource.Properties.Handler.split('.');
    // The code's S3 key is the asset hash; cdk.out keeps the bundle in asset.<hash>/.
    const bundle = join(outdir, `asset.${String(resource.Properties.Code.S3Key).replace(/\.zip$/, '')}`, `${file}.mjs`);
    handlers.set(description.split(' ')[1], (event) => runBundle(bundle, exported, event));
  }
}, 300_000);
afterAll(async () => {
  await bus.stop();
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

interface Request {
  readonly pathParameters?: Record<string, string>;
  readonly query?: Record<string, string>;
  readonly body?: Buffer | string;
  readonly headers?: Record<string, string>;
}

/** An API Gateway HTTP API (payload 2.0) event with a JWT authorizer's claims, as the stage sends it. */
function apiEvent(routeKey: string, rawPath: string, request: Request = {}) {
  const method = routeKey === '$default' ? 'GET' : routeKey.split(' ')[0];
  const query = request.query ?? {};
  const body = request.body === undefined ? undefined : Buffer.from(request.body);
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: new URLSearchParams(query).toString(),
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: request.pathParameters,
    headers: { host: 'api.example.com', ...(body && !request.headers?.['content-type'] ? { 'content-type': 'application/octet-stream' } : {}), ...request.headers },
    body: body?.toString('base64'),
    isBase64Encoded: body !== undefined,
    requestContext: {
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      authorizer: { jwt: { claims: { tenant: TENANT }, scopes: [] } },
    },
  };
}

async function invoke(name: string, routeKey: string, rawPath: string, request?: Request): Promise<{ statusCode: number; headers: Record<string, string>; text: string }> {
  const handler = handlers.get(name);
  if (!handler) throw new Error(`no bundle for ${name}: ${[...handlers.keys()].join(', ')}`);
  const response = await handler(apiEvent(routeKey, rawPath, request));
  const text = response.body === undefined ? '' : Buffer.from(response.body, response.isBase64Encoded ? 'base64' : 'utf8').toString();
  return { statusCode: response.statusCode, headers: response.headers ?? {}, text };
}

describe('the bundled functions from cdk.out', () => {
  it('synthesizes one bundle per function, the scheduled sweep included', () => {
    expect([...handlers.keys()].sort()).toEqual([
      'containers',
      'docker',
      'files',
      'images',
      'publishEvents',
      'reclaimStorage',
      'runJobs',
      'scheduledSweep',
      'system',
      'uploadLanded',
      'uploads',
      'volumes',
    ]);
  });

  it('answer their routes against DynamoDB Local and Ceph RGW', async () => {
    expect(await invoke('system', 'GET /healthz', '/healthz')).toMatchObject({ statusCode: 200, text: '{"status":"ok"}' });
    const openapi = await invoke('system', 'GET /openapi.json', '/openapi.json');
    expect(JSON.parse(openapi.text)).toMatchObject({ openapi: expect.stringMatching(/^3\.1/), info: { title: 'Strata' } });

    const { archive, imageId } = await dockerArchive([[{ path: 'etc/motd', content: 'from the image' }]], { tags: ['bundled:1'] });
    const loaded = await invoke('images', 'POST /v1/images/load', '/v1/images/load', { body: archive });
    expect(loaded.statusCode).toBe(201);
    expect(JSON.parse(loaded.text).images).toEqual([{ id: imageId, tags: ['bundled:1'] }]);
    // Each request leaves one CloudWatch EMF line: its operation, and the storage calls it made.
    const emf = lastOutput
      .split('\n')
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line));
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ _aws: { CloudWatchMetrics: [{ Namespace: 'Strata', Dimensions: [expect.arrayContaining(['operation'])] }] }, operation: 'loadImage', Requests: 1 });
    expect(emf[0].MetadataCalls).toBeGreaterThan(0);
    expect(emf[0].BlobCalls).toBeGreaterThan(0);

    const created = await invoke('containers', 'POST /v1/containers', '/v1/containers', { body: JSON.stringify({ image: 'bundled:1', name: 'c1' }), headers: { 'content-type': 'application/json' } });
    expect(created.statusCode).toBe(201);

    const fsRoute = (method: string) => `${method} /v1/containers/{id}/fs/{path+}`;
    const at = { pathParameters: { id: 'c1', path: 'etc/motd' } };
    expect((await invoke('files', fsRoute('PUT'), '/v1/containers/c1/fs/etc/motd', { ...at, body: 'written in the container' })).statusCode).toBe(200);
    expect(await invoke('files', fsRoute('GET'), '/v1/containers/c1/fs/etc/motd', at)).toMatchObject({ statusCode: 200, text: 'written in the container' });
    const changes = await invoke('containers', 'GET /v1/containers/{id}/changes', '/v1/containers/c1/changes', { pathParameters: { id: 'c1' } });
    expect(JSON.parse(changes.text)).toEqual([
      { path: '/etc', kind: 0, kindName: 'C' },
      { path: '/etc/motd', kind: 0, kindName: 'C' },
    ]);

    expect((await invoke('volumes', 'POST /v1/volumes', '/v1/volumes', { body: JSON.stringify({ name: 'data' }), headers: { 'content-type': 'application/json' } })).statusCode).toBe(201);
    const upload = await invoke('uploads', 'POST /v1/uploads', '/v1/uploads');
    expect(upload.statusCode).toBe(201);
    expect(JSON.parse(upload.text).url).toContain(inject('s3Endpoint'));

    expect(await invoke('docker', '$default', '/_ping')).toMatchObject({ statusCode: 200, text: 'OK' });
    const ps = await invoke('docker', '$default', '/v1.47/containers/json', { query: { all: '1' } });
    expect(JSON.parse(ps.text).map((c: { Names: string[] }) => c.Names)).toEqual([['/c1']]);
  });

  it('run the scheduled sweep from the EventBridge events: fanned out per tenant, then one tenant each', async () => {
    // The schedule's event fans out: one sweep.tenant event per tenant on the bus ...
    expect(await handlers.get('scheduledSweep')!(SWEEP_EVENT)).toEqual({ tenants: 1 });
    expect(bus.accepted).toEqual([expect.objectContaining({ Source: TENANT_SWEEP.source, DetailType: TENANT_SWEEP.detailType, Detail: JSON.stringify({ tenant: TENANT }) })]);
    // ... and each comes back, as EventBridge delivers it, to sweep that tenant alone.
    const report = await handlers.get('scheduledSweep')!({ version: '0', source: TENANT_SWEEP.source, 'detail-type': TENANT_SWEEP.detailType, detail: { tenant: TENANT } });
    expect(report).toMatchObject({ namespaces: 0, layers: 0 });
    bus.accepted.length = 0;
    bus.requests.length = 0;
  });

  it("publish every event item of the table's stream to EventBridge with its outbox id, and resume from a refused entry", async () => {
    // The changes of the route test above are in the stream; Lambda hands the publisher only
    // the records its mapping's filter keeps, so apply the synthesized filter as Lambda would.
    const all = await streamRecords(inject('dynamoEndpoint'), table);
    const publisherId = Object.entries(template.Resources as Record<string, any>).find(([, r]) => r.Properties?.Description === 'Strata publishEvents handler')![0];
    const mapping = Object.values(template.Resources as Record<string, any>).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName.Ref === publisherId);
    const [pattern, feedPattern] = mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    const kept = all.filter((r) => pattern.eventName.includes(r.eventName) && pattern.dynamodb.NewImage.type.S.includes(r.dynamodb?.NewImage?.type?.S));
    // The second pattern keeps the change feeds' entries: the one file the route test wrote.
    const feedKept = all.filter((r) => feedPattern.eventName.includes(r.eventName) && feedPattern.dynamodb.NewImage.kind.S.includes(r.dynamodb?.NewImage?.kind?.S));
    expect(feedKept).toHaveLength(1);
    expect(all.length).toBeGreaterThan(kept.length + feedKept.length);
    // The feed is the outbox read directly; the bus must carry exactly its events.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const feed = JSON.parse((await invoke('system', 'GET /v1/events', '/v1/events')).text).events;
    expect(feed.map((e: { type: string }) => e.type)).toEqual(['image.loaded', 'container.created', 'volume.created']);
    expect(kept).toHaveLength(feed.length);
    // `docker events --since` deployed: a response cannot stay open there, so it ends at the request's time.
    const dockerEvents = await invoke('docker', '$default', '/v1.47/events', { query: { since: '0' } });
    expect(
      dockerEvents.text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).Type + ' ' + JSON.parse(line).Action),
    ).toEqual(['image load', 'container create', 'volume create']);

    // The second entry is refused: the batch reports its record, and Lambda retries from there.
    bus.refuse.add(bus.receivedCount + 1);
    const first = await handlers.get('publishEvents')!({ Records: kept });
    expect(first).toEqual({ batchItemFailures: kept.slice(1).map((r) => ({ itemIdentifier: r.dynamodb!.SequenceNumber })) });
    const retried = await handlers.get('publishEvents')!({ Records: kept.slice(1) });
    expect(retried).toEqual({ batchItemFailures: [] });
    // Even an unfiltered batch of everything else publishes nothing.
    const before = bus.accepted.length;
    expect(await handlers.get('publishEvents')!({ Records: all.filter((r) => !kept.includes(r) && !feedKept.includes(r)) })).toEqual({ batchItemFailures: [] });
    expect(bus.accepted.length).toBe(before);

    const details = bus.accepted.map((entry) => {
      expect(entry).toMatchObject({ Source: 'strata', EventBusName: 'strata-test-bus', DetailType: JSON.parse(entry.Detail).type });
      return Event.parse(JSON.parse(entry.Detail));
    });
    // EventBridge takes each entry on its own, so the third went out with the refused second and
    // again with the retry: at least once, a repeat identical to the first, and the id orders them.
    expect(details.map((d) => d.id)).toEqual([feed[0].id, feed[2].id, feed[1].id, feed[2].id]);
    expect(details[3]).toEqual(details[1]);
    expect([...new Map(details.map((d) => [d.id, d])).values()].sort((a, b) => a.id.localeCompare(b.id))).toEqual(feed);
    expect(bus.requests).toEqual([3, 2]);

    // The change feed goes out in batches: its entry as one tree.changed event, as GET …/feed shows it.
    const feedPage = JSON.parse((await invoke('containers', 'GET /v1/containers/{id}/feed', '/v1/containers/c1/feed', { pathParameters: { id: 'c1' } })).text);
    expect(await handlers.get('publishEvents')!({ Records: feedKept })).toEqual({ batchItemFailures: [] });
    const treeChanged = Event.parse(JSON.parse(bus.accepted.at(-1)!.Detail));
    expect(treeChanged).toMatchObject({ type: 'tree.changed', tenant: TENANT, detail: { first: 1, last: 1, changes: feedPage.entries } });
    expect(feedPage.entries).toMatchObject([{ seq: 1, kind: 'modified', path: '/etc/motd' }]);
  });

  it('reclaim a removed container from the stream, leaving the sweep nothing to do', async () => {
    expect((await invoke('containers', 'DELETE /v1/containers/{id}', '/v1/containers/c1', { pathParameters: { id: 'c1' } })).statusCode).toBe(204);
    const reclaimerId = Object.entries(template.Resources as Record<string, any>).find(([, r]) => r.Properties?.Description === 'Strata reclaimStorage handler')![0];
    const mapping = Object.values(template.Resources as Record<string, any>).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName.Ref === reclaimerId);
    const patterns = mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    // The two patterns as Lambda applies them: the event name, and one attribute that must exist.
    const kept = (await streamRecords(inject('dynamoEndpoint'), table)).filter((r) =>
      patterns.some((p: any) => {
        const [image, attrs] = Object.entries(p.dynamodb)[0] as [string, Record<string, unknown>];
        const attribute = Object.keys(attrs)[0];
        return p.eventName.includes(r.eventName) && (r.dynamodb as any)?.[image]?.[attribute]?.S !== undefined;
      }),
    );
    expect(kept.map((r) => r.eventName)).toEqual(['INSERT']);
    expect(await handlers.get('reclaimStorage')!({ Records: kept })).toEqual({ batchItemFailures: [] });
    const report = await handlers.get('scheduledSweep')!({ version: '0', source: TENANT_SWEEP.source, 'detail-type': TENANT_SWEEP.detailType, detail: { tenant: TENANT } });
    expect(report).toMatchObject({ namespaces: 0 });
  });

  it('run an asynchronous load of an upload from the stream, as the job function', async () => {
    const upload = JSON.parse((await invoke('uploads', 'POST /v1/uploads', '/v1/uploads')).text);
    const { archive, imageId } = await dockerArchive([[{ path: 'job', content: 'loaded by the job function' }]], { tags: ['job:1'] });
    expect((await fetch(upload.url, { method: 'PUT', body: new Uint8Array(archive) })).status).toBe(200);
    const queued = await invoke('images', 'POST /v1/images/load', '/v1/images/load', { query: { upload: upload.id, async: 'true' } });
    expect(queued.statusCode).toBe(202);
    const job = JSON.parse(queued.text).id;
    const inserted = (await streamRecords(inject('dynamoEndpoint'), table)).filter((r) => r.eventName === 'INSERT' && r.dynamodb?.NewImage?.jobKind?.S === 'load');
    expect(inserted).toHaveLength(1);
    expect(await handlers.get('runJobs')!({ Records: inserted })).toEqual({ batchItemFailures: [] });
    const done = JSON.parse((await invoke('images', 'GET /v1/jobs/{job}', `/v1/jobs/${job}`, { pathParameters: { job } })).text);
    expect(done).toMatchObject({ status: 'succeeded', result: { images: [{ id: imageId, tags: ['job:1'] }] }, progress: { bytesDone: archive.length } });
    // A retried batch runs nothing twice.
    expect(await handlers.get('runJobs')!({ Records: inserted })).toEqual({ batchItemFailures: [] });
  });

  it("start an upload's load when S3's Object Created event reaches the upload function, then run it as the job function", async () => {
    const upload = JSON.parse((await invoke('uploads', 'POST /v1/uploads', '/v1/uploads', { body: JSON.stringify({ load: true }), headers: { 'content-type': 'application/json' } })).text);
    const { archive, imageId } = await dockerArchive([[{ path: 'landed', content: 'loaded once it landed' }]], { tags: ['landed:1'] });
    expect((await fetch(upload.url, { method: 'PUT', body: new Uint8Array(archive) })).status).toBe(200);
    // The key as S3 names it in the event: the URL's path after the bucket.
    const key = decodeURIComponent(new URL(upload.url).pathname.split('/').slice(2).join('/'));
    const event = {
      version: '0',
      source: 'aws.s3',
      'detail-type': 'Object Created',
      detail: { bucket: { name: new URL(upload.url).pathname.split('/')[1] }, object: { key, size: archive.length }, reason: 'PutObject' },
    };
    await handlers.get('uploadLanded')!(event);
    await handlers.get('uploadLanded')!(event); // A repeated event changes nothing.
    const queued = (await streamRecords(inject('dynamoEndpoint'), table)).filter(
      (r) => r.eventName === 'MODIFY' && r.dynamodb?.NewImage?.status?.S === 'queued' && r.dynamodb?.OldImage?.status?.S === 'awaiting-upload',
    );
    expect(queued.map((r) => r.dynamodb?.Keys?.sk?.S)).toEqual([upload.job]);
    expect(await handlers.get('runJobs')!({ Records: queued })).toEqual({ batchItemFailures: [] });
    const done = JSON.parse((await invoke('images', 'GET /v1/jobs/{job}', `/v1/jobs/${upload.job}`, { pathParameters: { job: upload.job } })).text);
    expect(done).toMatchObject({ status: 'succeeded', result: { images: [{ id: imageId, tags: ['landed:1'] }] } });
  });

  it('answer a route they do not serve with a JSON 404 from the bundled middleware', async () => {
    const missing = await invoke('images', 'GET /v1/nowhere', '/v1/nowhere');
    expect(missing.statusCode).toBe(404);
    expect(JSON.parse(missing.text)).toMatchObject({ message: expect.stringContaining('no route') });
  });
});
