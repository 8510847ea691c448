/**
 * @tp/backend-cuda: NVIDIA GPUs through a node-addon-api addon that loads the CUDA driver, cuBLASLt
 * and NCCL at run time (so the package installs and imports anywhere), kernels precompiled by nvcc
 * into one fatbin, one rank per worker thread with its own stream.
 *
 * Options (`backendOptions` of initInference, or the environment):
 * - `gemm` / TP_CUDA_GEMM: `auto` (cuBLASLt for prefill when loaded), `cublaslt`, `kernel`.
 * - TP_CUDA_COLLECTIVE: `auto`, `nccl` or `device` (see collective.ts).
 * - `devices`: the GPU of each rank, one per rank (the CLI's --devices); else TP_CUDA_DEVICES,
 *   comma-separated and cycled; default: rank r on GPU r mod count.
 * - TP_CUDA_LIBCUDA, TP_CUDA_CUBLASLT, TP_CUDA_NCCL: a library file or folder (see search.ts).
 */
import { BACKEND_INTERFACE_VERSION, TpError, type Backend, type BackendProbe, type RankInit } from '@tp/core';
import { abortCudaCommunicator, chooseMode, createCudaCommunicator, DeviceCollective, NcclCollective, type CudaCommunicatorInit } from './collective.js';
import { statusName, translate } from './errors.js';
import { loadLibraries, type LibraryReport } from './libraries.js';
import { loadFatbin, type NativeDevice } from './native.js';
import { CudaRank, kernelNames } from './rank.js';
import type { KernelName } from './kernels.js';

/** Workers import the built module: when this file runs from TypeScript sources (tests), use dist. */
const moduleUrl = import.meta.url.endsWith('.ts') ? new URL('../dist/index.js', import.meta.url).href : import.meta.url;

export interface CudaProbe extends BackendProbe {
  /** Each library: loaded from where, which version, every place looked. */
  libraries: LibraryReport[];
  /** The fatbin's path, or why it is missing. */
  kernels: { path: string; error?: string };
  /** Things that work but less well (no cuBLASLt, no NCCL). */
  notes: string[];
  /** The driver's CUDA version (13000 = 13.0). */
  driverVersion?: number;
  gpus: NativeDevice[];
}

/** Driver 13.0 runs the CUDA 13.0 fatbin; older drivers cannot. */
const MIN_DRIVER = 13000;

function lines(report: LibraryReport): string {
  return report.looked.map((l) => `\n    ${l}`).join('');
}

