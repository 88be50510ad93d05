import { NotFoundError } from '../../shared/errors.js';

/** Runs a lookup and words a NotFoundError as dockerd does (`No such container: c1`), which scripts match on. */
export async function orNoSuch<T>(message: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof NotFoundError) throw new NotFoundError(message);
    throw error;
  }
}
