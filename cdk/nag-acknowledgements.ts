import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { TENANT_BLOBS } from './permissions.js';

/**
 * The cdk-nag (AwsSolutions) findings StrataApi accepts, each narrowed to the exact finding and
 * the constructs it concerns, with the reason. Anything else cdk-nag finds fails `npm test`.
 */
export function acknowledgeFindings(parts: {
  readonly bucket: s3.IBucket;
  readonly roles: readonly iam.Role[];
  readonly publicRoutes: readonly apigwv2.HttpRoute[];
  readonly streamReaders: readonly iam.IRole[];
  readonly streamFailures: readonly sqs.IQueue[];
  readonly ruleFailures: readonly sqs.IQueue[];
}): void {
  // cdk-nag names a resource by the logical ID of the bucket its ARN comes from.
  const bucketArn = `<${Stack.of(parts.bucket).getLogicalId(parts.bucket.node.defaultChild as CfnElement)}.Arn>`;
  for (const role of parts.roles) {
    Validations.of(role).acknowledge(
      {
        id: `AwsSolutions-IAM5[Resource::${bucketArn}/${TENANT_BLOBS}]`,
        reason:
          "Every blob key starts with t/<hash of the tenant>/, and tenants are created at run time, so the grant must cover all tenant folders; the functions scope each key by the caller's tenant themselves. Nothing outside t/ is granted.",
      },
      {
        id: `AwsSolutions-IAM5[Resource::${bucketArn}/${TENANT_BLOBS}/uploads/*]`,
        reason: 'The upload function signs PUT URLs for t/<tenant hash>/uploads/ of whichever tenant calls; it may write nowhere else.',
      },
    );
  }
  for (const route of parts.publicRoutes) {
    Validations.of(route).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: 'Health check and the OpenAPI document answer without credentials by design: they hold no tenant data (functions/routes.ts marks them public).',
    });
  }
  const xray = 'xray:PutTraceSegments and xray:PutTelemetryRecords, which active tracing needs (the grant CDK adds with it), support no resource-level permissions.';
  for (const role of parts.roles) {
    const streamReader = parts.streamReaders.includes(role);
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: streamReader
        ? `${xray} Likewise dynamodb:ListStreams, which a stream event source needs (the grant CDK adds with the stream); the stream's own read actions are on the table's stream ARN.`
        : xray,
    });
  }
  for (const queue of parts.streamFailures)
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        "This queue is the on-failure destination of a stream mapping (the event publisher's, the reclaimer's or the job runner's): it is the dead-letter queue (cdk-nag only recognises those of a function's DeadLetterConfig).",
    });
  for (const queue of parts.ruleFailures)
    Validations.of(queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        "This queue is the dead-letter queue of an EventBridge rule's target (landed uploads): events that failed every retry wait here (cdk-nag only recognises those of a function's DeadLetterConfig).",
    });
}
