/**
 * @tp/backend-webgpu: tensor-parallel inference over WebGPU devices, in Node through Dawn (the `webgpu`
 * package). Each rank is a worker thread with its own GPUDevice; collectives go through host shared
 * memory. See the package README for what runs where.
 */
import { abortHostCollective, BACKEND_INTERFACE_VERSION, createHostCollectiveInit, TpError, type Backend, type BackendDevice, type BackendProbe, type HostCollectiveInit, type RankInit } from '@tp/core';
import os from 'node:os';
import { adapterName, openDevice, type AdapterSummary } from './device.js';
import { describeAdapter, flagsFor, gpuFor, listAdapters, type ListedAdapter } from './node/adapters.js';
import { KV_DTYPES, WebGpuRank } from './rank.js';
import { abortGuard, createGuardBuffer } from './guard.js';

/** Workers import the built module: when this file runs from TypeScript sources (tests), use dist. */
const moduleUrl = import.meta.url.endsWith('.ts') ? new URL('../dist/index.js', import.meta.url).href : import.meta.url;

/** Floats one rank contributes to a host collective at a time (larger tensors go in chunks). */
const SLOT_FLOATS = 1 << 16;

export interface WebGpuDevice {
  /** Position in Dawn's enumeration: the number `backendOptions.devices` refers to. */
  index: number;
  backend: string;
  name: string;
  adapter: AdapterSummary | undefined;
}

/** Every adapter Dawn sees, numbered, with its features and key limits (`tp devices`). */
export async function listDevices(): Promise<WebGpuDevice[]> {
  const adapters = await listAdapters();
  const out: WebGpuDevice[] = [];
  for (const [index, a] of adapters.entries()) out.push({ index, backend: a.backend, name: a.name, adapter: await describeAdapter(a).catch(() => undefined) });
  return out;
}

/**
 * The adapter rank `rank` uses: `options.devices[rank]` (indices into listDevices) when given, else
 * rank mod the number of adapters; undefined when Dawn lists one adapter or none (use its default).
 */
async function adapterFor(rank: number, options: Record<string, unknown>): Promise<ListedAdapter | undefined> {
  const devices = options['devices'];
  const adapters = await listAdapters();
  if (devices !== undefined) {
    if (!Array.isArray(devices) || !devices.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TpError('invalid-argument', `backendOptions.devices must be a list of device numbers (see tp devices --backend webgpu), not ${JSON.stringify(devices)}`);
    }
    const index = devices[rank] as number | undefined;
    if (index === undefined) throw new TpError('invalid-argument', `backendOptions.devices lists ${devices.length} devices, but rank ${rank} needs one`);
    const chosen = adapters[index];
    if (chosen === undefined) throw new TpError('invalid-argument', `device ${index} does not exist: WebGPU sees ${adapters.length} adapter${adapters.length === 1 ? '' : 's'} (tp devices --backend webgpu lists them)`);
    return chosen;
  }
  return adapters.length > 1 ? adapters[rank % adapters.length] : undefined;
}

/** One adapter as `tp devices` shows it: its name and the facts a user picks devices by. */
function probedDevice(d: WebGpuDevice): BackendDevice {
  const a = d.adapter;
  if (a === undefined) return { name: d.name, details: { 'Dawn backend': d.backend }, unusable: 'Dawn lists it but could not open it' };
  const details: Record<string, string | number | boolean | readonly string[]> = {
    vendor: a.vendor,
    architecture: a.architecture,
    'Dawn backend': d.backend,
    software: a.fallback,
    features: a.features,
    maxBufferSize: a.limits.maxBufferSize,
    maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: a.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.limits.maxComputeInvocationsPerWorkgroup,
  };
  if (a.subgroupMinSize !== undefined) details['subgroup sizes'] = `${a.subgroupMinSize}–${a.subgroupMaxSize ?? a.subgroupMinSize}`;
  return { name: adapterName(a), details };
}

export const backend: Backend = {
  interfaceVersion: BACKEND_INTERFACE_VERSION,
  name: 'webgpu',
  moduleUrl,
  // f16 is read natively where shader-f16 exists and unpacked from u32 elsewhere; bf16 always packed.
  storageDtypes: ['f16', 'bf16', 'f32'],
  kvDtypes: KV_DTYPES,
  async probe(): Promise<BackendProbe> {
    try {
      const devices = await listDevices();
      const usable = devices.filter((d) => d.adapter !== undefined);
      if (usable.length === 0) {
        return { available: false, reason: 'WebGPU sees no adapter: install a GPU driver with Vulkan (Linux), or Mesa lavapipe for a software one (bash tools/setup.sh as root on Debian)', devices: [] };
      }
      // Every adapter in Dawn's order, so the numbers match backendOptions.devices.
      return { available: true, devices: devices.map(probedDevice) };
    } catch (error) {
      return { available: false, reason: `WebGPU (Dawn) failed to start: ${(error as Error)?.message ?? String(error)}`, devices: [] };
    }
  },
  async rankMemoryLimit() {
    // WebGPU does not report device memory. A software adapter (lavapipe) allocates host memory, which
    // all ranks share; for a GPU the limit is unknown here and left to the device's own errors.
    const devices = await listDevices().catch(() => []);
    const software = devices.length > 0 && devices.every((d) => d.adapter?.fallback);
    return software ? Math.floor(os.totalmem() * 0.75) : undefined;
  },
  createCommunicator(world, options) {
    // The host collective's shared memory, plus the ranks' section counters (guard.ts).
    return { ...createHostCollectiveInit(world, SLOT_FLOATS, options.timeoutMs), guard: createGuardBuffer(world) };
  },
  abortCommunicator(init, rank) {
    // Wake the ranks blocked in a collective first: they must run to leave their sections.
    abortHostCollective(init as HostCollectiveInit, rank);
    const guard = init['guard'];
    if (guard instanceof SharedArrayBuffer) abortGuard(guard, rank);
  },
  async createRank(init: RankInit) {
    // Every Dawn call runs in a guarded section, from the first (guard.ts).
    const guard = WebGpuRank.guardFor(init);
    const adapter = await guard.wait('listing adapters', () => adapterFor(init.rank, init.options));
    const without = init.options['disableFeatures'];
    if (without !== undefined && !(Array.isArray(without) && without.every((f) => typeof f === 'string'))) {
      throw new TpError('invalid-argument', `backendOptions.disableFeatures must be a list of WebGPU feature names, not ${JSON.stringify(without)}`);
    }
    const gpu = guard.call('starting Dawn', () => gpuFor(adapter ? flagsFor(adapter) : []));
    const opened = await openDevice(gpu, `tp rank ${init.rank}`, (without as string[] | undefined) ?? [], guard);
    const rank = guard.call('creating the rank', () => new WebGpuRank(opened, init, guard));
    const profileDir = init.options['profileDir'];
    if (typeof profileDir === 'string') {
      // Benchmark hook: each rank leaves its counters (dispatches, submissions, time in collectives).
      const dispose = rank.dispose.bind(rank);
      rank.dispose = async () => {
        const stats = { rank: init.rank, world: init.world, adapter: opened.adapter.description, ...rank.stats() };
        await dispose();
        const { writeFile } = await import('node:fs/promises');
        await writeFile(`${profileDir}/rank-${init.rank}.json`, JSON.stringify(stats));
      };
    }
    return rank;
  },
};

export { DeviceLostError, WebGpuRank } from './rank.js';
export { WgslCompileError } from './pipelines.js';
export type { AdapterSummary } from './device.js';
