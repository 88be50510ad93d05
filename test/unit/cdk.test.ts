import { App, RemovalPolicy, Stack, type CfnElement } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { StrataApi, SWEEP_EVENT, TENANT_SWEEP, type StrataApiProps } from '../../cdk/strata-api.js';
import { accessByFunction } from '../../cdk/permissions.js';
import { StrataStack } from '../../cdk/strata-stack.js';
import { routeKeyOf, routes, type HandlerName } from '../../functions/routes.js';

// Inline code keeps synthesis free of esbuild, so these tests stay fast and need no handlers.
const inlineCode = () => lambda.Code.fromInline('exports.handler=async()=>({statusCode:200})');

const handlerNames = [...new Set(routes.map((route) => route.handler))];
/** The sweep, the event publisher, the reclaimer and the job runner. */
const backgroundFunctions = Object.keys(accessByFunction).length - handlerNames.length;
const publicRouteKeys = new Set(routes.filter((route) => route.public).map(routeKeyOf));

interface Synthesized {
  readonly stack: Stack;
  readonly strata: StrataApi;
  readonly template: Template;
}

function synth(props: Omit<StrataApiProps, 'codeFor'> = {}): Synthesized {
  const stack = new Stack(new App(), 'Test');
  const strata = new StrataApi(stack, 'Strata', { ...props, codeFor: inlineCode });
  return { stack, strata, template: Template.fromStack(stack) };
}

function logicalId(stack: Stack, fn: lambda.IFunction): string {
  return stack.getLogicalId(fn.node.defaultChild as CfnElement);
}

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;

/** RouteKey -> route properties. */
function routesByKey(template: Template): Map<string, Record<string, any>> {
  const found = template.findResources('AWS::ApiGatewayV2::Route') as Resources;
  return new Map(Object.values(found).map((resource) => [resource.Properties.RouteKey, resource.Properties]));
}

