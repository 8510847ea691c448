/** One rank of bench.mjs's collective timing: `n` all-reduces of [1, hidden] after a small kernel each. */
import { parentPort, workerData } from 'node:worker_threads';
import { hostTensor } from '@tp/core';
import { backend } from '../dist/index.js';

const { rank: r, communicator, hidden, n } = workerData;
const rank = await backend.createRank({ rank: r, world: 2, communicator, options: {} });
const x = rank.upload(hostTensor(new Float32Array(hidden).fill(1), [1, hidden]));
const warm = 10;
for (let i = 0; i < warm + n; i++) {
  if (i === warm) Object.assign(rank.collective.times, { calls: 0, kernelMs: 0, readMs: 0, hostMs: 0, writeMs: 0 });
  rank.beginStep();
  // The GPU is idle when the collective starts: the readback costs its own latency, not kernels'.
  const y = rank.scale(x, 1);
  await rank.download(rank.argmax(y));
  await rank.collective.allReduce(y);
  await rank.endStep();
}
const times = { ...rank.collective.times };
await rank.dispose();
parentPort.postMessage(times);
