/**
 * Vitest 5's reporter calls Map.groupBy, which Node 20 lacks (it arrived in Node 21): without this, a
 * failing test crashes the reporter instead of printing the failure. Every vitest config imports it.
 */
declare global {
  interface MapConstructor {
    groupBy<K, T>(items: Iterable<T>, key: (item: T, index: number) => K): Map<K, T[]>;
  }
}

if (typeof Map.groupBy !== 'function') {
  Object.defineProperty(Map, 'groupBy', {
    configurable: true,
    writable: true,
    value<K, T>(items: Iterable<T>, key: (item: T, index: number) => K): Map<K, T[]> {
      const groups = new Map<K, T[]>();
      let index = 0;
      for (const item of items) {
        const k = key(item, index++);
        const list = groups.get(k);
        if (list === undefined) groups.set(k, [item]);
        else list.push(item);
      }
      return groups;
    },
  });
}

export {};