describe('StrataApi', () => {
  const { stack, strata, template } = synth();
  const resources = template.toJSON().Resources as Resources;

  it('creates exactly the routes of the route table', () => {
    const byKey = routesByKey(template);
    expect([...byKey.keys()].sort()).toEqual(routes.map(routeKeyOf).sort());
    expect(byKey.size).toBe(routes.length);
  });

  it('sends each route to the function of its handler', () => {
    const byKey = routesByKey(template);
    for (const route of routes) {
      const target: string = byKey.get(routeKeyOf(route))!.Target['Fn::Join'][1][1].Ref;
      const integration = resources[target];
      expect(integration.Type).toBe('AWS::ApiGatewayV2::Integration');
      expect(integration.Properties.IntegrationUri).toEqual({
        'Fn::GetAtt': [logicalId(stack, strata.functions[route.handler]), 'Arn'],
      });
    }
  });

  it('requires IAM on every non-public route when no JWT issuer is given', () => {
    for (const [key, route] of routesByKey(template)) {
      if (publicRouteKeys.has(key)) {
        expect(route.AuthorizationType, key).toBe('NONE');
        expect(route.AuthorizerId, key).toBeUndefined();
      } else {
        expect(route.AuthorizationType, key).toBe('AWS_IAM');
      }
    }
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
  });

  it('leaves only /healthz and /openapi.json public', () => {
    expect([...publicRouteKeys].sort()).toEqual(['GET /healthz', 'GET /openapi.json']);
  });

  it('creates one function per handler, and one each for the scheduled sweep, the event publisher, the reclaimer and the job runner, wired to the table and bucket', () => {
    const functions = Object.values(resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(handlerNames.length + backgroundFunctions);
    expect(Object.keys(strata.functions).sort()).toEqual([...handlerNames].sort());

    const tableId = stack.getLogicalId(strata.table.node.defaultChild as CfnElement);
    const bucketId = stack.getLogicalId(strata.bucket.node.defaultChild as CfnElement);
    for (const name of handlerNames) {
      const fn = resources[logicalId(stack, strata.functions[name])];
      expect(fn.Properties.Environment.Variables, name).toMatchObject({
        STRATA_TABLE: { Ref: tableId },
        STRATA_BUCKET: { Ref: bucketId },
        STRATA_INLINE_LIMIT: String(4 * 1024 * 1024),
        STRATA_TENANT_CLAIM: 'tenant',
      });
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], MemorySize: 1024 });
    }
  });

  it('stops every function behind the API at 29 s, before API Gateway answers 503 at 30 s; only the scheduled sweep runs 15 minutes', () => {
    for (const name of handlerNames) expect(resources[logicalId(stack, strata.functions[name])].Properties.Timeout, name).toBe(29);
    expect(resources[logicalId(stack, strata.sweepFunction)].Properties.Timeout).toBe(900);
  });

  it('sends a scheduled sweep that failed its two retries to an encrypted, TLS-only dead-letter queue', () => {
    const sweep = resources[logicalId(stack, strata.sweepFunction)];
    const queueId = stack.getLogicalId(strata.sweepDeadLetterQueue.node.defaultChild as CfnElement);
    expect(sweep.Properties.DeadLetterConfig).toEqual({ TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] } });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2 });
    template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('gives each function and the API stage its own log group, kept for a month', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', handlerNames.length + backgroundFunctions + 1);
    template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('keeps the bucket private, TLS-only and free of abandoned multipart uploads', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      LifecycleConfiguration: { Rules: [{ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }] },
      LoggingConfiguration: { DestinationBucketName: { Ref: stack.getLogicalId(strata.accessLogBucket.node.defaultChild as CfnElement) }, LogFilePrefix: 'blobs/' },
      CorsConfiguration: Match.absent(),
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });

  it('keys the table by pk/sk, streams changes and expires items on expiresAt', () => {
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('retains the table and bucket by default, and the table refuses deletion', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ DeletionProtectionEnabled: true }) });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
  });

  /** The actions of a function's own role, by resource (an ARN string or the CloudFormation value as JSON). */
  function grants(fn: lambda.IFunction): { actions: string[]; resources: string[] }[] {
    const roleId = stack.getLogicalId((fn as lambda.Function).role!.node.defaultChild as CfnElement);
    const policies = Object.values(resources).filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((ref: { Ref: string }) => ref.Ref === roleId));
    expect(policies).toHaveLength(1);
    return policies[0].Properties.PolicyDocument.Statement.map((statement: { Action: string | string[]; Resource: unknown }) => ({
      actions: [statement.Action].flat(),
      resources: [statement.Resource].flat().map((r) => JSON.stringify(r)),
    }));
  }
  const actionsOf = (fn: lambda.IFunction) => grants(fn).flatMap((g) => g.actions);

  it('grants named actions only, objects only under t/ (the tenant folders), and no managed policy', () => {
    for (const fn of [...Object.values(strata.functions), strata.sweepFunction, strata.publishFunction, strata.reclaimFunction, strata.jobsFunction, strata.uploadLandedFunction]) {
      for (const { actions, resources: on } of grants(fn)) {
        for (const action of actions) expect(action).not.toContain('*');
        for (const resource of on) if (resource.includes('/')) expect(resource).toMatch(/\/t\/\*/);
      }
    }
    for (const role of Object.values(resources).filter((r) => r.Type === 'AWS::IAM::Role')) expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it('lets the data-path functions read and write, the upload function only sign uploads, and the sweep delete without reading', () => {
    for (const name of ['images', 'containers', 'files', 'volumes', 'docker'] as const) {
      expect(actionsOf(strata.functions[name]), name).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Query', 's3:GetObject', 's3:PutObject', 's3:DeleteObject']));
      expect(actionsOf(strata.functions[name]), name).not.toContain('s3:ListBucketMultipartUploads');
    }
    const uploads = grants(strata.functions.uploads).filter((g) => g.actions.some((a) => a.startsWith('s3:')));
    expect(uploads).toEqual([{ actions: ['s3:PutObject'], resources: [expect.stringContaining('/t/*/uploads/*')] }]);
    expect(actionsOf(strata.functions.uploads)).not.toContain('dynamodb:Query');
    for (const sweep of [strata.sweepFunction, strata.functions.system]) {
      expect(actionsOf(sweep)).toEqual(expect.arrayContaining(['s3:DeleteObject', 's3:ListBucket', 's3:ListBucketMultipartUploads', 's3:AbortMultipartUpload', 'dynamodb:DeleteItem']));
      expect(actionsOf(sweep)).not.toContain('s3:GetObject');
      expect(actionsOf(sweep)).not.toContain('s3:PutObject');
    }
  });

  it('traces every function with X-Ray (Powertools Tracer records the requests and AWS calls)', () => {
    const functions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions.length).toBeGreaterThan(10);
    for (const fn of functions) expect(fn.Properties.TracingConfig).toEqual({ Mode: 'Active' });
    expect(actionsOf(strata.functions.files)).toEqual(expect.arrayContaining(['xray:PutTraceSegments', 'xray:PutTelemetryRecords']));
  });

  it('logs every API request and throttles the stage', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
      AccessLogSettings: { DestinationArn: { 'Fn::GetAtt': [stack.getLogicalId(strata.apiAccessLogs.node.defaultChild as CfnElement), 'Arn'] } },
    });
  });

  it('runs the sweep hourly on its own function', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(stack, strata.sweepFunction), 'Arn'] },
          Input: JSON.stringify(SWEEP_EVENT),
        }),
      ],
    });
  });

  it('publishes only new event items and change-feed entries from the stream, in order, to its own bus, and parks a batch it gave up on in a queue', () => {
    const publisherId = logicalId(stack, strata.publishFunction);
    const busId = stack.getLogicalId(strata.eventBus.node.defaultChild as CfnElement);
    template.resourceCountIs('AWS::Events::EventBus', 1);
    expect(resources[publisherId].Properties.Environment.Variables.STRATA_EVENT_BUS).toEqual({ Ref: busId });
    const mapping = Object.values(resources).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName.Ref === publisherId)!;
    expect(mapping.Properties).toMatchObject({
      FunctionName: { Ref: publisherId },
      EventSourceArn: { 'Fn::GetAtt': [stack.getLogicalId(strata.table.node.defaultChild as CfnElement), 'StreamArn'] },
      StartingPosition: 'TRIM_HORIZON',
      ParallelizationFactor: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [stack.getLogicalId(strata.publishDeadLetterQueue.node.defaultChild as CfnElement), 'Arn'] } } },
    });
    const [pattern, feedPattern] = mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    expect(pattern.eventName).toEqual(['INSERT']);
    expect(pattern.dynamodb.NewImage.type.S).toEqual(expect.arrayContaining(['image.loaded', 'container.removed', 'volume.created']));
    // Change-feed entries too, which it publishes in batches as tree.changed events.
    expect(feedPattern).toEqual({ eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: ['added', 'modified', 'deleted', 'renamed', 'merged'] } } } });
    // The publisher may put events and read the stream; it touches no item and no object.
    const actions = actionsOf(strata.publishFunction);
    expect(actions).toContain('events:PutEvents');
    expect(actions).toEqual(expect.arrayContaining(['dynamodb:GetRecords', 'dynamodb:GetShardIterator']));
    for (const action of actions) expect(action).not.toMatch(/^s3:|^dynamodb:(GetItem|PutItem|UpdateItem|DeleteItem|Query)$/);
    const putEvents = grants(strata.publishFunction).find((g) => g.actions.includes('events:PutEvents'))!;
    expect(putEvents.resources).toEqual([JSON.stringify({ 'Fn::GetAtt': [busId, 'Arn'] })]);
  });

  it('reclaims from the stream only new garbage items, removed images and expiry items TTL deleted, reporting partial failures, with a failure queue and no read of file contents', () => {
    const reclaimerId = logicalId(stack, strata.reclaimFunction);
    const mapping = Object.values(resources).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName.Ref === reclaimerId)!;
    expect(mapping.Properties).toMatchObject({
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [stack.getLogicalId(strata.reclaimDeadLetterQueue.node.defaultChild as CfnElement), 'Arn'] } } },
    });
    const patterns = mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    expect(patterns).toEqual([
      { eventName: ['INSERT'], dynamodb: { NewImage: { blobPrefix: { S: [{ exists: true }] } } } },
      { eventName: ['REMOVE'], dynamodb: { OldImage: { configKey: { S: [{ exists: true }] } } } },
      { eventName: ['REMOVE'], userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] }, dynamodb: { OldImage: { expiry: { S: [{ exists: true }] } } } },
    ]);
    const actions = actionsOf(strata.reclaimFunction);
    expect(actions).toEqual(expect.arrayContaining(['s3:DeleteObject', 'dynamodb:DeleteItem', 'dynamodb:GetRecords']));
    expect(actions).not.toContain('s3:GetObject');
    expect(actions).not.toContain('s3:PutObject');
  });

  it('runs each queued job alone, up to 15 minutes, from new job items of the stream', () => {
    const jobsId = logicalId(stack, strata.jobsFunction);
    expect(resources[jobsId].Properties.Timeout).toBe(900);
    const mapping = Object.values(resources).find((r) => r.Type === 'AWS::Lambda::EventSourceMapping' && r.Properties.FunctionName.Ref === jobsId)!;
    expect(mapping.Properties).toMatchObject({ BatchSize: 1, FunctionResponseTypes: ['ReportBatchItemFailures'] });
    expect(mapping.Properties.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern))).toEqual([
      { eventName: ['INSERT'], dynamodb: { NewImage: { jobKind: { S: [{ exists: true }] }, status: { S: ['queued'] } } } },
      { eventName: ['MODIFY'], dynamodb: { NewImage: { jobKind: { S: [{ exists: true }] }, status: { S: ['queued'] } }, OldImage: { status: { S: ['awaiting-upload'] } } } },
    ]);
  });

  it('starts the load of an upload when its bytes land: S3 events through EventBridge, only *.upload keys, to a function that may only read uploads', () => {
    const bucketId = stack.getLogicalId(strata.bucket.node.defaultChild as CfnElement);
    expect(resources[bucketId].Properties.NotificationConfiguration).toEqual({ EventBridgeConfiguration: { EventBridgeEnabled: true } });
    const landedId = logicalId(stack, strata.uploadLandedFunction);
    const rule = Object.values(resources).find((r) => r.Type === 'AWS::Events::Rule' && r.Properties.Targets?.some((t: { Arn: unknown }) => JSON.stringify(t.Arn).includes(landedId)))!;
    expect(rule.Properties.EventBusName).toBeUndefined(); // S3 sends to the default bus.
    expect(rule.Properties.EventPattern).toEqual({
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: [{ Ref: bucketId }] }, object: { key: [{ suffix: '.upload' }] } },
    });
    expect(rule.Properties.Targets[0]).toMatchObject({ RetryPolicy: { MaximumRetryAttempts: 2 }, DeadLetterConfig: { Arn: expect.anything() } });
    const objectGrants = grants(strata.uploadLandedFunction).filter((g) => g.actions.some((a) => a.startsWith('s3:')));
    expect(objectGrants).toEqual([
      { actions: ['s3:GetObject'], resources: [expect.stringContaining('/t/*/uploads/*')] },
      { actions: ['s3:ListBucket'], resources: [expect.not.stringContaining('/')] },
    ]);
  });

  it('publishes to a bus it is given instead of creating one', () => {
    const stack = new Stack(new App(), 'Given');
    const bus = events.EventBus.fromEventBusName(stack, 'Bus', 'shared-bus');
    const given = new StrataApi(stack, 'Strata', { codeFor: inlineCode, eventBus: bus });
    expect(given.eventBus).toBe(bus);
    Template.fromStack(stack).resourceCountIs('AWS::Events::EventBus', 0);
  });

  it('fans the sweep out per tenant through a rule on the bus, back to the sweep function with retries and its queue', () => {
    const sweepId = logicalId(stack, strata.sweepFunction);
    expect(resources[sweepId].Properties.Environment.Variables.STRATA_EVENT_BUS).toEqual({ Ref: stack.getLogicalId(strata.eventBus.node.defaultChild as CfnElement) });
    expect(actionsOf(strata.sweepFunction)).toContain('events:PutEvents');
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: { Ref: stack.getLogicalId(strata.eventBus.node.defaultChild as CfnElement) },
      EventPattern: { source: [TENANT_SWEEP.source], 'detail-type': [TENANT_SWEEP.detailType] },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [sweepId, 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 2 },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [stack.getLogicalId(strata.sweepDeadLetterQueue.node.defaultChild as CfnElement), 'Arn'] } },
        }),
      ],
    });
  });

  it('turns CORS off', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP', CorsConfiguration: Match.absent() });
  });
});

