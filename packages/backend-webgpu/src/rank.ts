/**
 * A WebGPU rank: one GPUDevice, its tensors, its kernels. Each method checks its arguments on the host
 * (shapes, dtypes) and records one or more dispatches; nothing waits for the GPU except `download`, the
 * collectives, the outermost `endStep` and `dispose` (a nested step's end releases its buffers to the
 * pool at once: see endScope). No Node-only import: the device is opened by the caller.
 */
import {
  TpError,
  type Activation,
  type AttentionSpec,
  type AttentionStep,
  type DeviceDtype,
  type DeviceTensor,
  type ExpertRows,
  type HostCollectiveInit,
  type HostTensor,
  type KvCache,
  type NormSpec,
  type Rank,
  type RankInit,
  type RotarySpec,
  type Routing,
  type StorageDtype,
} from '@tp/core';
import { GpuCollective, type Staging } from './collective.js';
import { deviceBytes, hostValues } from './convert.js';
import { adapterName, type OpenedDevice } from './device.js';
import { grid, type KernelDef } from './kernel.js';
import { attentionKernel, attentionMergeKernel, type AttentionVariant, MAX_HEAD_DIM, MAX_VALUE_DIM, optionalInputs, type OptionalInput } from './kernels/attention.js';
import { attentionSplits, GPU_SPLIT, SOFTWARE_SPLIT } from './kernels/attention-split.js';
import { addKernel, ELEMENTWISE_WG, gatedKernel, UNARY, unaryKernel } from './kernels/elementwise.js';
import { copyColumnsKernel, embeddingKernel, gatherRowsKernel, iotaKernel, kvWriteKernel, LAYOUT_WG, reorderBatchKernel, scatterAddRowsKernel } from './kernels/layout.js';
import { GEMM_TILE, gemmKernel, GEMV_BLOCK, GEMV_MAX_ROWS, GEMV_SUBGROUP_ROWS, gemvKernel, gemvSubgroupKernel } from './kernels/linear.js';
import { normKernel } from './kernels/norm.js';
import { rotaryKernel, sinusoidalKernel } from './kernels/positions.js';
import { argmaxKernel, expertWeightsKernel, routeKernel, topkKernel } from './kernels/select.js';
import { Memory } from './memory.js';
import { Pipelines } from './pipelines.js';
import { Recorder } from './recorder.js';
import { GpuKvCache, GpuTensor } from './tensor.js';
import { createGuardBuffer, GpuGuard } from './guard.js';
import { ACTIVATION_CODES } from './wgsl/math.js';

/**
 * KV-cache dtypes this backend implements, fastest first: attention over a 16-bit cache reads half the
 * bytes, and on lavapipe it ran 15–20% faster than over f32, f16 and bf16 alike (f16 ahead by a few
 * percent in most cases; bench/attention-split.mjs --kv, results in bench/results/). The session's
 * default stays f32 (kvDtype), which rounds nothing.
 */
export const KV_DTYPES: readonly StorageDtype[] = ['f16', 'bf16', 'f32'];
/** i32 uploads up to this many elements keep a host copy for enqueue-time checks (see GpuTensor). */
const HOST_INTS_MAX = 4096;
/** A KV cache grows by at least half, in chunks of this many slots. */
const KV_CHUNK = 64;
/**
 * Whether decode GEMVs use subgroup reductions by default where the device has them: on a GPU, yes
 * (untimed: no GPU was available); on lavapipe the subgroup kernel was 6–42% slower than one row per
 * invocation (bench/gemv.mjs), so a software adapter keeps that.
 */
const SUBGROUP_GEMV_BY_DEFAULT = (software: boolean): boolean => !software;
/** The kernel choices backendOptions may force (tests and benchmarks). */
interface KernelOptions {
  /** true or false overrides whether decode GEMVs use subgroup reductions (where the device has them). */
  gemvSubgroups: boolean | undefined;
  /** Split every attention call's keys into pieces of this many (the flash-decoding path). */
  attentionSplitKeys: number | undefined;
}

function kernelOptions(options: Readonly<Record<string, unknown>>): KernelOptions {
  const subgroups = options['gemvSubgroups'];
  if (subgroups !== undefined && typeof subgroups !== 'boolean') {
    throw new TpError('invalid-argument', `backendOptions.gemvSubgroups must be true or false, not ${JSON.stringify(subgroups)}`);
  }
  const split = options['attentionSplitKeys'];
  if (split !== undefined && !(typeof split === 'number' && Number.isInteger(split) && split >= 1)) {
    throw new TpError('invalid-argument', `backendOptions.attentionSplitKeys must be a whole number of keys ≥ 1, not ${JSON.stringify(split)}`);
  }
  return { gemvSubgroups: subgroups, attentionSplitKeys: split as number | undefined };
}

/** How long dispose waits for the device's work and its loss notice before giving up. */
const DISPOSE_WAIT_MS = 2000;

/** The rank's device is gone (driver reset, GPU removed, out of memory): the request fails with this rank's name. */
export class DeviceLostError extends TpError {
  readonly rank: number;

  constructor(rank: number, message: string) {
    super('rank-failed', message);
    this.name = 'DeviceLostError';
    this.rank = rank;
  }
}

const fail = (op: string, detail: string): never => {
  throw new TpError('kernel-invalid', `${op}: ${detail}`);
};
const shapeText = (t: DeviceTensor) => `[${t.shape.join(', ')}]`;

/** A relative-position table as the attention kernel reads it: head h's row r at r·stride + h·head. */
interface RelativeTable {
  tensor: GpuTensor;
  rows: number;
  stride: number;
  head: number;
}

interface RelativeInputs {
  index: GpuTensor;
  keys: RelativeTable | undefined;
  queries: RelativeTable | undefined;
  values: RelativeTable | undefined;
}

export class WebGpuRank implements Rank, Staging {
  readonly backend = 'webgpu';
  readonly rank: number;
  readonly world: number;
  readonly collective: GpuCollective;
  readonly device: GPUDevice;
  readonly opened: OpenedDevice;
  private readonly memory: Memory;
  private readonly recorder: Recorder;
  private readonly pipelines: Pipelines;
  /** An always-bound stand-in for optional inputs (no bias, no ALiBi…): kernels never read it. */
  private readonly dummy: GPUBuffer;
  /** GEMV lanes per output row (see kernels/linear.ts). */
  private readonly gemvLanes: number;
  /** Decode GEMVs reduce with subgroup operations (the device has `subgroups`; see linear.ts). */
  private readonly gemvSubgroups: boolean;
  /** Storage buffers one shader may bind (backendOptions.maxStorageBuffers lowers it, for tests). */
  private readonly maxStorageBuffers: number;
  /** Test hook (backendOptions.attentionSplitKeys): split attention's keys into pieces of this many. */
  private readonly attentionSplitKeys: number | undefined;
  private readonly live = new Set<GpuTensor>();
  /**
   * The open steps, outermost first, each with the tensors made while it was the innermost: a nested
   * step (a scope) releases its own when it ends, except the one it keeps, which moves to the scope below.
   */
  private scopes: GpuTensor[][] = [];
  private readonly caches = new Set<GpuKvCache>();
  private readonly constants = new Map<string, GpuTensor>();
  private deviceError: string | undefined;
  private lostReason: string | undefined;
  private disposed = false;
  private steps = 0;
  /** Test hook (backendOptions.loseDeviceAfterSteps): destroy the device as if it were lost. */
  private readonly loseDeviceAfterSteps: number | undefined;

