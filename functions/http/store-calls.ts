/** Storage calls of the request in flight: a Lambda instance serves one request at a time. */
export interface StoreCalls {
  metadata: number;
  blobs: number;
}

/** The store, counting each call of its methods into `calls[kind]`. */
export function countingCalls<T extends object>(store: T, calls: StoreCalls, kind: keyof StoreCalls): T {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls[kind]++;
        return value.apply(target, args);
      };
    },
  });
}
