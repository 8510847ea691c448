/**
 * @tp/backend-cpu: ranks are worker threads; each rank's tensors live in its own WebAssembly memory.
 */
import { abortHostCollective, BACKEND_INTERFACE_VERSION, createHostCollectiveInit, type Backend, type HostCollectiveInit } from '@tp/core';
import os from 'node:os';
import { CpuRank } from './rank.js';

/** Workers import the built module: when this file runs from TypeScript sources (tests), use dist. */
const moduleUrl = import.meta.url.endsWith('.ts') ? new URL('../dist/index.js', import.meta.url).href : import.meta.url;

/** Floats one rank contributes to a host collective at a time (larger tensors go in chunks). */
const SLOT_FLOATS = 1 << 16;

/** A wasm32 memory addresses 4 GiB (65536 pages of 64 KiB). */
export const CPU_RANK_MEMORY_LIMIT = 2 ** 32;

export const backend: Backend = {
  interfaceVersion: BACKEND_INTERFACE_VERSION,
  name: 'cpu',
  moduleUrl,
  storageDtypes: ['f32', 'bf16', 'f16'],
  // f16 → f32 in WebAssembly SIMD costs more than the multiply-adds: measured (bench/matmul.mjs), f16
  // decode ran at 0.95-1.2× f32's speed per parameter on clean weights and 0.64-0.86× with the ~0.3%
  // subnormal weights trained checkpoints have. So `auto` widens f16 checkpoints; --dtype f16 keeps
  // them half (for memory). bf16 widens with one shift and decodes 1.4-2.4× faster than f32.
  autoStorage: { f16: 'f32' },
  kvDtypes: ['f32'],
  async probe() {
    return { available: true, devices: [{ name: `${os.cpus()[0]?.model ?? 'CPU'} (${os.availableParallelism()} threads)`, memoryBytes: os.totalmem() }] };
  },
  async rankMemoryLimit() {
    return CPU_RANK_MEMORY_LIMIT;
  },
  createCommunicator(world, options) {
    return createHostCollectiveInit(world, SLOT_FLOATS, options.timeoutMs);
  },
  abortCommunicator(init, rank) {
    abortHostCollective(init as HostCollectiveInit, rank);
  },
  async createRank(init) {
    return new CpuRank(init);
  },
};

export { CpuRank } from './rank.js';
export { Heap } from './heap.js';
