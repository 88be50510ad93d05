import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_ROUTE, routes, type HandlerName } from '../functions/routes.js';
import { SWEEP_EVENT, TENANT_SWEEP } from '../functions/sweep-events.js';
import { EVENT_TYPES } from '../shared/domain/events.js';
import { FEED_KINDS } from '../shared/domain/change-feed.js';
import { UPLOAD_SUFFIX } from '../shared/keys.js';
import { acknowledgeFindings } from './nag-acknowledgements.js';
import { accessByFunction, grantAccess, type BackgroundFunction } from './permissions.js';

export { SWEEP_EVENT, TENANT_SWEEP } from '../functions/sweep-events.js';

export interface StrataApiProps {
  /**
   * Issuer (`iss`) of the JWTs that callers present. When given together with `jwtAudience`,
   * an HTTP API JWT authorizer protects every non-public route.
   *
   * @default - no JWT authorizer: every non-public route requires IAM (SigV4) authorization,
   *   so the API is never open by accident.
   */
  readonly jwtIssuer?: string;

  /**
   * Accepted audiences (`aud`) of the JWTs. Required when `jwtIssuer` is given, and only then.
   *
   * @default - none (IAM authorization, see `jwtIssuer`)
   */
  readonly jwtAudience?: string[];

  /**
   * The JWT claim that names the caller's tenant (STRATA_TENANT_CLAIM).
   *
   * @default 'tenant'
   */
  readonly tenantClaim?: string;

  /**
   * What happens to stored data when the stack deletes the construct. Applies to the table,
   * the bucket and the functions' log groups. DESTROY also empties the bucket first
   * (autoDeleteObjects), since CloudFormation cannot delete a bucket that holds objects.
   *
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Bodies up to this many bytes travel inline in the Lambda response; larger reads answer
   * 303 to a presigned URL (STRATA_INLINE_LIMIT). Lambda caps a synchronous response at 6 MB,
   * and binary bodies are base64-encoded on the way out, which grows them by a third.
   *
   * @default 4 MiB (4 * 1024 * 1024): base64 makes it about 5.6 MB, under Lambda's 6 MB
   */
  readonly inlineBodyLimit?: number;

  /**
   * When to sweep what crashes leave (unreferenced blobs, unfinished loads and jobs). A rule
   * invokes the sweep function with `{ "source": "strata.sweep" }`, which puts one
   * `sweep.tenant` event per tenant on the bus; a rule there sends each back to it alone.
   *
   * @default events.Schedule.rate(Duration.hours(1))
   */
  readonly sweepSchedule?: events.Schedule;

  /**
   * How long each function's log group keeps its logs.
   *
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * Ready-made code for a handler, instead of bundling `functions/handlers/<handler>.ts`.
   * The code must export `handler` from `index` (handler string `index.handler`).
   * Tests use it to synthesize quickly without esbuild.
   *
   * @default - each handler is bundled locally with esbuild (never in Docker) from
   *   `functions/handlers/<handler>.ts` as an ES module with source maps.
   */
  readonly codeFor?: (handler: HandlerModule) => lambda.Code;

  /**
   * Whether the table refuses DeleteTable. Test stacks turn it off with the removal policy.
   *
   * @default - true, unless `removalPolicy` is DESTROY
   */
  readonly deletionProtection?: boolean;

  /**
   * Steady requests per second and burst the API's stage lets through, over all callers.
   *
   * @default { rateLimit: 200, burstLimit: 400 }
   */
  readonly throttle?: apigwv2.ThrottleSettings;

  /**
   * Browser origins allowed to PUT to presigned upload URLs (a CORS rule on the bucket).
   *
   * @default - no CORS rule: browsers cannot upload directly, other clients can
   */
  readonly uploadCorsOrigins?: string[];

  /**
   * The EventBridge bus every event is published to (`source` "strata", `detail-type` the
   * event's type, `detail` the event; see README, Events).
   *
   * @default - a new bus owned by the construct
   */
  readonly eventBus?: events.IEventBus;
}

/** A module in functions/handlers/: the route handlers, and the two that read the table's stream. */
export type HandlerModule = HandlerName | 'events' | 'reclaim' | 'jobs' | 'upload-landed';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));

/**
 * API Gateway answers 503 after 30 s whatever the function does, so a function behind it stops
 * at 29 s and releases what it holds; only the scheduled sweep, which nothing waits on, runs long.
 */
