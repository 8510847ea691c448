/**
 * @tp/backend-cpu: ranks are worker threads; each rank's tensors live in its own WebAssembly memory.
 */
import { BACKEND_INTERFACE_VERSION, type Backend } from '@tp/core';
import os from 'node:os';
import { CpuRank } from './rank.js';

/** Workers import the built module: when this file runs from TypeScript sources (tests), use dist. */
const moduleUrl = import.meta.url.endsWith('.ts') ? new URL('../dist/index.js', import.meta.url).href : import.meta.url;

export const backend: Backend = {
  interfaceVersion: BACKEND_INTERFACE_VERSION,
  name: 'cpu',
  moduleUrl,
  async probe() {
    return { available: true, devices: [{ name: `${os.cpus()[0]?.model ?? 'CPU'} (${os.availableParallelism()} threads)`, memoryBytes: os.totalmem() }] };
  },
  async createRank(init) {
    return new CpuRank(init);
  },
};

export { CpuRank } from './rank.js';
export { Heap } from './heap.js';
