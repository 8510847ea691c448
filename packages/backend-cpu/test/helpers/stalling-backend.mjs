/**
 * A test backend for collective timeouts: the built CPU backend, except that one rank stops answering
 * collectives for a while. Each rank's worker imports this file by its URL (`moduleUrl`), so it is
 * plain JavaScript: worker threads cannot load TypeScript.
 *
 * backendOptions.stall = { rank, afterCollectives, ms }: after `afterCollectives` all-reduces, that rank
 * sleeps `ms` before its next one (in short slices, so terminating the worker still works).
 */
import { backend as cpu } from '../../dist/index.js';

const pause = new Int32Array(new SharedArrayBuffer(4));

export const backend = {
  ...cpu,
  name: 'cpu',
  moduleUrl: import.meta.url,
  async createRank(init) {
    const rank = await cpu.createRank(init);
    const stall = init.options?.stall;
    if (stall === undefined || stall.rank !== init.rank) return rank;
    const collective = rank.collective;
    const allReduce = collective.allReduce.bind(collective);
    let calls = 0;
    collective.allReduce = async (t) => {
      if (calls++ === stall.afterCollectives) {
        const until = Date.now() + stall.ms;
        while (Date.now() < until) Atomics.wait(pause, 0, 0, 20);
      }
      return allReduce(t);
    };
    return rank;
  },
};
