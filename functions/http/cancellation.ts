import { AsyncLocalStorage } from 'node:async_hooks';
import { Readable } from 'node:stream';

/**
 * Stopping the work behind a request once it has been answered at its deadline (or its client
 * went away). The request runs in a scope; the stores are wrapped so that, once the scope is
 * cancelled, every stream they opened or were given is destroyed, every call still awaited
 * rejects at once, and no new call starts except the ones that clean up (deletes). What a
 * cancelled request leaves is what a crash at that point leaves, which the sweep reclaims.
 */
interface Scope {
  readonly signal: AbortSignal;
  /** What to stop when the scope is cancelled: streams in flight and calls awaited. */
  readonly live: Set<(error: Error) => void>;
}

const scopes = new AsyncLocalStorage<Scope>();

/**
 * Not a domain error on purpose: a call cut off this way may still take effect, so the code that
 * cleans up after refused changes (only on domain errors) must leave its objects to the sweep.
 * The client was answered already (503 at the deadline) or is gone.
 */
export class RequestCancelledError extends Error {
  constructor() {
    super('the request was cancelled: it ran out of time or its client went away');
  }
}

const cancelledError = () => new RequestCancelledError();

/** Runs `work` in a scope that `signal` cancels; storage calls made within it stop when it fires. */
export function runCancellable<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
  const scope: Scope = { signal, live: new Set() };
  const stopAll = () => {
    const error = cancelledError();
    for (const stop of [...scope.live]) stop(error);
    scope.live.clear();
  };
  signal.addEventListener('abort', stopAll, { once: true });
  // middy hands every invocation of a warm function the same signal until one times out, so
  // the listener goes with the work. A body streamed after that stops with its client instead.
  return scopes.run(scope, work).finally(() => signal.removeEventListener('abort', stopAll));
}

/**
 * The store, its calls stopped with the scope they were made in. `cleanup` names the methods
 * that may still start after cancellation (they only remove what the request wrote).
 */
export function cancellable<T extends object>(store: T, cleanup: ReadonlySet<string>): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        const scope = scopes.getStore();
        if (!scope || cleanup.has(property)) return value.apply(target, args);
        if (scope.signal.aborted) return Promise.reject(cancelledError());
        for (const arg of args) if (arg instanceof Readable) destroyWith(scope, arg);
        return awaitedIn(scope, value.apply(target, args) as Promise<unknown>);
      };
    },
  });
}

/** Destroys the stream when the scope is cancelled, unless it has closed by then. */
function destroyWith(scope: Scope, stream: Readable): void {
  if (stream.destroyed) return;
  const stop = (error: Error) => {
    // Whoever reads it sees the error; a stream nobody listens to must not crash the process.
    stream.on('error', ignore);
    stream.destroy(error);
  };
  scope.live.add(stop);
  stream.once('close', () => scope.live.delete(stop));
}

const ignore = () => undefined;

/** The call's promise, rejected at once on cancellation; a stream it yields is tied to the scope too. */
function awaitedIn(scope: Scope, call: Promise<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const stop = (error: Error) => reject(error);
    scope.live.add(stop);
    call.then(
      (result) => {
        scope.live.delete(stop);
        if (result instanceof Readable) {
          // Answered after cancellation: nobody reads it.
          if (scope.signal.aborted) result.destroy();
          else destroyWith(scope, result);
        }
        resolve(result);
      },
      (error) => {
        scope.live.delete(stop);
        reject(error);
      },
    );
  });
}
