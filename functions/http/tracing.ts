import { Tracer } from '@aws-lambda-powertools/tracer';

/**
 * X-Ray tracing (Powertools Tracer): each API request is a segment with its operation as an
 * annotation, and every DynamoDB, S3 and EventBridge call of a deployed function a subsegment.
 * Powertools turns it off outside Lambda (the local server, tests), so it costs nothing there.
 */
export const tracer = new Tracer({ serviceName: 'strata' });
