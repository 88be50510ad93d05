import type { MiddlewareObj } from '@middy/core';
import type { HttpEvent } from '../types.js';

/** Header names are case-insensitive: lower-case them once so nothing else has to care. */
export function normalizeHeaders(): MiddlewareObj<HttpEvent> {
  return {
    before: (request) => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.event.headers ?? {})) if (value !== undefined) headers[name.toLowerCase()] = value;
      request.event.headers = headers;
    },
  };
}