/** Everything probe() reports, with the details tools print (`tp devices --backend cuda`, tools/device/check.sh). */
export async function probeCuda(): Promise<CudaProbe> {
  const empty = { devices: [], gpus: [], libraries: [], notes: [] };
  const kernels = loadFatbin();
  const kernelsReport = { path: kernels.path, ...(kernels.error ? { error: kernels.error } : {}) };
  const loaded = loadLibraries();
  if (loaded.libraries === undefined) return { available: false, reason: loaded.error!, kernels: kernelsReport, ...empty };
  const { native, cuda, cublasLt, nccl } = loaded.libraries;
  const libraries = [cuda, cublasLt, nccl];
  const notes: string[] = [];
  if (!cublasLt.loaded) notes.push(`${cublasLt.title} was not found: prefill GEMMs use tp's own kernel. Looked in:${lines(cublasLt)}`);
  if (!nccl.loaded) notes.push(`${nccl.title} was not found: ranks on different GPUs of this process use peer copies instead. Looked in:${lines(nccl)}`);
  const base = { libraries, kernels: kernelsReport, notes };
  const also = notes.length > 0 ? `\nAlso: ${notes.join('\nAlso: ')}` : '';
  if (!cuda.loaded) {
    return { available: false, reason: `${cuda.title} was not found (install the NVIDIA driver, or set TP_CUDA_LIBCUDA to its file). Looked in:${lines(cuda)}${also}`, devices: [], gpus: [], ...base };
  }
  if (cuda.initStatus !== 0) {
    const name = statusName('cuda', cuda.initStatus ?? -1, native.errorName('cuda', cuda.initStatus ?? 0).name);
    return { available: false, reason: `the driver at ${cuda.path} did not initialise: cuInit returned ${name} (${cuda.initStatus}); no usable GPU`, devices: [], gpus: [], ...base };
  }
  if ((cuda.version ?? 0) < MIN_DRIVER) {
    notes.unshift(`the driver supports CUDA ${cuda.versionText}; the kernels are built with CUDA 13.0 and need a driver for CUDA 13.0 or newer (580+)`);
  }
  let gpus: NativeDevice[];
  try {
    gpus = native.devices();
  } catch (error) {
    return { available: false, reason: translate(error).message, devices: [], gpus: [], ...base };
  }
  const devices = gpus.map((g) => ({
    name: `${g.name} (sm_${g.major}${g.minor}, ${g.multiprocessors} SMs, ${g.pciBusId})`,
    memoryBytes: g.memoryBytes,
    details: { 'compute capability': `${g.major}.${g.minor}`, multiprocessors: g.multiprocessors, 'PCI bus': g.pciBusId },
  }));
  const probe = { devices, gpus, driverVersion: cuda.version, ...base };
  if (gpus.length === 0) return { available: false, reason: `the driver at ${cuda.path} sees no GPU`, ...probe };
  if (kernels.error) return { available: false, reason: `the CUDA kernels are missing: ${kernels.error}`, ...probe };
  const old = gpus.filter((g) => g.major < 8);
  if (old.length === gpus.length) return { available: false, reason: `the kernels need compute capability 8.0 or newer; ${old.map((g) => `${g.name} is ${g.major}.${g.minor}`).join(', ')}`, ...probe };
  if ((cuda.version ?? 0) < MIN_DRIVER) return { available: false, reason: notes[0]!, ...probe };
  return { available: true, ...probe };
}

/**
 * The GPU of each of `world` ranks: backendOptions.devices (the CLI's --devices: rank r takes
 * devices[r]), else TP_CUDA_DEVICES (cycled), else round-robin over the GPUs the driver sees.
 */
export function placement(world: number, count: number, chosen?: unknown): number[] {
  if (chosen !== undefined) {
    if (!Array.isArray(chosen) || !chosen.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TpError('invalid-argument', `backendOptions.devices must be a list of GPU numbers (see tp devices --backend cuda), not ${JSON.stringify(chosen)}`);
    }
    if (chosen.length < world) throw new TpError('invalid-argument', `backendOptions.devices lists ${chosen.length} GPU${chosen.length === 1 ? '' : 's'} for ${world} ranks: give one per rank`);
    const missing = chosen.find((d: number) => count > 0 && d >= count);
    if (missing !== undefined) throw new TpError('invalid-argument', `GPU ${String(missing)} does not exist: the driver sees ${count} (tp devices --backend cuda lists them)`);
    return (chosen as number[]).slice(0, world);
  }
  const listed = process.env['TP_CUDA_DEVICES'];
  if (listed) {
    const devices = listed.split(',').map((s) => Number.parseInt(s.trim(), 10));
    if (devices.some((d) => !Number.isInteger(d) || d < 0 || (count > 0 && d >= count))) throw new TpError('invalid-argument', `TP_CUDA_DEVICES=${listed}: GPU indices are 0 to ${count - 1}`);
    return Array.from({ length: world }, (_, r) => devices[r % devices.length]!);
  }
  return Array.from({ length: world }, (_, r) => (count > 0 ? r % count : 0));
}