const API_TIMEOUT = Duration.seconds(29);
const SWEEP_TIMEOUT = Duration.minutes(15);
/** A batch is at most 100 records, 10 per PutEvents. */
const PUBLISH_TIMEOUT = Duration.minutes(1);
/** A large namespace's nodes and objects are deleted in batches; the sweep finishes what this cannot. */
const RECLAIM_TIMEOUT = Duration.minutes(5);

/** Every handler named in the route table, once, in first-seen order. */
const handlerNames: readonly HandlerName[] = [...new Set(routes.map((route) => route.handler))];

/** `images` -> `Images`, for construct ids. */
function pascal(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

/**
 * Strata's whole serverless backend: the metadata table, the blob bucket and its access-log
 * bucket, one Lambda function per handler of the route table (each with its own least-privilege
 * role), an HTTP API with exactly the routes of that table, throttled and access-logged, and the
 * scheduled sweep on its own function with a dead-letter queue. cdk-nag's AwsSolutions pack
 * finds nothing in it that is not acknowledged with a reason.
 */
export class StrataApi extends Construct {
  /** Metadata table (pk/sk), with a NEW_AND_OLD_IMAGES stream for integrators. */
  public readonly table: dynamodb.Table;
  /** Blob bucket (layers, file contents, uploads). */
  public readonly bucket: s3.Bucket;
  /** One function per handler module in functions/handlers/. */
  public readonly functions: Readonly<Record<HandlerName, lambda.IFunction>>;
  /** The HTTP API serving the route table. */
  public readonly api: apigwv2.HttpApi;
  /** Base URL of the API's default stage. */
  public readonly url: string;
  /** The EventBridge rule that runs the sweep. */
  public readonly sweepRule: events.Rule;
  /** The rule on the bus that sends each tenant's sweep event back to the sweep function. */
  public readonly tenantSweepRule: events.Rule;
  /** The function the schedule runs: the sweep of every tenant, with no route in front of it. */
  public readonly sweepFunction: lambda.IFunction;
  /** Where a scheduled sweep goes when it has failed all its retries. */
  public readonly sweepDeadLetterQueue: sqs.Queue;
  /** Where every event goes (created unless `eventBus` was given). */
  public readonly eventBus: events.IEventBus;
  /** Reads the table's stream and puts each new event item on the bus. */
  public readonly publishFunction: lambda.IFunction;
  /** Where a stream batch goes (its position, not its records) after the publisher has given up on it. */
  public readonly publishDeadLetterQueue: sqs.Queue;
  /** Frees a removed container's, volume's or image's storage from the stream, ahead of the sweep. */
  public readonly reclaimFunction: lambda.IFunction;
  /** Where a reclaim batch goes after its retries; the scheduled sweep reclaims the same later anyway. */
  public readonly reclaimDeadLetterQueue: sqs.Queue;
  /** Runs asynchronous loads (`POST /v1/images/load?async=true`) from the stream, up to 15 minutes each. */
  public readonly jobsFunction: lambda.IFunction;
  /** Where a job batch goes after its retries (the sweep marks such a job failed). */
  public readonly jobsDeadLetterQueue: sqs.Queue;
  /** Called by S3 when an upload's bytes land: finalizes it and queues its load. */
  public readonly uploadLandedFunction: lambda.IFunction;
  /** Notifications of landed uploads that failed every retry. */
  public readonly uploadLandedDeadLetterQueue: sqs.Queue;
  /** Server access logs of the blob bucket. */
  public readonly accessLogBucket: s3.Bucket;
  /** The API stage's access log. */
  public readonly apiAccessLogs: logs.LogGroup;
  /** Each function's own role. */
  private readonly roles: iam.Role[] = [];

  constructor(scope: Construct, id: string, props: StrataApiProps = {}) {
    super(scope, id);

    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const inlineBodyLimit = props.inlineBodyLimit ?? 4 * 1024 * 1024;
    if (!Number.isSafeInteger(inlineBodyLimit) || inlineBodyLimit <= 0) {
      // The functions would refuse to start with it (shared/config.ts), so fail at synth instead.
      throw new Error(`inlineBodyLimit must be a positive integer, not ${inlineBodyLimit}`);
    }
    if ((props.jwtIssuer === undefined) !== (props.jwtAudience === undefined)) {
      throw new Error('jwtIssuer and jwtAudience must be given together');
    }

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: 'expiresAt',
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      deletionProtection: props.deletionProtection ?? removalPolicy !== RemovalPolicy.DESTROY,
      removalPolicy,
    });

    this.accessLogBucket = new s3.Bucket(this, 'AccessLogBucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      // S3 server access logging writes only to SSE-S3 buckets.
      encryption: s3.BucketEncryption.S3_MANAGED,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      encryption: s3.BucketEncryption.S3_MANAGED,
      versioned: false,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: 'blobs/',
      // Abandoned multipart uploads are invisible in listings but still billed. Unfinished
      // uploads (t/<tenant>/uploads/) cannot be named by a lifecycle prefix; the sweep drops
      // them after a day.
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      cors: props.uploadCorsOrigins?.length
        ? [{ allowedMethods: [s3.HttpMethods.PUT], allowedOrigins: props.uploadCorsOrigins, allowedHeaders: ['*'], exposedHeaders: ['ETag'], maxAge: 3600 }]
        : undefined,
      removalPolicy,
      autoDeleteObjects: removalPolicy === RemovalPolicy.DESTROY,
    });

    const settings = { ...props, removalPolicy, inlineBodyLimit };
    const functions = {} as Record<HandlerName, lambda.IFunction>;
    for (const name of handlerNames) {
      functions[name] = this.createFunction(name, name, API_TIMEOUT, settings);
    }
    this.functions = functions;

    this.sweepDeadLetterQueue = this.deadLetterQueue('SweepDeadLetterQueue');
    this.eventBus = props.eventBus ?? new events.EventBus(this, 'EventBus', { description: 'Strata events: images, containers, volumes' });
    this.sweepFunction = this.createFunction(
      'scheduledSweep',
      'system',
      SWEEP_TIMEOUT,
      settings,
      { deadLetterQueue: this.sweepDeadLetterQueue, retryAttempts: 2 },
      { STRATA_EVENT_BUS: this.eventBus.eventBusName },
    );
    // The fan-out: one event per tenant on the bus, each back to the sweep function alone.
    this.eventBus.grantPutEventsTo(this.sweepFunction);
    this.publishDeadLetterQueue = this.deadLetterQueue('PublishDeadLetterQueue');
    const publisher = this.createFunction('publishEvents', 'events', PUBLISH_TIMEOUT, settings, {}, { STRATA_EVENT_BUS: this.eventBus.eventBusName });
    this.eventBus.grantPutEventsTo(publisher);
    publisher.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        // One batch at a time per shard keeps each tenant's events in order.
        parallelizationFactor: 1,
        reportBatchItemFailures: true,
        // A failed entry is retried from where it stopped; after this many tries the batch's
        // position goes to the queue and its events stay readable in GET /v1/events for 7 days.
        retryAttempts: 100,
        onFailure: new SqsDlq(this.publishDeadLetterQueue),
        // Only event items and change-feed entries; every other write in the table is not an event.
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { type: { S: lambda.FilterRule.or(...EVENT_TYPES) } } },
          }),
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { kind: { S: lambda.FilterRule.or(...FEED_KINDS) } } },
          }),
        ],
      }),
    );
    this.publishFunction = publisher;

    this.reclaimDeadLetterQueue = this.deadLetterQueue('ReclaimDeadLetterQueue');
    const reclaimer = this.createFunction('reclaimStorage', 'reclaim', RECLAIM_TIMEOUT, settings);
    reclaimer.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 10,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
        retryAttempts: 10,
        onFailure: new SqsDlq(this.reclaimDeadLetterQueue),
        filters: [
          // A removed container's or volume's namespace, recorded as garbage.
          lambda.FilterCriteria.filter({ eventName: lambda.FilterRule.isEqual('INSERT'), dynamodb: { NewImage: { blobPrefix: { S: lambda.FilterRule.exists() } } } }),
          // A removed image record.
          lambda.FilterCriteria.filter({ eventName: lambda.FilterRule.isEqual('REMOVE'), dynamodb: { OldImage: { configKey: { S: lambda.FilterRule.exists() } } } }),
          // Expiry items TTL deleted (expiry.ts): the container or volume goes.
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('REMOVE'),
            userIdentity: { type: lambda.FilterRule.isEqual('Service'), principalId: lambda.FilterRule.isEqual('dynamodb.amazonaws.com') },
            dynamodb: { OldImage: { expiry: { S: lambda.FilterRule.exists() } } },
          }),
        ],
      }),
    );
    this.reclaimFunction = reclaimer;

    this.jobsDeadLetterQueue = this.deadLetterQueue('JobsDeadLetterQueue');
    const jobs = this.createFunction('runJobs', 'jobs', SWEEP_TIMEOUT, settings);
    jobs.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        // One job per invocation, so each gets the whole 15 minutes.
        batchSize: 1,
        // Jobs of different tenants (different partitions) run side by side.
        parallelizationFactor: 10,
        reportBatchItemFailures: true,
        retryAttempts: 2,
        onFailure: new SqsDlq(this.jobsDeadLetterQueue),
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('INSERT'),
            dynamodb: { NewImage: { jobKind: { S: lambda.FilterRule.exists() }, status: { S: lambda.FilterRule.isEqual('queued') } } },
          }),
          // A load that waited for its upload, queued once the bytes landed.
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('MODIFY'),
            dynamodb: {
              NewImage: { jobKind: { S: lambda.FilterRule.exists() }, status: { S: lambda.FilterRule.isEqual('queued') } },
              OldImage: { status: { S: lambda.FilterRule.isEqual('awaiting-upload') } },
            },
          }),
        ],
      }),
    );
    this.jobsFunction = jobs;

    // S3 tells this function when an upload's bytes land, through EventBridge (S3's own
    // notifications to Lambda would need CDK's custom-resource handler, with a managed policy):
    // the bucket sends its events to the account's default bus, and a rule picks `*.upload` keys.
    this.uploadLandedDeadLetterQueue = this.deadLetterQueue('UploadLandedDeadLetterQueue');
    const landed = this.createFunction('uploadLanded', 'upload-landed', RECLAIM_TIMEOUT, settings);
    (this.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = { eventBridgeConfiguration: { eventBridgeEnabled: true } };
    new events.Rule(this, 'UploadLandedRule', {
      description: 'Strata: an upload received its bytes',
      eventPattern: { source: ['aws.s3'], detailType: ['Object Created'], detail: { bucket: { name: [this.bucket.bucketName] }, object: { key: [{ suffix: UPLOAD_SUFFIX }] } } },
      targets: [new targets.LambdaFunction(landed, { retryAttempts: 2, maxEventAge: Duration.hours(2), deadLetterQueue: this.uploadLandedDeadLetterQueue })],
    });
    this.uploadLandedFunction = landed;

    const protectedRoutes = props.jwtIssuer ? new HttpJwtAuthorizer('JwtAuthorizer', props.jwtIssuer, { jwtAudience: props.jwtAudience! }) : new HttpIamAuthorizer();

    this.api = new apigwv2.HttpApi(this, 'HttpApi', {
      description: 'Strata: Docker storage model (images, containers, volumes) over HTTP',
      // Routes added later (by integrators) are protected too unless they opt out.
      defaultAuthorizer: protectedRoutes,
      createDefaultStage: false,
    });
    this.apiAccessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    const stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: props.throttle ?? { rateLimit: 200, burstLimit: 400 },
      accessLogSettings: { destination: new apigwv2.LogGroupLogDestination(this.apiAccessLogs) },
    });
    this.url = stage.url;

    const integrations = new Map<HandlerName, HttpLambdaIntegration>();
    for (const name of handlerNames) {
      integrations.set(
        name,
        new HttpLambdaIntegration(`${pascal(name)}Integration`, functions[name], {
          // One invoke permission per function keeps its resource policy small as routes grow.
          scopePermissionToRoute: false,
        }),
      );
    }

    const publicRoutes: apigwv2.HttpRoute[] = [];
    for (const route of routes) {
      const integration = integrations.get(route.handler)!;
      const authorizer = route.public ? new apigwv2.HttpNoneAuthorizer() : protectedRoutes;
      if (route.path === DEFAULT_ROUTE) {
        new apigwv2.HttpRoute(this, 'DefaultRoute', { httpApi: this.api, routeKey: apigwv2.HttpRouteKey.DEFAULT, integration, authorizer });
        continue;
      }
      // HttpMethod has a member for every method of the table, HEAD included.
      const added = this.api.addRoutes({ path: route.path, methods: [apigwv2.HttpMethod[route.method]], integration, authorizer });
      if (route.public) publicRoutes.push(...added);
    }

    this.sweepRule = new events.Rule(this, 'SweepSchedule', {
      description: 'Strata sweep: removes unreferenced blobs and expired records',
      schedule: props.sweepSchedule ?? events.Schedule.rate(Duration.hours(1)),
      targets: [new targets.LambdaFunction(this.sweepFunction, { event: events.RuleTargetInput.fromObject(SWEEP_EVENT) })],
    });
    this.tenantSweepRule = new events.Rule(this, 'TenantSweeps', {
      description: 'Strata sweep of one tenant, fanned out by the scheduled sweep',
      eventBus: this.eventBus,
      eventPattern: { source: [TENANT_SWEEP.source], detailType: [TENANT_SWEEP.detailType] },
      targets: [new targets.LambdaFunction(this.sweepFunction, { retryAttempts: 2, deadLetterQueue: this.sweepDeadLetterQueue })],
    });

    acknowledgeFindings({
      bucket: this.bucket,
      roles: this.roles,
      publicRoutes,
      streamReaders: [publisher.role!, reclaimer.role!, jobs.role!],
      streamFailures: [this.publishDeadLetterQueue, this.reclaimDeadLetterQueue, this.jobsDeadLetterQueue],
      ruleFailures: [this.uploadLandedDeadLetterQueue],
    });
  }

  /** Where an asynchronous function's failures wait: encrypted, TLS only, kept 14 days. */
  private deadLetterQueue(id: string): sqs.Queue {
    return new sqs.Queue(this, id, { enforceSSL: true, encryption: sqs.QueueEncryption.SQS_MANAGED, retentionPeriod: Duration.days(14) });
  }

  /** One function for one concern: its own role with only that concern's grants, its own log group. */
  private createFunction(
    name: HandlerName | BackgroundFunction,
    module: HandlerModule,
    timeout: Duration,
    props: StrataApiProps & { readonly removalPolicy: RemovalPolicy; readonly inlineBodyLimit: number },
    asyncOptions: Pick<lambda.FunctionOptions, 'deadLetterQueue' | 'retryAttempts'> = {},
    extraEnvironment: Record<string, string> = {},
  ): lambda.Function {
    const id = `${pascal(name)}Function`;
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy,
    });
    // An own role instead of AWSLambdaBasicExecutionRole, which may write to every log group.
    const role = new iam.Role(this, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    this.roles.push(role);
    grantAccess(role, this.table, this.bucket, accessByFunction[name]);

    const fn = new NodejsFunction(this, id, {
      description: `Strata ${name} handler`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 1024,
      timeout,
      role,
      logGroup,
      // X-Ray: Powertools Tracer records each request and every AWS call as subsegments.
      tracing: lambda.Tracing.ACTIVE,
      ...asyncOptions,
      environment: {
        STRATA_TABLE: this.table.tableName,
        STRATA_BUCKET: this.bucket.bucketName,
        STRATA_INLINE_LIMIT: String(props.inlineBodyLimit),
        STRATA_TENANT_CLAIM: props.tenantClaim ?? 'tenant',
        // Stack traces point at the TypeScript sources through the bundled source maps.
        NODE_OPTIONS: '--enable-source-maps',
        // Streamed layers allocate many large buffers; a fixed mmap threshold makes glibc hand
        // their memory back when freed instead of keeping it (npm run bench measures both).
        MALLOC_MMAP_THRESHOLD_: '131072',
        ...extraEnvironment,
      },
      ...(props.codeFor
        ? { code: props.codeFor(module), handler: 'index.handler' }
        : {
            entry: `${repoRoot}functions/handlers/${module}.ts`,
            handler: 'handler',
            projectRoot: repoRoot,
            depsLockFilePath: `${repoRoot}package-lock.json`,
            bundling: {
              format: OutputFormat.ESM,
              // Bundled CommonJS dependencies call require(), which ES modules lack.
              banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
              mainFields: ['module', 'main'],
              sourceMap: true,
              minify: true,
              // Bundle the pinned AWS SDK rather than trusting the runtime's copy.
              externalModules: [],
              // Docker is not available; esbuild from node_modules must do the bundling.
              forceDockerBundling: false,
            },
          }),
    });

    return fn;
  }
}
