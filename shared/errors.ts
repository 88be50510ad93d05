/**
 * Typed domain errors. Each carries the HTTP status it maps to, so the one error mapper in
 * functions/ never has to guess (the Powertools pattern of errors that carry their status).
 */
export abstract class StrataError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }

  /** Fields a client needs beside the message (a merge's conflicts); sent with 4xx answers only. */
  get details(): Record<string, unknown> | undefined {
    return undefined;
  }
}

/** 400: the request itself is malformed (bad path, bad tar, bad JSON). */
export class InvalidInputError extends StrataError {
  readonly status = 400;
  readonly code = 'invalid_input';
}

/** 401: no valid credentials. */
export class UnauthorizedError extends StrataError {
  readonly status = 401;
  readonly code = 'unauthorized';
}

/** 403: credentials are valid but the action is not allowed (read-only mount, for one). */
export class ForbiddenError extends StrataError {
  readonly status = 403;
  readonly code = 'forbidden';
}

/** 404: the image, container, volume, path or blob does not exist. */
export class NotFoundError extends StrataError {
  readonly status = 404;
  readonly code = 'not_found';
}

/** 409: the state forbids the change (in use, not empty, already exists, not a directory). */
export class ConflictError extends StrataError {
  readonly status = 409;
  readonly code = 'conflict';
}

/** 409 from the metadata store: another transaction touched the same items at the same time; safe to retry. */
export class ConcurrentChangeError extends ConflictError {}

/** 412: an If-Match / If-None-Match precondition or an optimistic-concurrency check failed. */
export class PreconditionFailedError extends StrataError {
  readonly status = 412;
  readonly code = 'precondition_failed';
}

/** 413: the body or archive is over a limit (size, entry count, expansion ratio). */
export class TooLargeError extends StrataError {
  readonly status = 413;
  readonly code = 'too_large';
}

/** 410: what was asked for is no longer kept (a change feed's cursor older than its retention). */
export class GoneError extends StrataError {
  readonly status = 410;
  readonly code = 'gone';
}

/** 507: the change would take a container or volume past its quota; nothing was written. */
export class QuotaExceededError extends StrataError {
  readonly status = 507;
  readonly code = 'quota_exceeded';
}

/** 416: the byte range lies outside the file. */
export class RangeNotSatisfiableError extends StrataError {
  readonly status = 416;
  readonly code = 'range_not_satisfiable';
}

/** 503: the request ran out of time before it finished; nothing it did was acknowledged. */
export class DeadlineExceededError extends StrataError {
  readonly status = 503;
  readonly code = 'deadline_exceeded';
}

/** 400 with a filesystem flavour: ENOTDIR, EISDIR, ELOOP and the like, named in `code`. */
export class FsError extends StrataError {
  readonly status: number;
  readonly code: string;
  constructor(code: 'ENOTDIR' | 'EISDIR' | 'ELOOP' | 'ENOTEMPTY' | 'EEXIST' | 'EINVAL' | 'EPERM', message: string) {
    super(message);
    this.code = code;
    this.status = code === 'ENOTEMPTY' || code === 'EEXIST' ? 409 : 400;
  }
}

/** 412 from a metadata transaction: `failedIndexes` names the ops whose conditions did not hold. */
export class TransactionConditionError extends PreconditionFailedError {
  constructor(
    message: string,
    readonly failedIndexes: readonly number[],
  ) {
    super(message);
  }
}