describe('StrataApi with a JWT issuer', () => {
  const issuer = 'https://issuer.example.com/';
  const { template } = synth({ jwtIssuer: issuer, jwtAudience: ['strata'], tenantClaim: 'org', removalPolicy: RemovalPolicy.DESTROY });

  it('protects every non-public route with the JWT authorizer', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: issuer, Audience: ['strata'] },
    });
    const authorizerId = Object.keys(template.findResources('AWS::ApiGatewayV2::Authorizer'))[0];
    for (const [key, route] of routesByKey(template)) {
      if (publicRouteKeys.has(key)) {
        expect(route.AuthorizationType, key).toBe('NONE');
        expect(route.AuthorizerId, key).toBeUndefined();
      } else {
        expect(route.AuthorizationType, key).toBe('JWT');
        expect(route.AuthorizerId, key).toEqual({ Ref: authorizerId });
      }
    }
  });

  it('passes the tenant claim to the functions', () => {
    const functions = template.findResources('AWS::Lambda::Function', {
      Properties: { Environment: { Variables: Match.objectLike({ STRATA_TENANT_CLAIM: 'org' }) } },
    });
    // The route handlers, the sweep, the publisher and the reclaimer (the bucket's auto-delete function has no such variable).
    expect(Object.keys(functions)).toHaveLength(handlerNames.length + backgroundFunctions);
  });

  it('deletes the table and bucket with the stack when asked, and lets the table be deleted', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete', Properties: Match.objectLike({ DeletionProtectionEnabled: false }) });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
  });
});

