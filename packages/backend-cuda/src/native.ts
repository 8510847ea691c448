/**
 * The addon (native/, built to dist/tp_cuda.node) and the kernels' fatbin (dist/kernels.fatbin), found
 * and loaded lazily: importing this package never loads either, and a missing or broken one is a
 * reason `probe()` reports, never a crash.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A device pointer or a driver handle (exact as a number: every address is below 2^53). */
export type Handle = number;

export interface LibraryState {
  tried: boolean;
  loaded: boolean;
  candidate?: string;
  path?: string;
  version?: number;
  /** The driver's cuInit status (0 = initialised). */
  initStatus?: number;
  attempts: Array<{ candidate: string; error?: string }>;
}

export interface NativeDevice {
  index: number;
  name: string;
  memoryBytes: number;
  major: number;
  minor: number;
  multiprocessors: number;
  l2Bytes: number;
  sharedOptin: number;
  memoryPools: boolean;
  pciBusId: string;
}

export interface NativeContext {
  alloc(bytes: number): Handle;
  free(ptr: Handle): void;
  upload(ptr: Handle, bytes: Uint8Array, byteOffset?: number): void;
  download(ptr: Handle, bytes: number): Promise<ArrayBuffer>;
  copy(dst: Handle, src: Handle, bytes: number): void;
  fill32(ptr: Handle, bits: number, count: number): void;
  loadModule(image: Uint8Array): Handle;
  getFunction(module: Handle, name: string): Handle;
  setMaxDynamicShared(fn: Handle, bytes: number): void;
  launch(fn: Handle, gx: number, gy: number, gz: number, bx: number, by: number, bz: number, sharedBytes: number, args: Uint8Array): void;
  gemm(
    transA: number,
    transB: number,
    m: number,
    n: number,
    k: number,
    a: Handle,
    aType: number,
    lda: number,
    b: Handle,
    bType: number,
    ldb: number,
    d: Handle,
    dType: number,
    ldd: number,
    alpha: number,
    beta: number,
  ): void;
  eventCreate(): Handle;
  eventRecord(event: Handle): void;
  waitEvent(event: Handle): void;
  eventDestroy(event: Handle): void;
  notify(): Promise<void>;
  query(): number;
  synchronize(): void;
  enablePeer(device: number): void;
  memInfo(): { free: number; total: number };
  dispose(): void;
}

export interface NativeComm {
  status(): number;
  allReduce(ptr: Handle, count: number): number;
  allGather(send: Handle, recv: Handle, count: number): number;
  broadcast(ptr: Handle, count: number, root: number): number;
  lastError(): string;
  abort(): void;
  destroy(): void;
}

export interface NativeMath {
  bf16ToF32(x: Uint16Array): Float32Array;
  f16ToF32(x: Uint16Array): Float32Array;
  f32ToBf16(x: Float32Array): Uint16Array;
  f32ToF16(x: Float32Array): Uint16Array;
  activation(x: Float32Array, kind: number): Float32Array;
  softcap(x: Float32Array, cap: number): Float32Array;
  rotary(x: Float32Array, positions: Int32Array, invFreq: Float32Array, heads: number, headDim: number, rotaryDim: number, interleaved: number, scale: number): Float32Array;
  sinusoidal(positions: Int32Array, dim: number, kind: number): Float32Array;
  norm(x: Float32Array, width: number, layer: number, eps: number, plusOne: number, weight: Float32Array | null, bias: Float32Array | null): Float32Array;
  attention(args: Record<string, unknown>): Float32Array;
  expectationWeight(qHatDotK: Float32Array, keySquares: Float32Array, bits: number): Float32Array;
  route(logits: Float32Array, rows: number, experts: number, topK: number, normalize: number): { experts: Int32Array; weights: Float32Array };
  topk(x: Float32Array, cols: number, k: number): { values: Float32Array; indices: Int32Array };
}

export interface Native {
  abi: number;
  load(library: string, candidates: string[]): LibraryState;
  state(library: string): LibraryState;
  dlopenCheck(path: string): string | null;
  errorName(library: string, status: number): { name?: string; text?: string };
  devices(): NativeDevice[];
  ncclUniqueId(): Uint8Array;
  Context: new (device: number, options?: { uploadStagingBytes?: number; downloadStagingBytes?: number; workspaceBytes?: number }) => NativeContext;
  NcclComm: new (context: NativeContext, id: Uint8Array, nranks: number, rank: number) => NativeComm;
  math: NativeMath;
}

/** dist/ when running built; the sources' sibling dist/ when running from src/ (tests). */
function distFile(name: string): string {
  const here = new URL('.', import.meta.url);
  const built = fileURLToPath(new URL(name, here));
  if (existsSync(built)) return built;
  return fileURLToPath(new URL(`../dist/${name}`, here));
}

export interface Artifact<T> {
  value?: T;
  path: string;
  /** Why it is missing or did not load. */
  error?: string;
}

let addon: Artifact<Native> | undefined;
let fatbin: Artifact<Uint8Array> | undefined;

/** What the build recorded about the addon and kernels (dist/build-info.json), when present. */
export function buildInfo(): Record<string, { built: boolean; reason?: string; [k: string]: unknown }> | undefined {
  try {
    return JSON.parse(readFileSync(distFile('build-info.json'), 'utf8')) as Record<string, { built: boolean; reason?: string }>;
  } catch {
    return undefined;
  }
}

function missingReason(what: 'addon' | 'kernels', file: string): string {
  const info = buildInfo()?.[what];
  const why = info && !info.built && info.reason ? `: the build skipped it (${info.reason})` : ' (run pnpm build)';
  return `${file} does not exist${why}`;
}

/** The addon, loaded once per thread (TP_CUDA_ADDON overrides its path). */
export function loadNative(): Artifact<Native> {
  if (addon !== undefined) return addon;
  const file = process.env['TP_CUDA_ADDON'] ?? distFile('tp_cuda.node');
  if (!existsSync(file)) return (addon = { path: file, error: missingReason('addon', file) });
  try {
    const value = createRequire(import.meta.url)(file) as Native;
    addon = { path: file, value };
  } catch (error) {
    addon = { path: file, error: `${file} did not load: ${(error as Error).message}` };
  }
  return addon;
}

/** The kernels' fatbin, read once per thread (TP_CUDA_FATBIN overrides its path). */
export function loadFatbin(): Artifact<Uint8Array> {
  if (fatbin !== undefined) return fatbin;
  const file = process.env['TP_CUDA_FATBIN'] ?? distFile('kernels.fatbin');
  if (!existsSync(file)) return (fatbin = { path: file, error: missingReason('kernels', file) });
  try {
    fatbin = { path: file, value: new Uint8Array(readFileSync(file)) };
  } catch (error) {
    fatbin = { path: file, error: `${file} could not be read: ${(error as Error).message}` };
  }
  return fatbin;
}
