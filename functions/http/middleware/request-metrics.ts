import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type { StoreCalls } from '../store-calls.js';
import type { HttpEvent, HttpResponse } from '../types.js';

/**
 * Per request, as CloudWatch embedded metrics (Powertools Metrics, one JSON line on stdout):
 * a count, server errors, response bytes, and the DynamoDB and S3 calls it made, by operation.
 * Only where `calls` is given (deployed functions); the local server stays quiet.
 */
export function requestMetrics(options: { readonly calls: () => StoreCalls | undefined; readonly operationOf: (event: HttpEvent) => string }): MiddlewareObj<HttpEvent, HttpResponse, Error, Context> {
  const metrics = new Metrics({ namespace: 'Strata', serviceName: 'strata' });
  const record = (event: HttpEvent, response: HttpResponse | undefined) => {
    const calls = options.calls();
    if (!calls) return;
    metrics.addDimension('operation', options.operationOf(event));
    metrics.addMetric('Requests', MetricUnit.Count, 1);
    if ((response?.statusCode ?? 500) >= 500) metrics.addMetric('ServerErrors', MetricUnit.Count, 1);
    metrics.addMetric('MetadataCalls', MetricUnit.Count, calls.metadata);
    metrics.addMetric('BlobCalls', MetricUnit.Count, calls.blobs);
    if (typeof response?.body === 'string') metrics.addMetric('ResponseBytes', MetricUnit.Bytes, Buffer.byteLength(response.body, response.isBase64Encoded ? 'base64' : 'utf8'));
    metrics.publishStoredMetrics();
  };
  return {
    before: () => {
      const calls = options.calls();
      if (calls) Object.assign(calls, { metadata: 0, blobs: 0 });
    },
    after: (request) => record(request.event, request.response ?? undefined),
    onError: (request) => record(request.event, request.response ?? undefined),
  };
}
