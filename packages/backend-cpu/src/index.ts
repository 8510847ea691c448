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
  // `auto` keeps f16 checkpoints f16. Measured on the 134M llama (2 cores, f16 stored vs widened to
  // f32, 3 alternating rounds): decode 17.8-20.0 vs 19.9-22.7 ms/token at TP=1, prefill 131-134 vs
  // 131-167 ms, half the memory. The kernel alone is no faster per parameter on one thread (the
  // f16 → f32 rebias costs about what the halved bytes save), so the gain is bandwidth shared by ranks.
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