  private readonly guard: GpuGuard;

  /** The section counters in the communicator (see guard.ts); a private set without. */
  static guardFor(init: RankInit): GpuGuard {
    const shared = init.communicator['guard'];
    return new GpuGuard(shared instanceof SharedArrayBuffer ? shared : createGuardBuffer(init.world), init.rank);
  }

  constructor(opened: OpenedDevice, init: RankInit, guard: GpuGuard = WebGpuRank.guardFor(init)) {
    let tuning: KernelOptions;
    try {
      tuning = kernelOptions(init.options);
    } catch (error) {
      opened.device.destroy(); // nothing else holds it yet
      throw error;
    }
    const comm = init.communicator as HostCollectiveInit;
    if (comm.kind !== 'host') fail('createRank', `the WebGPU backend communicates through host memory, not "${comm.kind}"`);
    this.rank = init.rank;
    this.world = init.world;
    this.opened = opened;
    this.device = opened.device;
    // backendOptions.maxBindingBytes (tests): pretend bindings are smaller, to split small weights.
    const bindingOption = init.options['maxBindingBytes'];
    const maxBinding = Math.min(opened.device.limits.maxStorageBufferBindingSize, typeof bindingOption === 'number' ? bindingOption : Infinity);
    this.guard = guard;
    this.memory = new Memory(this.device, maxBinding, guard);
    this.recorder = new Recorder(this.device, guard);
    this.pipelines = new Pipelines(this.device);
    this.dummy = this.memory.alloc(16, 'unused input').buffer;
    this.gemvLanes = opened.adapter.fallback ? 1 : 32;
    this.gemvSubgroups = opened.subgroups && (tuning.gemvSubgroups ?? SUBGROUP_GEMV_BY_DEFAULT(opened.adapter.fallback));
    // backendOptions.maxStorageBuffers (tests): pretend the adapter binds fewer, to pack attention's inputs.
    const storageOption = init.options['maxStorageBuffers'];
    this.maxStorageBuffers = Math.min(opened.device.limits.maxStorageBuffersPerShaderStage, typeof storageOption === 'number' ? storageOption : Infinity);
    this.attentionSplitKeys = tuning.attentionSplitKeys;
    this.collective = new GpuCollective(comm, init.rank, init.world, this, typeof init.options['profileDir'] === 'string');
    const lose = init.options['loseDeviceAfterSteps'];
    this.loseDeviceAfterSteps = typeof lose === 'number' ? lose : undefined;
    this.device.addEventListener('uncapturederror', (event) => {
      const message = (event as GPUUncapturedErrorEvent).error.message;
      if (!this.pipelines.claim(message)) this.deviceError ??= message;
    });
    void this.device.lost.then((info) => {
      if (!this.disposed) this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  // ───────────────────────────── memory and steps ─────────────────────────────

  private tensor(shape: readonly number[], dtype: DeviceDtype = 'f32', longLived = false): GpuTensor {
    const numel = shape.reduce((a, b) => a * b, 1);
    const bytes = numel * (dtype === 'f16' || dtype === 'bf16' ? 2 : 4);
    const scope = longLived ? undefined : this.scopes[this.scopes.length - 1];
    const t = new GpuTensor(shape, dtype, [this.memory.alloc(bytes, `${dtype} [${shape.join(', ')}]`)], scope !== undefined);
    if (scope !== undefined) scope.push(t);
    else this.live.add(t);
    return t;
  }

  private use(t: DeviceTensor | undefined, op: string): GpuTensor {
    const x = t as GpuTensor;
    if (!(x instanceof GpuTensor)) fail(op, 'an argument is not a tensor of this backend');
    if (x.released) fail(op, `a ${x.dtype} ${shapeText(x)} tensor was used after it was freed (or after the step or scope that made it ended)`);
    return x;
  }

  beginStep(): void {
    this.scopes.push([]);
  }

  async endStep(keep?: DeviceTensor): Promise<void> {
    // Both refusals come before anything changes: the step stays open.
    if (this.scopes.length === 0) fail('endStep', 'no step is open');
    if (keep !== undefined && this.scopes.length === 1) {
      throw new TpError('invalid-argument', 'endStep(keep): the outermost step has no enclosing step to keep a tensor for; download what you need, then call endStep() without a tensor');
    }
    const kept = keep === undefined ? undefined : this.use(keep, 'endStep');
    const tensors = this.scopes.pop()!;
    if (this.scopes.length > 0) {
      this.endScope(tensors, kept);
      return;
    }
    if (++this.steps === this.loseDeviceAfterSteps) this.device.destroy();
    // Another rank failed: this thread is about to be terminated, so wait for nothing (the buffers
    // stay allocated until dispose, as the GPU may still use them).
    if (this.guard.failed !== undefined) return;
    try {
      await this.recorder.drain();
      await this.check();
    } finally {
      // The device has finished the step: its buffers go back to the pool.
      for (const t of tensors) this.release(t);
      if (!this.recorder.pending) this.memory.drained();
    }
  }

  /**
   * A nested step ends: its tensors go back to the pool at once, without waiting for the device.
   * Work already recorded that reads them runs before anything recorded later that reuses their
   * buffers, because one queue runs everything in order (memory.ts says why each kind of reuse is
   * safe). The kept tensor, if this scope made it, now belongs to the enclosing step, untouched; one
   * made outside this scope already outlives it.
   */
  private endScope(tensors: readonly GpuTensor[], kept: GpuTensor | undefined): void {
    const enclosing = this.scopes[this.scopes.length - 1]!;
    for (const t of tensors) {
      if (t === kept) enclosing.push(t);
      else this.release(t);
    }
  }

  memoryBytes(): number {
    return this.memory.bytes;
  }

  /** Counters for tests and the benchmark: work recorded and submitted, pipelines, collective time. */
  stats(): { dispatches: number; submits: number; reads: number; pipelines: number; collectives: GpuCollective['times'] } {
    return { dispatches: this.recorder.dispatches, submits: this.recorder.submits, reads: this.recorder.reads, pipelines: this.pipelines.size, collectives: { ...this.collective.times } };
  }

  upload(host: HostTensor, as: DeviceDtype = host.dtype): DeviceTensor {
    const n = host.shape.reduce((a, b) => a * b, 1);
    const width = host.dtype === 'f16' || host.dtype === 'bf16' ? 2 : 4;
    if (host.bytes.byteLength !== n * width) fail('upload', `${host.bytes.byteLength} bytes do not hold a ${host.dtype} [${host.shape.join(', ')}] tensor`);
    if ((host.dtype === 'i32') !== (as === 'i32')) fail('upload', `cannot store ${host.dtype} data as ${as}`);
    const deviceWidth = as === 'f16' || as === 'bf16' ? 2 : 4;
    if (n * deviceWidth + 16 > this.memory.maxBinding && host.shape.length >= 2) return this.uploadSplit(host, as);
    const bytes = deviceBytes(host.bytes, host.dtype, as, n);
    const t = this.tensor(host.shape, as);
    this.write(t.buffer, bytes);
    if (as === 'i32' && n <= HOST_INTS_MAX) t.hostInts = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 4));
    return t;
  }

  /**
   * A tensor larger than one storage binding (an embedding table or LM head of a large vocabulary on
   * a small-binding adapter): blocks of whole rows, each its own buffer. Long-lived, as weights are.
   */
  private uploadSplit(host: HostTensor, as: DeviceDtype): GpuTensor {
    const cols = host.shape[host.shape.length - 1]!;
    const rows = host.shape.reduce((a, b) => a * b, 1) / cols;
    const rowBytes = cols * (as === 'f16' || as === 'bf16' ? 2 : 4);
    const partRows = Math.floor((this.memory.maxBinding - 16) / rowBytes);
    if (partRows < 1) fail('upload', `one row of ${cols} ${as} values is larger than a storage binding (${this.memory.maxBinding} bytes)`);
    const hostRowBytes = cols * (host.dtype === 'f16' || host.dtype === 'bf16' ? 2 : 4);
    const blocks = [];
    for (let r0 = 0; r0 < rows; r0 += partRows) {
      const r1 = Math.min(rows, r0 + partRows);
      const block = this.memory.alloc((r1 - r0) * rowBytes, `${as} rows ${r0}-${r1 - 1} of [${host.shape.join(', ')}]`);
      this.write(block.buffer, deviceBytes(host.bytes.subarray(r0 * hostRowBytes, r1 * hostRowBytes), host.dtype, as, (r1 - r0) * cols));
      blocks.push(block);
    }
    const t = new GpuTensor(host.shape, as, blocks, false, partRows);
    this.live.add(t);
    return t;
  }

  /**
   * A host write into a buffer. `writeBuffer` takes effect on the queue before any command not yet
   * submitted, so recorded work that uses this buffer (a freed tensor's last readers) is submitted first.
   */
  private write(buffer: GPUBuffer, bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.recorder.submit();
    this.guard.call('an upload', () => this.device.queue.writeBuffer(buffer, 0, bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }

  async download(t: DeviceTensor): Promise<Float32Array | Int32Array> {
    const x = this.use(t, 'download');
    const width = x.byteLength / Math.max(1, x.numel);
    const parts = x.parts;
    let bytes: Uint8Array;
    try {
      if (parts.length === 1) bytes = await this.recorder.read(x.buffer, x.byteLength);
      else {
        bytes = new Uint8Array(x.byteLength);
        const rowBytes = x.cols * width;
        for (const part of parts) bytes.set(await this.recorder.read(part.buffer, part.rows * rowBytes), part.rowStart * rowBytes);
      }
    } catch (error) {
      throw await this.readFailure(error);
    }
    await this.check();
    return hostValues(bytes, x.dtype, x.numel);
  }

  free(t: DeviceTensor): void {
    const x = this.use(t, 'free');
    if (x.temporary) return; // released with its step
    this.live.delete(x);
    this.release(x);
  }

  private release(t: GpuTensor): void {
    if (t.released) return;
    t.released = true;
    for (const block of t.blocks) this.memory.release(block);
  }

  /**
   * Why a readback failed: a lost device rejects the map before its loss notice arrives, so wait
   * briefly for the notice and report the loss; anything else as it is.
   */
  private async readFailure(error: unknown): Promise<unknown> {
    if (TpError.isInstance(error)) return error;
    await Promise.race([this.guard.track(this.device.lost), new Promise((resolve) => setTimeout(resolve, 250))]);
    try {
      await this.check();
    } catch (reported) {
      return reported;
    }
    return new TpError('internal', `${adapterName(this.opened.adapter)}: a readback failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }

  /** Device errors since the last check, compile errors of new kernels, a lost device: as TpErrors. */
  private async check(): Promise<void> {
    this.pipelines.check();
    const where = adapterName(this.opened.adapter);
    if (this.lostReason !== undefined) throw new DeviceLostError(this.rank, `${where}: the WebGPU device was lost (${this.lostReason})`);
    if (this.deviceError !== undefined) {
      const message = this.deviceError;
      this.deviceError = undefined;
      throw new TpError('internal', `${where}: WebGPU error: ${message}`);
    }
  }

  // Staging for the collectives.
  async readF32(t: GpuTensor): Promise<Float32Array> {
    if (t.dtype !== 'f32') fail('collective', `collectives take f32 tensors, not ${t.dtype}`);
    return (await this.download(t)) as Float32Array;
  }

  writeF32(t: GpuTensor, values: Float32Array): void {
    this.write(t.buffer, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  newTensor(shape: readonly number[]): GpuTensor {
    return this.tensor(shape);
  }

  drain(): Promise<void> {
    return this.recorder.drain();
  }

  // ───────────────────────────── dispatch ─────────────────────────────

  private run(def: KernelDef, buffers: readonly GPUBuffer[], params: Readonly<Record<string, number>>, workgroups: readonly [number, number?]): void {
    if (this.disposed) fail(def.name, 'the rank has been disposed');
    this.guard.call(def.name, () => this.recorder.dispatch(this.pipelines.get(def), buffers, params, workgroups));
  }

  /** Workgroups for `n` elements at `perGroup` per workgroup. */
  private static over(n: number, perGroup: number): [number, number] {
    return grid(Math.ceil(n / perGroup));
  }

  private get f16(): boolean {
    return this.opened.f16;
  }

  // ───────────────────────────── kernels ─────────────────────────────

  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = this.use(x, 'linear');
    const b = this.use(w, 'linear');
    const c = bias === undefined ? undefined : this.use(bias, 'linear');
    if (b.shape.length !== 2) fail('linear', `the weight must be 2-D, not ${shapeText(b)}`);
    const [N, K] = b.shape as [number, number];
    if (a.dtype !== 'f32') fail('linear', `the input must be f32, not ${a.dtype}`);
    if (b.dtype === 'i32') fail('linear', 'weights cannot be i32');
    if (a.cols !== K) fail('linear', `input ${shapeText(a)} has ${a.cols} features, weight [${N}, ${K}] expects ${K}`);
    if (c !== undefined && (c.numel !== N || c.dtype === 'i32')) fail('linear', `bias ${shapeText(c)} (${c.dtype}) does not fit ${N} outputs`);
    const M = a.rows;
    const y = this.tensor([M, N]);
    const biasDtype = (c?.dtype ?? 'f32') as StorageDtype;
    const gemv = M <= GEMV_MAX_ROWS || this.opened.adapter.fallback;
    const lanes = this.gemvLanes;
    const block = M === 1 ? 1 : GEMV_BLOCK;
    // A weight split over several buffers is multiplied block by block into its columns of y.
    for (const part of b.parts) {
      const buffers = [a.buffer, part.buffer, c?.buffer ?? this.dummy, y.buffer];
      const params = { M, K, N: part.rows, yCols: N, nOffset: part.rowStart, hasBias: c === undefined ? 0 : 1 };
      if (gemv && this.gemvSubgroups && M <= GEMV_MAX_ROWS) {
        const workgroups = Math.ceil(part.rows / GEMV_SUBGROUP_ROWS) * Math.ceil(M / block);
        this.run(gemvSubgroupKernel(b.dtype as StorageDtype, biasDtype, this.f16, K % 4 === 0, block), buffers, params, grid(workgroups));
      } else if (gemv) {
        const workgroups = Math.ceil(part.rows / (64 / lanes)) * Math.ceil(M / block);
        this.run(gemvKernel(b.dtype as StorageDtype, biasDtype, this.f16, K % 4 === 0, lanes, block), buffers, params, grid(workgroups));
      } else {
        this.run(gemmKernel(b.dtype as StorageDtype, biasDtype, this.f16), buffers, params, [Math.ceil(part.rows / GEMM_TILE), Math.ceil(M / GEMM_TILE)]);
      }
    }
    return y;
  }

  embedding(table: DeviceTensor, ids: DeviceTensor, rowOffset = 0, scale = 1): DeviceTensor {
    const t = this.use(table, 'embedding');
    const i = this.use(ids, 'embedding');
    if (t.shape.length !== 2 || t.dtype === 'i32') fail('embedding', `the table must be a 2-D float tensor, not ${t.dtype} ${shapeText(t)}`);
    if (i.dtype !== 'i32') fail('embedding', `ids must be i32, not ${i.dtype}`);
    const dim = t.shape[1]!;
    const y = this.tensor([i.numel, dim]);
    // A split table: the first block writes every row (zeros where the id is elsewhere), the others
    // only the rows they hold.
    for (const [p, part] of t.parts.entries()) {
      const params = { n: i.numel, dim, tableRows: part.rows, rowOffset: rowOffset + part.rowStart, scale, onlyHeld: p === 0 ? 0 : 1 };
      this.run(embeddingKernel(t.dtype as StorageDtype, this.f16), [part.buffer, i.buffer, y.buffer], params, WebGpuRank.over(i.numel * dim, LAYOUT_WG));
    }
    return y;
  }

  sinusoidal(positions: DeviceTensor, dim: number, kind: 'fairseq' | 'marian'): DeviceTensor {
    const pos = this.use(positions, 'sinusoidal');
    if (pos.dtype !== 'i32') fail('sinusoidal', `positions must be i32, not ${pos.dtype}`);
    if (dim % 2 !== 0 || dim < 4) fail('sinusoidal', `dim must be even and at least 4, not ${dim}`);
    const half = dim / 2;
    const freq = this.constant(`sinusoidal ${kind} ${dim}`, () => {
      // [hi | lo] of each frequency: fairseq's are f32 (lo = 0), marian's the f64 value split in two.
      const table = new Float32Array(dim);
      for (let k = 0; k < half; k++) {
        const f = kind === 'fairseq' ? Math.fround(Math.exp((-Math.log(10000) * k) / (half - 1))) : 10000 ** ((-2 * k) / dim);
        table[k] = f;
        table[half + k] = kind === 'fairseq' ? 0 : f - Math.fround(f);
      }
      return table;
    });
    const y = this.tensor([pos.numel, dim]);
    this.run(sinusoidalKernel(), [pos.buffer, freq.buffer, y.buffer], { n: pos.numel, half, exact: kind === 'marian' ? 1 : 0 }, WebGpuRank.over(pos.numel * half, 256));
    return y;
  }

  /** A small f32 table made once per rank (long-lived, freed with the rank). */
  private constant(key: string, make: () => Float32Array): GpuTensor {
    let t = this.constants.get(key);
    if (t === undefined) {
      const values = make();
      t = this.tensor([values.length], 'f32', true);
      this.write(t.buffer, new Uint8Array(values.buffer));
      this.constants.set(key, t);
    }
    return t;
  }

  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    return this.groupNorm(x, this.use(x, 'norm').cols, spec, weight, bias);
  }

  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = this.use(x, 'norm');
    const w = weight === undefined ? undefined : this.use(weight, 'norm');
    const b = bias === undefined ? undefined : this.use(bias, 'norm');
    if (a.dtype !== 'f32') fail('norm', `the input must be f32, not ${a.dtype}`);
    if (!(width > 0) || a.numel % width !== 0) fail('norm', `${a.numel} elements do not split into groups of ${width}`);
    if (w !== undefined && (w.numel !== width || w.dtype === 'i32')) fail('norm', `weight ${shapeText(w)} does not fit groups of ${width}`);
    if (b !== undefined && (b.numel !== width || b.dtype === 'i32')) fail('norm', `bias ${shapeText(b)} does not fit groups of ${width}`);
    const y = this.tensor(a.shape);
    const groups = a.numel / width;
    this.run(
      normKernel((w?.dtype ?? 'f32') as StorageDtype, (b?.dtype ?? 'f32') as StorageDtype, this.f16),
      [a.buffer, w?.buffer ?? this.dummy, b?.buffer ?? this.dummy, y.buffer],
      { groups, width, eps: spec.eps, layer: spec.kind === 'layer' ? 1 : 0, hasWeight: w ? 1 : 0, plusOne: spec.plusOne ? 1 : 0, hasBias: b ? 1 : 0 },
      grid(groups),
    );
    return y;
  }

  /** The repeat length of b over a: all of a, or one row of it. */
  private broadcastLength(op: string, a: GpuTensor, b: GpuTensor): number {
    if (a.dtype !== 'f32' || b.dtype !== 'f32') fail(op, `operands must be f32, not ${a.dtype} and ${b.dtype}`);
    if (b.numel === a.numel) return a.numel;
    // One row broadcast over a's rows: [cols], or [1, cols] (BART's final_logits_bias).
    if ((b.shape.length === 1 || (b.shape.length === 2 && b.shape[0] === 1)) && b.numel === a.cols) return b.numel;
    return fail(op, `${shapeText(b)} does not broadcast onto ${shapeText(a)}`);
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const x = this.use(a, 'add');
    const v = this.use(b, 'add');
    const bn = this.broadcastLength('add', x, v);
    const y = this.tensor(x.shape);
    this.run(addKernel(false), [x.buffer, v.buffer, y.buffer], { n: x.numel, bn }, WebGpuRank.over(x.numel, ELEMENTWISE_WG));
    return y;
  }

  addInPlace(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const x = this.use(a, 'addInPlace');
    const v = this.use(b, 'addInPlace');
    const bn = this.broadcastLength('addInPlace', x, v);
    // One buffer cannot be bound writable and readable in one dispatch: a + a is a scale by 2.
    if (x.buffer === v.buffer) this.unary(x, x, UNARY.scale, 2);
    else this.run(addKernel(true), [x.buffer, v.buffer], { n: x.numel, bn }, WebGpuRank.over(x.numel, ELEMENTWISE_WG));
    return a;
  }

  private unary(x: GpuTensor, y: GpuTensor, op: number, s: number): void {
    const inPlace = x === y;
    this.run(unaryKernel(inPlace), inPlace ? [x.buffer] : [x.buffer, y.buffer], { n: x.numel, op, s }, WebGpuRank.over(x.numel, ELEMENTWISE_WG));
  }

  private mapped(x: DeviceTensor, op: string, code: number, s = 0): DeviceTensor {
    const a = this.use(x, op);
    if (a.dtype !== 'f32') fail(op, `the input must be f32, not ${a.dtype}`);
    const y = this.tensor(a.shape);
    this.unary(a, y, code, s);
    return y;
  }

  scale(x: DeviceTensor, s: number): DeviceTensor {
    return this.mapped(x, 'scale', UNARY.scale, s);
  }

  clamp(x: DeviceTensor, limit: number): DeviceTensor {
    const a = this.use(x, 'clamp');
    if (a.dtype !== 'f32') fail('clamp', `the input must be f32, not ${a.dtype}`);
    this.unary(a, a, UNARY.clamp, limit);
    return x;
  }

  activation(x: DeviceTensor, kind: Activation): DeviceTensor {
    return this.mapped(x, 'activation', this.activationCode(kind));
  }

  sigmoid(x: DeviceTensor): DeviceTensor {
    return this.mapped(x, 'sigmoid', UNARY.sigmoid);
  }

  private activationCode(kind: Activation): number {
    const code = ACTIVATION_CODES[kind];
    if (code === undefined) fail('activation', `unknown activation "${String(kind)}"`);
    return code;
  }

  gated(gate: DeviceTensor, up: DeviceTensor | undefined, kind: Activation): DeviceTensor {
    const g = this.use(gate, 'gated');
    const act = this.activationCode(kind);
    if (g.dtype !== 'f32') fail('gated', `the gate must be f32, not ${g.dtype}`);
    if (up === undefined) {
      if (g.cols % 2 !== 0) fail('gated', `a [gate; up] tensor needs an even width, got ${g.cols}`);
      const half = g.cols / 2;
      const y = this.tensor([g.rows, half]);
      this.run(gatedKernel(), [g.buffer, g.buffer, y.buffer], { rows: g.rows, cols: half, gStride: g.cols, uStride: g.cols, uOffset: half, act }, WebGpuRank.over(g.rows * half, ELEMENTWISE_WG));
      return y;
    }
    const u = this.use(up, 'gated');
    if (u.numel !== g.numel || u.dtype !== 'f32') fail('gated', `gate ${shapeText(g)} and up ${shapeText(u)} differ`);
    const y = this.tensor(g.shape);
    this.run(gatedKernel(), [g.buffer, u.buffer, y.buffer], { rows: g.rows, cols: g.cols, gStride: g.cols, uStride: g.cols, uOffset: 0, act }, WebGpuRank.over(g.numel, ELEMENTWISE_WG));
    return y;
  }

  sliceColumns(x: DeviceTensor, start: number, end: number): DeviceTensor {
    return this.gatherColumns(x, [[start, end]]);
  }

  gatherColumns(x: DeviceTensor, ranges: ReadonlyArray<readonly [number, number]>): DeviceTensor {
    const a = this.use(x, 'gatherColumns');
    if (a.dtype !== 'f32') fail('gatherColumns', `the input must be f32, not ${a.dtype}`);
    for (const [s, e] of ranges) if (!(Number.isInteger(s) && Number.isInteger(e) && s >= 0 && e <= a.cols && s <= e)) fail('gatherColumns', `[${s}, ${e}) is outside ${a.cols} columns`);
    const width = ranges.reduce((n, [s, e]) => n + (e - s), 0);
    const y = this.tensor(a.shape.length === 1 ? [width] : [...a.shape.slice(0, -1), width]);
    let at = 0;
    for (const [s, e] of ranges) {
      if (e > s) {
        const params = { rows: a.rows, width: e - s, srcCols: a.cols, srcStart: s, dstCols: width, dstStart: at };
        this.run(copyColumnsKernel(), [a.buffer, y.buffer], params, WebGpuRank.over(a.rows * (e - s), LAYOUT_WG));
      }
      at += e - s;
    }
    return y;
  }

  gatherRows(x: DeviceTensor, rows: DeviceTensor): DeviceTensor {
    const a = this.use(x, 'gatherRows');
    const r = this.use(rows, 'gatherRows');
    if (a.dtype !== 'f32' || r.dtype !== 'i32') fail('gatherRows', `takes f32 rows and i32 indices, not ${a.dtype} and ${r.dtype}`);
    const y = this.tensor([r.numel, a.cols]);
    this.run(gatherRowsKernel(), [a.buffer, r.buffer, y.buffer], { n: r.numel, cols: a.cols, xRows: a.rows }, WebGpuRank.over(r.numel * a.cols, LAYOUT_WG));
    return y;
  }

  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: DeviceTensor, weights: DeviceTensor): DeviceTensor {
    const t = this.use(target, 'scatterAddRows');
    const s = this.use(src, 'scatterAddRows');
    const r = this.use(rows, 'scatterAddRows');
    const w = this.use(weights, 'scatterAddRows');
    if (s.cols !== t.cols) fail('scatterAddRows', `source width ${s.cols} differs from the target's ${t.cols}`);
    if (r.dtype !== 'i32' || w.dtype !== 'f32' || r.numel !== s.rows || w.numel !== s.rows) fail('scatterAddRows', `rows ${shapeText(r)} (i32) and weights ${shapeText(w)} (f32) must have one entry per source row (${s.rows})`);
    if (s.buffer === t.buffer) fail('scatterAddRows', 'the source cannot be the target');
    this.run(scatterAddRowsKernel(), [t.buffer, s.buffer, r.buffer, w.buffer], { n: s.rows, cols: t.cols, targetRows: t.rows }, WebGpuRank.over(t.cols, LAYOUT_WG));
    return target;
  }

  rotary(x: DeviceTensor, positions: DeviceTensor, spec: RotarySpec): DeviceTensor {
    const a = this.use(x, 'rotary');
    const pos = this.use(positions, 'rotary');
    const inv = this.use(spec.invFreq, 'rotary');
    if (a.cols % spec.headDim !== 0) fail('rotary', `${a.cols} features are not whole heads of ${spec.headDim}`);
    if (spec.rotaryDim % 2 !== 0 || spec.rotaryDim > spec.headDim || inv.numel < spec.rotaryDim / 2) fail('rotary', `rotaryDim ${spec.rotaryDim} does not fit headDim ${spec.headDim} with ${inv.numel} frequencies`);
    if (pos.numel !== a.rows) fail('rotary', `${pos.numel} positions for ${a.rows} rows`);
    const half = spec.rotaryDim / 2;
    const heads = a.cols / spec.headDim;
    const params = { rows: a.rows, heads, headDim: spec.headDim, half, interleaved: spec.style === 'interleaved' ? 1 : 0, scale: spec.scale ?? 1 };
    this.run(rotaryKernel(), [a.buffer, pos.buffer, inv.buffer], params, WebGpuRank.over(a.rows * heads * half, 256));
    return x;
  }

  argmax(x: DeviceTensor): DeviceTensor {
    const a = this.use(x, 'argmax');
    if (a.dtype !== 'f32') fail('argmax', `the input must be f32, not ${a.dtype}`);
    const y = this.tensor([a.rows], 'i32');
    this.run(argmaxKernel(), [a.buffer, y.buffer], { rows: a.rows, cols: a.cols }, grid(a.rows));
    return y;
  }

  topk(x: DeviceTensor, k: number): { values: DeviceTensor; indices: DeviceTensor } {
    const a = this.use(x, 'topk');
    if (!Number.isInteger(k) || k < 1 || k > a.cols) fail('topk', `k must be in 1..${a.cols}, got ${k}`);
    const values = this.tensor([a.rows, k]);
    const indices = this.tensor([a.rows, k], 'i32');
    this.run(topkKernel(), [a.buffer, values.buffer, indices.buffer], { rows: a.rows, cols: a.cols, k }, grid(a.rows));
    return { values, indices };
  }

  route(logits: DeviceTensor, topK: number, normalize: boolean): Routing {
    const a = this.use(logits, 'route');
    if (!Number.isInteger(topK) || topK < 1 || topK > a.cols) fail('route', `topK must be in 1..${a.cols}, got ${topK}`);
    const experts = this.tensor([a.rows, topK], 'i32');
    const weights = this.tensor([a.rows, topK]);
    this.run(routeKernel(), [a.buffer, experts.buffer, weights.buffer], { rows: a.rows, cols: a.cols, k: topK, normalize: normalize ? 1 : 0 }, WebGpuRank.over(a.rows, 64));
    return { experts, weights };
  }

  /**
   * Every row, with weight 0 where the row does not use expert `e`: compacting would need the routing
   * on the host (a readback per MoE layer), which the interface allows a backend to skip.
   */
  expertRows(x: DeviceTensor, routing: Routing, e: number): ExpertRows {
    const a = this.use(x, 'expertRows');
    const ex = this.use(routing.experts, 'expertRows');
    const wt = this.use(routing.weights, 'expertRows');
    const topK = ex.cols;
    if (ex.rows !== a.rows) fail('expertRows', `routing of ${ex.rows} rows for ${a.rows} rows of x`);
    const rows = this.tensor([a.rows], 'i32');
    const weights = this.tensor([a.rows]);
    this.run(iotaKernel(), [rows.buffer], { n: a.rows }, WebGpuRank.over(a.rows, LAYOUT_WG));
    this.run(expertWeightsKernel(), [ex.buffer, wt.buffer, weights.buffer], { rows: a.rows, k: topK, expert: e }, WebGpuRank.over(a.rows, 64));
    return { x, rows, weights };
  }

  // ───────────────────────────── attention ─────────────────────────────

  createKvCache(batch: number, kvHeads: number, headDim: number, valueDim: number, dtype: StorageDtype): KvCache {
    if (!KV_DTYPES.includes(dtype)) {
      throw new TpError('dtype-unsupported', `createKvCache: the WebGPU backend keeps its KV cache in ${KV_DTYPES.join(', ')}, not ${String(dtype)} (use --kv-dtype ${KV_DTYPES.join(' or ')})`);
    }
    const cache = new GpuKvCache(batch, kvHeads, headDim, valueDim, dtype);
    this.caches.add(cache);
    return cache;
  }

  freeKvCache(cache: KvCache): void {
    const c = cache as GpuKvCache;
    this.caches.delete(c);
    for (const t of [c.k, c.v]) if (t !== undefined) this.free(t);
    c.k = c.v = undefined;
    c.capacity = c.length = 0;
  }

  /** Room for `slots` positions per sequence: grow by at least half (and a chunk), copying what is held. */
  private reserve(c: GpuKvCache, slots: number): void {
    if (slots <= c.capacity) return;
    const capacity = Math.max(slots, Math.ceil((c.capacity * 1.5) / KV_CHUNK) * KV_CHUNK, KV_CHUNK);
    const grow = (old: GpuTensor | undefined, stride: number): GpuTensor => {
      const t = this.tensor([c.batch, capacity, stride], c.dtype, true);
      const slot = c.slotBytes(stride);
      if (old !== undefined) {
        for (let b = 0; b < c.batch; b++) this.recorder.copy(old.buffer, b * c.capacity * slot, t.buffer, b * capacity * slot, c.length * slot);
        this.free(old);
      }
      return t;
    };
    c.k = grow(c.k, c.kStride);
    c.v = grow(c.v, c.vStride);
    c.capacity = capacity;
  }

  private append(c: GpuKvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number, start: number): void {
    const kt = this.use(k, 'attention');
    const vt = this.use(v, 'attention');
    const kw = c.kvHeads * c.headDim;
    const vw = c.kvHeads * c.valueDim;
    if (batch !== c.batch) fail('attention', `the cache holds ${c.batch} sequences, the step ${batch}`);
    if (kt.rows !== batch * rows || kt.cols !== kw || kt.dtype !== 'f32') fail('attention', `keys ${shapeText(kt)} are not f32 [${batch * rows}, ${kw}]`);
    if (vt.rows !== batch * rows || vt.cols !== vw || vt.dtype !== 'f32') fail('attention', `values ${shapeText(vt)} are not f32 [${batch * rows}, ${vw}]`);
    this.reserve(c, start + rows);
    // f32 one element per invocation; 16-bit two per invocation (a word), rounded on the device.
    for (const [src, cache, width, stride] of [[kt, c.k!, kw, c.kStride], [vt, c.v!, vw, c.vStride]] as const) {
      const words = c.slotBytes(stride) / 4;
      const params = { batch, rows, width, capacity: c.capacity, start, words };
      this.run(kvWriteKernel(c.dtype), [src.buffer, cache.buffer], params, WebGpuRank.over(batch * rows * (c.dtype === 'f32' ? width : words), LAYOUT_WG));
    }
    c.length = Math.max(c.length, start + rows);
  }

  /**
   * Beam search: sequence b takes what sequence order[b] held. Done as a copy into new buffers (an order
   * may repeat and drop sequences), ordered with the kernels before and after it.
   */
  reorderKvCache(cache: KvCache, order: DeviceTensor): void {
    const c = cache as GpuKvCache;
    const o = this.use(order, 'reorderKvCache');
    if (o.dtype !== 'i32' || o.numel !== c.batch) fail('reorderKvCache', `the order must be i32 [${c.batch}], not ${o.dtype} ${shapeText(o)}`);
    const bad = o.hostInts?.find((s) => !(s >= 0 && s < c.batch));
    if (bad !== undefined) fail('reorderKvCache', `order entry ${bad} is not a sequence of the cache (0 to ${c.batch - 1})`);
    if (c.length === 0 || c.k === undefined || c.v === undefined) return;
    // Copied as 32-bit words whatever the dtype: a slot is a whole number of them.
    const reorder = (old: GpuTensor, stride: number): GpuTensor => {
      const t = this.tensor([c.batch, c.capacity, stride], c.dtype, true);
      const width = c.slotBytes(stride) / 4;
      const params = { batch: c.batch, length: c.length, width, capacity: c.capacity };
      this.run(reorderBatchKernel(), [old.buffer, o.buffer, t.buffer], params, WebGpuRank.over(c.batch * c.length * width, LAYOUT_WG));
      this.free(old);
      return t;
    };
    c.k = reorder(c.k, c.kStride);
    c.v = reorder(c.v, c.vStride);
  }

  fillKvCache(cache: KvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number): void {
    const c = cache as GpuKvCache;
    c.length = 0;
    this.append(c, k, v, batch, rows, 0);
  }

  attention(q: DeviceTensor, k: DeviceTensor | undefined, v: DeviceTensor | undefined, cache: KvCache, step: AttentionStep, spec: AttentionSpec): DeviceTensor {
    const c = cache as GpuKvCache;
    const qt = this.use(q, 'attention');
    const { batch, rows, start } = step;
    const { heads, kvHeads, headDim, valueDim } = spec;
    if (!(kvHeads >= 1) || heads % kvHeads !== 0) fail('attention', `${heads} query heads cannot share ${kvHeads} kv heads`);
    if (kvHeads !== c.kvHeads || headDim !== c.headDim || valueDim !== c.valueDim) fail('attention', 'the spec does not match the cache it reads');
    if (headDim > MAX_HEAD_DIM || valueDim > MAX_VALUE_DIM) fail('attention', `head widths up to ${MAX_HEAD_DIM} (keys) and ${MAX_VALUE_DIM} (values) are supported, not ${headDim} and ${valueDim}`);
    if (qt.rows !== batch * rows || qt.cols !== heads * headDim) fail('attention', `queries ${shapeText(qt)} are not [${batch * rows}, ${heads * headDim}]`);
    if ((k === undefined) !== (v === undefined)) fail('attention', 'keys and values come together');
    const expectation = this.expectationBits(spec);
    // Everything is checked before the append: a refused call leaves the cache as it was.
    const mask = this.use(step.keyMask, 'attention');
    const keys = mask.shape[1] ?? 0;
    const cached = k === undefined ? c.length : Math.max(c.length, start + rows);
    if (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.dtype !== 'i32' || keys > cached) fail('attention', `the key mask ${shapeText(mask)} does not fit ${batch} sequences of ${cached} cached keys`);
    const positions = step.keyPositions === undefined ? undefined : this.use(step.keyPositions, 'attention');
    const bias = step.bias === undefined ? undefined : this.use(step.bias, 'attention');
    const slopes = spec.alibi === undefined ? undefined : this.use(spec.alibi, 'attention');
    const biasBatch = bias === undefined ? 0 : this.attentionBiasStride(bias, batch, heads, rows, keys);
    if (slopes !== undefined && positions === undefined) fail('attention', 'ALiBi needs key positions');
    const relative = this.relativeInputs(spec, step, rows, keys);
    if (k !== undefined) this.append(c, k, v!, batch, rows, start);

    // Few rows over many keys (decode of a long cache): each row's keys split over several
    // workgroups, then merged (flash-decoding; kernels/attention-split.ts says when).
    const groups = batch * rows * heads;
    const splits = attentionSplits(keys, groups, this.opened.adapter.fallback ? SOFTWARE_SPLIT : GPU_SPLIT, this.attentionSplitKeys);
    // Expectation scoring applies no ALiBi, bias or relative term (AttentionSpec.scoring), so its
    // variant does not bind them; they were still checked above, as bad input.
    const variant: AttentionVariant = {
      alibi: slopes !== undefined && expectation === undefined,
      bias: bias !== undefined && expectation === undefined,
      relKeys: relative?.keys !== undefined && expectation === undefined,
      relQueries: relative?.queries !== undefined && expectation === undefined,
      relValues: relative?.values !== undefined && expectation === undefined,
      expectation: expectation !== undefined,
      packed: false,
      kv: c.dtype,
      nativeF16: this.f16,
      split: splits > 1,
    };
    let def = attentionKernel(variant);
    if (def.bindings.length > this.maxStorageBuffers) {
      def = attentionKernel({ ...variant, packed: true });
      if (def.bindings.length > this.maxStorageBuffers) fail('attention', `the adapter allows ${this.maxStorageBuffers} storage buffers per shader; attention needs at least ${def.bindings.length}`);
    }
    const out = this.tensor([batch * rows, heads * valueDim]);
    const table = (t: RelativeTable | undefined) => ({ rows: t?.rows ?? 1, stride: t?.stride ?? 0, head: t?.head ?? 0 });
    const [rk, rq, rv] = [table(relative?.keys), table(relative?.queries), table(relative?.values)];
    const params: Record<string, number> = {
      batch,
      rows,
      start,
      keys,
      heads,
      kvHeads,
      headDim,
      valueDim,
      capacity: c.capacity,
      scale: spec.scale,
      causal: spec.mask === 'causal' ? 1 : 0,
      window: spec.window ?? 0,
      softcap: spec.softcap ?? 0,
      alibiScaled: spec.alibiScaled ? 1 : 0,
      biasBatch,
      bitsInt: Math.floor(expectation ?? 0),
      bitsFrac: (expectation ?? 0) - Math.floor(expectation ?? 0),
      relKRows: rk.rows,
      relKStride: rk.stride,
      relKHead: rk.head,
      relQRows: rq.rows,
      relQStride: rq.stride,
      relQHead: rq.head,
      relVRows: rv.rows,
      relVStride: rv.stride,
      relVHead: rv.head,
      kStride: c.kStride,
      vStride: c.vStride,
      splits,
    };
    if (c.k === undefined) this.reserve(c, 1); // reading an empty cache: bind something
    const optional: Record<OptionalInput, GpuTensor | undefined> = {
      keyPos: positions,
      slopes,
      bias,
      relIndex: relative?.index,
      relK: relative?.keys?.tensor,
      relQ: relative?.queries?.tensor,
      relV: relative?.values?.tensor,
    };
    // Split: the attention kernel writes a partial per piece, [groups · splits, valueDim + 2], and a merge pass the output.
    const partials = splits > 1 ? this.tensor([groups * splits, valueDim + 2]) : undefined;
    const inputs: Record<string, GPUBuffer | undefined> = { q: qt.buffer, kc: c.k!.buffer, vc: c.v!.buffer, keyMask: mask.buffer, out: (partials ?? out).buffer };
    const packed = def.bindings.some((b) => b.name === 'packed') ? this.packInputs(optionalInputs(variant).map((name) => [name, optional[name]!] as const), params) : undefined;
    if (packed !== undefined) inputs['packed'] = packed.buffer;
    else for (const [name, t] of Object.entries(optional)) inputs[name] = t?.buffer;
    const buffers = def.bindings.map((b) => inputs[b.name] ?? fail('attention', `internal: no buffer for ${b.name} of ${def.name}`));
    this.run(def, buffers, params, grid(groups * splits));
    if (packed !== undefined) this.free(packed); // reuse is ordered after this dispatch on the queue
    if (partials !== undefined) {
      this.run(attentionMergeKernel(variant.expectation), [partials.buffer, out.buffer], { groups, splits, valueDim }, grid(groups));
      this.free(partials);
    }
    return out;
  }

  /**
   * Copy tensors into one buffer, one after another, and set each one's word offset as the parameter
   * `<name>Off`: the attention inputs of an adapter with too few storage bindings for one each.
   */
  private packInputs(tensors: ReadonlyArray<readonly [string, GpuTensor]>, params: Record<string, number>): GpuTensor {
    const words = tensors.reduce((n, [, t]) => n + t.numel, 0);
    const packed = this.tensor([words]);
    let at = 0;
    for (const [name, t] of tensors) {
      params[`${name}Off`] = at;
      this.recorder.copy(t.buffer, 0, packed.buffer, at * 4, t.numel * 4);
      at += t.numel;
    }
    return packed;
  }

  /** The bits of YOSO's expectation scoring, or undefined for a softmax. */
  private expectationBits(spec: AttentionSpec): number | undefined {
    const scoring = spec.scoring;
    if (scoring === undefined || scoring.kind === 'softmax') return undefined;
    if (scoring.kind !== 'expectation') fail('attention', `unknown scoring "${(scoring as { kind: unknown }).kind}" (softmax or expectation)`);
    if (!(Number.isFinite(scoring.bits) && scoring.bits >= 1)) fail('attention', `expectation scoring needs bits ≥ 1 (the LSH hash length), got ${scoring.bits}`);
    return scoring.bits;
  }

  /** The bias's stride between sequences: 0 for [heads, rows, keys] (broadcast), else one sequence's size. */
  private attentionBiasStride(bias: GpuTensor, batch: number, heads: number, rows: number, keys: number): number {
    const same = (shape: readonly number[]) => bias.shape.length === shape.length && shape.every((n, i) => bias.shape[i] === n);
    if (bias.dtype === 'f32' && same([heads, rows, keys])) return 0;
    if (bias.dtype === 'f32' && same([batch, heads, rows, keys])) return heads * rows * keys;
    return fail('attention', `the bias ${bias.dtype} ${shapeText(bias)} is neither f32 [${heads}, ${rows}, ${keys}] (heads, rows, keys) nor [${batch}, ${heads}, ${rows}, ${keys}] (one per sequence)`);
  }

  /**
   * The relative tables and index of AttentionSpec.relative (undefined without a table), checked:
   * each table [positions, heads·width] (a slice per head) or [positions, width] (shared), the index
   * i32 [rows, keys] and, where its values are on the host (small uploads), inside every table; on
   * the device an index is clamped to each table's rows.
   */
  private relativeInputs(spec: AttentionSpec, step: AttentionStep, rows: number, keys: number): RelativeInputs | undefined {
    const { heads, headDim, valueDim } = spec;
    const rel = spec.relative ?? {};
    const present = (['keys', 'queries', 'values'] as const).filter((name) => rel[name] !== undefined);
    if (present.length === 0) return undefined; // nothing to read: no index needed
    if (step.relativeIndex === undefined) fail('attention', `relative ${present.join(', ')} tables (spec.relative) need step.relativeIndex, i32 [rows, keys] = [${rows}, ${keys}]`);
    const index = this.use(step.relativeIndex, 'attention');
    if (index.dtype !== 'i32' || index.shape.length !== 2 || index.shape[0] !== rows || index.shape[1] !== keys) {
      fail('attention', `the relative index ${index.dtype} ${shapeText(index)} is not i32 [${rows}, ${keys}] (rows, keys)`);
    }
    const table = (t: DeviceTensor | undefined, what: string, width: number): RelativeTable | undefined => {
      if (t === undefined) return undefined;
      const x = this.use(t, 'attention');
      const cols = x.shape[1];
      if (x.dtype !== 'f32' || x.shape.length !== 2 || x.shape[0]! < 1 || (cols !== heads * width && cols !== width)) {
        fail('attention', `the relative ${what} table ${x.dtype} ${shapeText(x)} is neither f32 [positions, ${heads * width}] (one slice per head) nor [positions, ${width}] (shared by the heads)`);
      }
      return { tensor: x, rows: x.shape[0]!, stride: cols!, head: cols === width && heads > 1 ? 0 : width };
    };
    const out: RelativeInputs = { index, keys: table(rel.keys, 'keys', headDim), queries: table(rel.queries, 'queries', headDim), values: table(rel.values, 'values', valueDim) };
    const positions = Math.min(...[out.keys, out.queries, out.values].map((t) => t?.rows ?? Infinity));
    const bad = index.hostInts?.findIndex((r) => !(r >= 0 && r < positions)) ?? -1;
    if (bad >= 0 && Number.isFinite(positions)) {
      fail('attention', `relative index ${index.hostInts![bad]} at [${Math.floor(bad / keys)}, ${bad % keys}] is outside the tables' ${positions} positions`);
    }
    return out;
  }

  // ───────────────────────────── lifetime ─────────────────────────────

  /**
   * Drain the queue, free every buffer and destroy the device, then wait for its loss notice: when this
   * resolves no GPU promise of this rank is pending, so its thread may end (or be terminated) safely.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const within = <T>(promise: Promise<T>) => Promise.race([promise, new Promise<void>((resolve) => setTimeout(resolve, DISPOSE_WAIT_MS).unref?.())]);
    try {
      // After another rank's failure the drain is refused (guard.ts); destroying the device stops its work.
      await within(this.recorder.drain());
    } catch {
      // A lost device has nothing left to drain.
    }
    for (const c of this.caches) this.freeKvCache(c);
    this.caches.clear();
    this.memory.destroyAll([this.dummy, ...[...this.live, ...this.scopes.flat()].flatMap((t) => t.blocks.map((b) => b.buffer))]);
    this.live.clear();
    this.scopes = [];
    this.constants.clear();
    this.guard.call(
      'dispose',
      () => {
        this.recorder.destroy();
        this.device.destroy();
      },
      false,
    );
    await within(this.guard.track(this.device.lost));
  }
}
