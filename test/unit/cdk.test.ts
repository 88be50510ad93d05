import { App, RemovalPolicy, Stack, type CfnElement } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { describe, expect, it } from 'vitest';
import { StrataApi, SWEEP_EVENT, type StrataApiProps } from '../../cdk/strata-api.js';
import { StrataStack } from '../../cdk/strata-stack.js';
import { routeKeyOf, routes, type HandlerName } from '../../functions/routes.js';

// Inline code keeps synthesis free of esbuild, so these tests stay fast and need no handlers.
const inlineCode = () => lambda.Code.fromInline('exports.handler=async()=>({statusCode:200})');

const handlerNames = [...new Set(routes.map((route) => route.handler))];
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

  it('creates exactly one function per handler, wired to the table and bucket', () => {
    const functions = Object.values(resources).filter((resource) => resource.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(handlerNames.length);
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
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], MemorySize: 1024 });
    }
  });

  it('gives the sweep and image load 900 s and everything else 60 s', () => {
    for (const name of handlerNames) {
      const fn = resources[logicalId(stack, strata.functions[name])];
      expect(fn.Properties.Timeout, name).toBe(name === 'system' || name === 'images' ? 900 : 60);
    }
  });

  it('gives each function its own log group, kept for a month', () => {
    template.resourceCountIs('AWS::Logs::LogGroup', handlerNames.length);
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
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
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

  it('retains the table and bucket by default', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Retain' });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
  });

  it('lets every function read and write the table and the bucket', () => {
    for (const name of handlerNames) {
      const role = (strata.functions[name] as lambda.Function).role!;
      const policy = Object.values(resources).find(
        (resource) =>
          resource.Type === 'AWS::IAM::Policy' &&
          resource.Properties.Roles.some((ref: { Ref: string }) => ref.Ref === stack.getLogicalId(role.node.defaultChild as CfnElement)),
      );
      const actions = policy!.Properties.PolicyDocument.Statement.flatMap((statement: { Action: string | string[] }) => statement.Action);
      expect(actions, name).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:Query', 's3:GetObject*', 's3:PutObject', 's3:DeleteObject*']));
    }
  });

  it('runs the sweep hourly on the system function', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logicalId(stack, strata.functions.system), 'Arn'] },
          Input: JSON.stringify(SWEEP_EVENT),
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
    expect(Object.keys(functions)).toHaveLength(handlerNames.length);
  });

  it('deletes the table and bucket with the stack when asked', () => {
    template.hasResource('AWS::DynamoDB::Table', { DeletionPolicy: 'Delete' });
    template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete' });
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
    stackTemplate({ jwtIssuer: 'https://issuer.example.com/', jwtAudience: 'a, b' }).hasResourceProperties(
      'AWS::ApiGatewayV2::Authorizer',
      { JwtConfiguration: { Issuer: 'https://issuer.example.com/', Audience: ['a', 'b'] } },
    );
  });
});

// Keep the type import honest: every handler the table names is a HandlerName.
const _handlerNamesAreTyped: readonly HandlerName[] = handlerNames;
void _handlerNamesAreTyped;
