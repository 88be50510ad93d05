import type { BlobStore } from '../../shared/ports/blob-store.js';
import type { MetadataStore } from '../../shared/ports/metadata-store.js';

/**
 * How a storage call at the chosen position goes wrong:
 * - `fail`: that one call throws, the process lives on (its cleanup runs);
 * - `crash`: that call and every later one throw, as if the process died before the call;
 * - `crash-after`: the call takes effect, then it and every later one throw (died before the answer).
 */
export type FaultMode = 'fail' | 'crash' | 'crash-after';

/** Counts every call to both stores, in order, and injects one fault at a chosen position. */
export class FaultPlan {
  calls = 0;
  /** 1-based position of the faulty call; undefined counts only. */
  at: number | undefined;
  mode: FaultMode = 'fail';
  private crashed = false;
  readonly log: string[] = [];

  constructor(at?: number, mode: FaultMode = 'fail') {
    this.at = at;
    this.mode = mode;
  }

  async run<T>(name: string, call: () => Promise<T>): Promise<T> {
    const position = ++this.calls;
    this.log.push(name);
    if (this.crashed) throw new Error(`injected: process is gone (${name})`);
    if (position !== this.at) return call();
    if (this.mode === 'fail') throw new Error(`injected fault at call ${position} (${name})`);
    this.crashed = true;
    if (this.mode === 'crash-after') {
      // The call took effect; its answer is lost with the process (a stream it opened is closed).
      const result = await call().catch(() => undefined);
      (result as { destroy?: () => void } | undefined)?.destroy?.();
    }
    throw new Error(`injected crash at call ${position} (${name})`);
  }
}

function wrap<T extends object>(target: T, prefix: string, plan: FaultPlan): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value = Reflect.get(object, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => plan.run(`${prefix}.${property}`, () => value.apply(object, args));
    },
  });
}

export function faultyStores(meta: MetadataStore, blobs: BlobStore, plan: FaultPlan): { meta: MetadataStore; blobs: BlobStore } {
  return { meta: wrap(meta, 'meta', plan), blobs: wrap(blobs, 'blobs', plan) };
}