export const backend: Backend = {
  interfaceVersion: BACKEND_INTERFACE_VERSION,
  name: 'cuda',
  moduleUrl,
  storageDtypes: ['bf16', 'f16', 'f32'],
  kvDtypes: ['f32', 'bf16', 'f16'],
  probe: (): Promise<BackendProbe> => probeCuda(),
  async rankMemoryLimit() {
    const p = await probeCuda();
    if (!p.available || p.gpus.length === 0) return undefined;
    // What the smallest GPU holds, less room for the context, cuBLASLt and staging.
    return Math.min(...p.gpus.map((g) => g.memoryBytes)) - 2 * 2 ** 30;
  },
  createCommunicator(world, options) {
    const loaded = loadLibraries();
    const libs = loaded.libraries;
    let count = 0;
    if (libs?.cuda.loaded && libs.cuda.initStatus === 0) {
      try {
        count = libs.native.devices().length;
      } catch {
        count = 0;
      }
    }
    const devices = placement(world, count, options.backendOptions?.['devices']);
    const ncclVersion = libs?.nccl.loaded ? libs.nccl.version : undefined;
    const mode = chooseMode(process.env['TP_CUDA_COLLECTIVE'], devices, ncclVersion);
    let id: Uint8Array | undefined;
    if (mode === 'nccl' && world > 1) {
      if (!libs?.nccl.loaded) throw new TpError('backend-missing', `TP_CUDA_COLLECTIVE=nccl, but ${libs?.nccl.title ?? 'NCCL'} was not found`);
      try {
        id = libs.native.ncclUniqueId();
      } catch (error) {
        throw translate(error);
      }
    }
    return createCudaCommunicator(world, options.timeoutMs, world > 1 ? mode : 'device', devices, id);
  },
  abortCommunicator(init, rank) {
    abortCudaCommunicator(init as CudaCommunicatorInit, rank);
  },
  async createRank(init: RankInit) {
    const comm = init.communicator as CudaCommunicatorInit;
    if (comm.kind !== 'cuda') throw new TpError('invalid-argument', `the CUDA backend communicates through "cuda" communicators, not "${comm.kind}"`);
    const probe = await probeCuda();
    if (!probe.available) throw new TpError('backend-missing', `rank ${init.rank}: the CUDA backend is unavailable: ${probe.reason}`);
    const { native, cublasLt } = loadLibraries().libraries!;
    const device = comm.devices[init.rank] ?? 0;
    const info = probe.gpus[device];
    if (info === undefined) throw new TpError('invalid-argument', `rank ${init.rank}: GPU ${device} does not exist (the driver sees ${probe.gpus.length})`);
    const where = { rank: init.rank, device };
    const image = loadFatbin().value!;
    let ctx;
    try {
      ctx = new native.Context(device, typeof init.options['stagingBytes'] === 'number' ? { uploadStagingBytes: init.options['stagingBytes'] } : {});
    } catch (error) {
      throw translate(error, where);
    }
    try {
      const functions = new Map<KernelName, number>();
      const module = ctx.loadModule(image);
      for (const name of kernelNames()) functions.set(name, ctx.getFunction(module, name));
      const requested = (init.options['gemm'] as string | undefined) ?? process.env['TP_CUDA_GEMM'] ?? 'auto';
      if (!['auto', 'cublaslt', 'kernel'].includes(requested)) throw new TpError('invalid-argument', `gemm "${requested}": choose auto, cublaslt or kernel`);
      const rank = new CudaRank(init.rank, init.world, device, ctx, functions, info, { gemm: requested as 'auto', cublasLt: cublasLt.loaded });
      rank.collective = comm.mode === 'nccl' && init.world > 1 ? await NcclCollective.create(rank, comm, native) : new DeviceCollective(rank, comm);
      return rank;
    } catch (error) {
      try {
        ctx.dispose();
      } catch {
        // the original failure matters more
      }
      throw translate(error, where);
    }
  },
};

export { CudaError, translate } from './errors.js';
export { CudaRank } from './rank.js';
export { summarizeFatbin, parseFatbin } from './fatbin.js';
export { searchLibrary, LIBRARIES, type LibraryName, type SearchStep } from './search.js';
export type { LibraryReport } from './libraries.js';
export { copyBandwidth, gemvBandwidth } from './bench.js';
export { loadLibraries } from './libraries.js';