describe('cdk-nag (AwsSolutions)', () => {
  /** cdk-nag 3's findings, as `rule at construct path`, none acknowledged without a reason. */
  function findings(props: Omit<StrataApiProps, 'codeFor'>, id = 'Strata'): string[] {
    const app = new App();
    const stack = new Stack(app, 'Nag');
    new StrataApi(stack, id, { ...props, codeFor: inlineCode });
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    return report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.locations?.join(',') ?? r.resourceLogicalId}`));
  }

  it('finds nothing unacknowledged in the default construct', () => {
    expect(findings({})).toEqual([]);
  });

  it('finds nothing with a JWT issuer and the test-stack removal policy, under another construct id', () => {
    expect(findings({ jwtIssuer: 'https://issuer.example.com/', jwtAudience: ['strata'], removalPolicy: RemovalPolicy.DESTROY, uploadCorsOrigins: ['https://app.example.com'] }, 'Elsewhere')).toEqual(
      [],
    );
  });

  it('still reports what it should: a wildcard grant added to a function is a finding', () => {
    const app = new App();
    const stack = new Stack(app, 'Nag');
    const strata = new StrataApi(stack, 'Strata', { codeFor: inlineCode });
    strata.bucket.grantReadWrite(strata.functions.files);
    const report = new AwsSolutionsChecks(app).validateScope(stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual(expect.arrayContaining([expect.stringMatching(/^AwsSolutions-IAM5\[Action::s3:GetObject\*\]/)]));
  });

  it('allows browser uploads from the given origins only', () => {
    const { template } = synth({ uploadCorsOrigins: ['https://app.example.com'] });
    template.hasResourceProperties('AWS::S3::Bucket', {
      CorsConfiguration: { CorsRules: [Match.objectLike({ AllowedMethods: ['PUT'], AllowedOrigins: ['https://app.example.com'] })] },
    });
  });
});

describe('StrataApi configuration errors', () => {
  it('refuses an issuer without an audience', () => {
    expect(() => synth({ jwtIssuer: 'https://issuer.example.com/' })).toThrow(/together/);
  });

  it('refuses a non-positive inline body limit', () => {
    expect(() => synth({ inlineBodyLimit: 0 })).toThrow(/inlineBodyLimit/);
  });
});

describe('StrataStack', () => {
  function stackTemplate(context: Record<string, unknown>): Template {
    const app = new App({ context });
    return Template.fromStack(new StrataStack(app, 'Strata', { codeFor: inlineCode }));
  }

  it('outputs the API URL, table name and bucket name', () => {
    const outputs = stackTemplate({}).toJSON().Outputs as Record<string, unknown>;
    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(['ApiUrl', 'TableName', 'BucketName']));
  });

  it('reads the JWT issuer and a comma-separated audience from context', () => {
    stackTemplate({ jwtIssuer: 'https://issuer.example.com/', jwtAudience: 'a, b' }).hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      JwtConfiguration: { Issuer: 'https://issuer.example.com/', Audience: ['a', 'b'] },
    });
  });
});

// Keep the type import honest: every handler the table names is a HandlerName.
const _handlerNamesAreTyped: readonly HandlerName[] = handlerNames;
void _handlerNamesAreTyped;
