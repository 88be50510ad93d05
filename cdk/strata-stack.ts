import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { StrataApi, type StrataApiProps } from './strata-api.js';

export interface StrataStackProps extends StackProps {
  /**
   * Passed through to StrataApi; tests use it to skip bundling.
   *
   * @default - handlers are bundled from functions/handlers/
   */
  readonly codeFor?: StrataApiProps['codeFor'];
}

/** `-c jwtAudience=a,b` arrives as a string; cdk.json context may hold an array. */
function audienceFromContext(value: unknown): string[] | undefined {
  if (value === undefined || value === '') return undefined;
  if (Array.isArray(value)) return value.map(String);
  return String(value)
    .split(',')
    .map((audience) => audience.trim())
    .filter(Boolean);
}

/**
 * The deployable unit: StrataApi configured from context (`jwtIssuer`, `jwtAudience`), with the
 * values a client or operator needs as outputs.
 */
export class StrataStack extends Stack {
  public readonly strata: StrataApi;

  constructor(scope: Construct, id: string, props: StrataStackProps = {}) {
    super(scope, id, props);

    const jwtIssuer: unknown = this.node.tryGetContext('jwtIssuer');
    this.strata = new StrataApi(this, 'Strata', {
      jwtIssuer: jwtIssuer ? String(jwtIssuer) : undefined,
      jwtAudience: audienceFromContext(this.node.tryGetContext('jwtAudience')),
      codeFor: props.codeFor,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.strata.url, description: 'Base URL of the Strata API' });
    new CfnOutput(this, 'TableName', { value: this.strata.table.tableName, description: 'Metadata table' });
    new CfnOutput(this, 'BucketName', { value: this.strata.bucket.bucketName, description: 'Blob bucket' });
    new CfnOutput(this, 'EventBusName', { value: this.strata.eventBus.eventBusName, description: 'EventBridge bus of Strata events' });
  }
}
