/**
 * A CUDA rank: one worker thread, one GPU's primary context, one stream. Tensors are stream-ordered
 * allocations (cuMemAllocAsync), kernels are launched at once and return their output handle, and the
 * only waits — download, endStep, dispose — resolve through stream notifications on this thread,
 * watched by a timer that turns a device error, an aborted peer or a late collective into an error.
 */
import {
  DEVICE_DTYPE_BYTES,
  TpError,
  type Activation,
  type AttentionSpec,
  type AttentionStep,
  type Collective,
  type DeviceDtype,
  type DeviceTensor,
  type ExpertRows,
  type HostTensor,
  type KvCache,
  type NormSpec,
  type Rank,
  type RotarySpec,
  type Routing,
  type StorageDtype,
} from '@tp/core';
import { convert, widen } from './convert.js';
import { CudaError, translate } from './errors.js';
import { attentionVariant } from './attention.js';
import {
  ACTIVATION_CODE,
  attentionChunk,
  attentionPartialArgs,
  DTYPE_CODE,
  GEMM_TILE,
  GEMV_MAX_M,
  GEMV_ROWS,
  gemvSplits,
  KERNELS,
  packArgs,
  UNARY_CLAMP,
  UNARY_SCALE,
  type KernelName,
} from './kernels.js';
import type { Handle, NativeContext, NativeDevice } from './native.js';

/** Slots a KV cache grows by at least. */
const KV_CHUNK = 64;
/** i32 uploads up to this many elements keep a host copy (see CudaTensor.hostInts). */
const HOST_SHADOW_INTS = 65536;
/** cuBLASLt's cudaDataType codes. */
const CUDA_R_32F = 0;
const CUDA_R_16BF = 14;
/** cuStreamQuery: done, still busy. */
const CUDA_SUCCESS = 0;
const CUDA_ERROR_NOT_READY = 600;
/** How long a wait tolerates an idle stream whose notification has not arrived (see wait). */
const IDLE_WITHOUT_NOTIFICATION_MS = 3000;

export class CudaTensor implements DeviceTensor {
  freed = false;
  /**
   * The values of a small i32 tensor uploaded from the host: arguments read on the device (a beam
   * order) can then be checked when they are enqueued, as the interface asks, without a round trip.
   */
  hostInts: Int32Array | undefined;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DeviceDtype,
    readonly ptr: Handle,
    readonly bytes: number,
    readonly step: boolean,
  ) {}

  get length(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The last dimension (1-D: the length). */
  get cols(): number {
    return this.shape.length === 0 ? 1 : this.shape[this.shape.length - 1]!;
  }

  get rows(): number {
    const c = this.cols;
    return c === 0 ? 0 : this.length / c;
  }
}

class CudaKvCache implements KvCache {
  length = 0;
  capacity = 0;
  k: Handle = 0;
  v: Handle = 0;

  constructor(
    readonly batch: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly valueDim: number,
    readonly dtype: StorageDtype,
  ) {}
}

const fail = (op: string, detail: string): never => {
  throw new TpError('kernel-invalid', `${op}: ${detail}`);
};

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** What the collective layer needs of its rank. */
export interface RankDevice {
  readonly rank: number;
  readonly device: number;
  readonly ctx: NativeContext;
  launch(name: KernelName, grid: readonly [number, number?, number?], block: number, args: readonly number[], sharedBytes?: number): void;
  tensor(shape: readonly number[], dtype?: DeviceDtype): CudaTensor;
  scratch(bytes: number): Handle;
  release(ptr: Handle): void;
  call<T>(fn: () => T): T;
}

/** A collective that can also report, while the rank waits, that a peer failed or is late. */
export interface CudaCollective extends Collective {
  /** An error to fail the waiting operation with, or undefined while all is well. */
  health(op: string): TpError | undefined;
  dispose(): Promise<void>;
}

export interface CudaRankOptions {
  /** `auto` (cuBLASLt for prefill when loaded), `cublaslt`, or `kernel` (tp's own GEMM only). */
  gemm: 'auto' | 'cublaslt' | 'kernel';
  cublasLt: boolean;
}

export class CudaRank implements Rank, RankDevice {
  readonly backend = 'cuda';
  collective!: CudaCollective;
  /**
   * The open steps, outermost first: each holds the tensors made since its beginStep (a kept one
   * moves to the step below). Empty outside a step.
   */
  private scopes: CudaTensor[][] = [];
  private liveBytes = 0;
  private caches = new Set<CudaKvCache>();
  private disposed = false;
  private sharedRaised = new Map<KernelName, number>();

  constructor(
    readonly rank: number,
    readonly world: number,
    readonly device: number,
    readonly ctx: NativeContext,
    private readonly functions: ReadonlyMap<KernelName, Handle>,
    readonly info: NativeDevice,
    private readonly options: CudaRankOptions,
  ) {}

  // ───────────────────────────── plumbing ─────────────────────────────

  call<T>(fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw translate(error, { rank: this.rank, device: this.device });
    }
  }

  launch(name: KernelName, grid: readonly [number, number?, number?], block: number, args: readonly number[], sharedBytes = 0): void {
    const fn = this.functions.get(name);
    if (fn === undefined) throw new TpError('backend-missing', `rank ${this.rank}: kernel ${name} is not in the loaded fatbin; rebuild @tp/backend-cuda`);
    const [gx, gy = 1, gz = 1] = grid;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (sharedBytes > 48 * 1024 && (this.sharedRaised.get(name) ?? 0) < sharedBytes) {
      this.call(() => this.ctx.setMaxDynamicShared(fn, sharedBytes));
      this.sharedRaised.set(name, sharedBytes);
    }
    const packed = packArgs(name, args);
    try {
      this.ctx.launch(fn, gx, gy, gz, block, 1, 1, sharedBytes, packed);
    } catch (error) {
      const e = translate(error, { rank: this.rank, device: this.device });
      if (e instanceof CudaError) throw new CudaError({ library: 'cuda', call: `cuLaunchKernel(${name})`, status: e.status, statusName: e.statusName, rank: this.rank, device: this.device }, { cause: error });
      throw e;
    }
  }

  /** Blocks for a grid-stride kernel over n elements. */
  private blocks(n: number, block = 256): number {
    return Math.max(1, Math.min(Math.ceil(n / block), this.info.multiprocessors * 16));
  }

  tensor(shape: readonly number[], dtype: DeviceDtype = 'f32'): CudaTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const bytes = n * DEVICE_DTYPE_BYTES[dtype];
    const ptr = this.call(() => this.ctx.alloc(Math.max(bytes, 4)));
    const scope = this.scopes.at(-1);
    const t = new CudaTensor([...shape], dtype, ptr, bytes, scope !== undefined);
    this.liveBytes += bytes;
    scope?.push(t);
    return t;
  }

  /** Device memory freed in stream order right after the work queued so far. */
  scratch(bytes: number): Handle {
    return this.call(() => this.ctx.alloc(Math.max(bytes, 4)));
  }

  release(ptr: Handle): void {
    this.call(() => this.ctx.free(ptr));
  }

  private checkAlive(): void {
    if (this.disposed) throw new TpError('invalid-argument', `rank ${this.rank}: this CUDA rank was disposed`);
  }

  /**
   * Wait for a promise of the addon (a download, a notification) while watching the stream and the
   * collective: a device error, a failed peer or an overdue collective rejects instead of hanging.
   */
  async wait<T>(promise: Promise<T>, op: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let delay = 2;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        f();
      };
      promise.then(
        (v) => finish(() => resolve(v)),
        (e) => finish(() => reject(translate(e, { rank: this.rank, device: this.device }))),
      );
      let idleSince: number | undefined;
      const tick = () => {
        if (settled) return;
        const problem = this.health(op);
        if (problem) return finish(() => reject(problem));
        // The stream finished but its notification never came: a bug, reported rather than hung on.
        if (this.lastQuery === CUDA_SUCCESS) {
          idleSince ??= Date.now();
          if (Date.now() - idleSince > IDLE_WITHOUT_NOTIFICATION_MS) {
            return finish(() => reject(new TpError('internal', `rank ${this.rank}: the GPU finished ${op}, but its completion notification never arrived. This is a bug in @tp/backend-cuda; please report it`)));
          }
        } else {
          idleSince = undefined;
        }
        delay = Math.min(100, delay * 2);
        timer = setTimeout(tick, delay);
      };
      timer = setTimeout(tick, delay);
    });
  }

  private lastQuery = CUDA_SUCCESS;

  private health(op: string): TpError | undefined {
    let status: number;
    try {
      status = this.ctx.query();
    } catch (error) {
      return translate(error, { rank: this.rank, device: this.device });
    }
    this.lastQuery = status;
    if (status !== CUDA_SUCCESS && status !== CUDA_ERROR_NOT_READY) {
      return new CudaError({ library: 'cuda', call: `cuStreamQuery (while waiting in ${op})`, status, rank: this.rank, device: this.device });
    }
    return this.collective?.health(op);
  }

  // ───────────────────────────── steps and data ─────────────────────────────

  /** Opens a step, or inside an open step a scope (one layer of a forward pass: see endStep). */
  beginStep(): void {
    this.checkAlive();
    this.scopes.push([]);
  }

  /**
   * Ending a scope frees its tensors with cuMemFreeAsync on this rank's stream, and returns at once:
   * kernels already enqueued still read them, and the pool hands their memory to later allocations,
   * whose kernels run after on the same stream — so successive scopes reuse one scope's memory without
   * a host wait. (A collective's peers are done reading too: DeviceCollective makes this stream wait
   * on their events before it returns, and NCCL runs on this stream.) `keep` moves to the enclosing
   * step. The outermost step frees the same way, then waits for the stream.
   */
  async endStep(keep?: DeviceTensor): Promise<void> {
    const kept = keep as CudaTensor | undefined;
    // Checked before anything changes: a refused call leaves the step open.
    if (kept !== undefined && this.scopes.length < 2) {
      fail('endStep', `cannot keep a tensor ${this.scopes.length === 0 ? 'when no step is open' : 'from the outermost step: nothing encloses it'}; call endStep() without a tensor, or keep it from a step nested in this one`);
    }
    if (kept?.freed) fail('endStep', `the tensor to keep (${kept.dtype} ${shapeText(kept.shape)}) was freed already`);
    const tensors = this.scopes.pop() ?? [];
    if (kept !== undefined) {
      // Made in this scope: it now belongs to the enclosing step. Made earlier (an enclosing step's,
      // or a weight): it is not in this scope's list, so ending the scope leaves it alone anyway.
      const at = tensors.lastIndexOf(kept);
      if (at >= 0) {
        tensors.splice(at, 1);
        this.scopes.at(-1)!.push(kept);
      }
    }
    for (const t of tensors) if (!t.freed) this.free(t);
    if (this.scopes.length > 0) return;
    await this.wait(this.call(() => this.ctx.notify()), 'endStep');
  }

  memoryBytes(): number {
    let caches = 0;
    for (const c of this.caches) caches += 2 * c.capacity * c.batch * c.kvHeads * Math.max(c.headDim, c.valueDim) * DEVICE_DTYPE_BYTES[c.dtype];
    return this.liveBytes + caches;
  }

  upload(host: HostTensor, as: DeviceDtype = host.dtype): DeviceTensor {
    this.checkAlive();
    const n = host.shape.reduce((a, b) => a * b, 1);
    if (host.bytes.byteLength !== n * DEVICE_DTYPE_BYTES[host.dtype]) fail('upload', `${host.bytes.byteLength} bytes do not hold a ${host.dtype} ${shapeText(host.shape)} tensor`);
    if ((host.dtype === 'i32') !== (as === 'i32')) fail('upload', `cannot store ${host.dtype} data as ${as}`);
    const bytes = as === host.dtype ? host.bytes : convert(host.bytes, host.dtype as StorageDtype, as as StorageDtype, n);
    const t = this.tensor(host.shape, as);
    if (bytes.byteLength > 0) this.call(() => this.ctx.upload(t.ptr, bytes));
    if (as === 'i32' && n <= HOST_SHADOW_INTS) t.hostInts = new Int32Array(bytes.slice().buffer, 0, n);
    return t;
  }

  async download(t: DeviceTensor): Promise<Float32Array | Int32Array> {
    this.checkAlive();
    const x = t as CudaTensor;
    const buffer = await this.wait(this.call(() => this.ctx.download(x.ptr, x.bytes)), 'download');
    return widen(buffer, x.dtype, x.length);
  }

  free(t: DeviceTensor): void {
    const x = t as CudaTensor;
    if (x.freed) return;
    x.freed = true;
    this.liveBytes -= x.bytes;
    this.call(() => this.ctx.free(x.ptr));
  }

  // ───────────────────────────── matmul ─────────────────────────────

  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CudaTensor;
    const b = w as CudaTensor;
    if (b.shape.length !== 2) fail('linear', `the weight must be 2-D, not ${shapeText(b.shape)}`);
    const [N, K] = b.shape as [number, number];
    if (a.dtype !== 'f32') fail('linear', `the input must be f32, not ${a.dtype}`);
    if (b.dtype === 'i32') fail('linear', 'weights cannot be i32');
    if (a.cols !== K) fail('linear', `input ${shapeText(a.shape)} has ${a.cols} features, weight [${N}, ${K}] expects ${K}`);
    const bt = bias as CudaTensor | undefined;
    if (bt !== undefined && bt.length !== N) fail('linear', `bias has ${bt.length} elements, the weight ${N} rows`);
    const M = a.rows;
    const y = this.tensor([M, N]);
    const biasPtr = bt?.ptr ?? 0;
    const biasDtype = DTYPE_CODE[bt?.dtype ?? 'f32'];
    if (M === 0 || N === 0) return y;
    if (M <= GEMV_MAX_M) {
      const vector = b.dtype === 'f32' ? 4 : 8;
      const { splits, kChunk } = gemvSplits(N, K, this.info.multiprocessors, vector);
      const name = `tp_gemv_${b.dtype}` as KernelName;
      const grid: [number, number] = [Math.ceil(N / GEMV_ROWS), splits];
      if (splits === 1) {
        this.launch(name, grid, 32 * GEMV_ROWS, [y.ptr, a.ptr, b.ptr, biasPtr, biasDtype, M, K, N, kChunk]);
      } else {
        const partial = this.scratch(splits * M * N * 4);
        this.launch(name, grid, 32 * GEMV_ROWS, [partial, a.ptr, b.ptr, 0, 0, M, K, N, kChunk]);
        this.launch('tp_splitk_reduce', [this.blocks(M * N)], 256, [y.ptr, partial, biasPtr, biasDtype, M, N, splits]);
        this.release(partial);
      }
      return y;
    }
    const useLt = this.options.cublasLt && this.options.gemm !== 'kernel' && (b.dtype === 'f32' || b.dtype === 'bf16');
    if (this.options.gemm === 'cublaslt' && !useLt) fail('linear', `cuBLASLt was asked for but ${this.options.cublasLt ? `does not serve ${b.dtype} weights here` : 'is not loaded'}`);
    if (useLt) {
      // Row-major y[M, N] = x[M, K] · w[N, K]ᵀ is column-major yᵀ (N × M) = wᵀ-as-stored (K × N, transposed) · xᵀ (K × M).
      if (b.dtype === 'f32') {
        this.call(() => this.ctx.gemm(1, 0, N, M, K, b.ptr, CUDA_R_32F, K, a.ptr, CUDA_R_32F, K, y.ptr, CUDA_R_32F, N, 1, 0));
      } else {
        // x = hi + lo in bf16 (≈16 bits of x), two bf16 GEMMs accumulating in f32.
        const hi = this.scratch(M * K * 2);
        const lo = this.scratch(M * K * 2);
        this.launch('tp_split_bf16', [this.blocks(M * K)], 256, [hi, lo, a.ptr, M * K]);
        this.call(() => this.ctx.gemm(1, 0, N, M, K, b.ptr, CUDA_R_16BF, K, hi, CUDA_R_16BF, K, y.ptr, CUDA_R_32F, N, 1, 0));
        this.call(() => this.ctx.gemm(1, 0, N, M, K, b.ptr, CUDA_R_16BF, K, lo, CUDA_R_16BF, K, y.ptr, CUDA_R_32F, N, 1, 1));
        this.release(hi);
        this.release(lo);
      }
      if (bt) this.launch('tp_add_bias', [this.blocks(M * N)], 256, [y.ptr, bt.ptr, biasDtype, M, N]);
      return y;
    }
    this.launch(`tp_gemm_${b.dtype}` as KernelName, [Math.ceil(N / GEMM_TILE), Math.ceil(M / GEMM_TILE)], 256, [y.ptr, a.ptr, b.ptr, biasPtr, biasDtype, M, K, N]);
    return y;
  }

  // ───────────────────────────── lookups and positions ─────────────────────────────

  embedding(table: DeviceTensor, ids: DeviceTensor, rowOffset = 0, scale = 1): DeviceTensor {
    const t = table as CudaTensor;
    const i = ids as CudaTensor;
    if (t.shape.length !== 2) fail('embedding', `the table must be 2-D, not ${shapeText(t.shape)}`);
    if (i.dtype !== 'i32') fail('embedding', `ids must be i32, not ${i.dtype}`);
    const [rows, dim] = t.shape as [number, number];
    const y = this.tensor([i.length, dim]);
    this.launch('tp_embedding', [i.length], Math.min(256, 32 * Math.ceil(dim / 32)), [y.ptr, t.ptr, DTYPE_CODE[t.dtype], i.ptr, rows, dim, rowOffset, scale]);
    return y;
  }

  sinusoidal(positions: DeviceTensor, dim: number, kind: 'fairseq' | 'marian'): DeviceTensor {
    const p = positions as CudaTensor;
    const y = this.tensor([p.length, dim]);
    this.launch('tp_sinusoidal', [p.length], Math.min(256, 32 * Math.ceil(dim / 32)), [y.ptr, p.ptr, dim, kind === 'fairseq' ? 0 : 1]);
    return y;
  }

  rotary(x: DeviceTensor, positions: DeviceTensor, spec: RotarySpec): DeviceTensor {
    const a = x as CudaTensor;
    const p = positions as CudaTensor;
    const rows = p.length;
    if (rows === 0) return x;
    const width = a.length / rows;
    if (!Number.isInteger(width) || width % spec.headDim !== 0) fail('rotary', `${shapeText(a.shape)} is not ${rows} rows of whole ${spec.headDim}-wide heads`);
    if (spec.rotaryDim % 2 !== 0 || spec.rotaryDim > spec.headDim) fail('rotary', `rotaryDim ${spec.rotaryDim} must be even and at most headDim ${spec.headDim}`);
    const heads = width / spec.headDim;
    const total = rows * heads * (spec.rotaryDim / 2);
    this.launch('tp_rotary', [this.blocks(total)], 256, [
      a.ptr,
      p.ptr,
      (spec.invFreq as CudaTensor).ptr,
      rows,
      heads,
      spec.headDim,
      spec.rotaryDim,
      spec.style === 'interleaved' ? 1 : 0,
      spec.scale ?? 1,
    ]);
    return x;
  }

  // ───────────────────────────── norms and elementwise ─────────────────────────────

  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    return this.groupNorm(x, (x as CudaTensor).cols, spec, weight, bias);
  }

  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CudaTensor;
    const w = weight as CudaTensor | undefined;
    const b = bias as CudaTensor | undefined;
    if (width <= 0 || a.length % width !== 0) fail('norm', `${a.length} elements do not split into groups of ${width}`);
    if (w !== undefined && w.length !== width) fail('norm', `weight has ${w.length} elements, the groups ${width}`);
    if (b !== undefined && b.length !== width) fail('norm', `bias has ${b.length} elements, the groups ${width}`);
    const y = this.tensor(a.shape);
    this.launch('tp_norm', [a.length / width], Math.min(256, 32 * Math.ceil(width / 32)), [
      y.ptr,
      a.ptr,
      w?.ptr ?? 0,
      DTYPE_CODE[w?.dtype ?? 'f32'],
      b?.ptr ?? 0,
      DTYPE_CODE[b?.dtype ?? 'f32'],
      width,
      spec.kind === 'layer' ? 1 : 0,
      spec.eps,
      spec.plusOne ? 1 : 0,
    ]);
    return y;
  }

  private checkF32(op: string, ...ts: CudaTensor[]): void {
    for (const t of ts) if (t.dtype !== 'f32') fail(op, `expects f32 tensors, not ${t.dtype}`);
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const x = a as CudaTensor;
    const y = this.tensor(x.shape);
    return this.addInto(y, x, b as CudaTensor, 'add');
  }

  addInPlace(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    return this.addInto(a as CudaTensor, a as CudaTensor, b as CudaTensor, 'addInPlace');
  }

  private addInto(y: CudaTensor, a: CudaTensor, b: CudaTensor, op: string): CudaTensor {
    this.checkF32(op, a, b);
    // b is a's shape, or one row broadcast over a's rows: [cols] or [1, cols] (BART's final_logits_bias).
    const oneRow = b.shape.length === 1 || (b.shape.length === 2 && b.shape[0] === 1);
    if (b.length !== a.length && (!oneRow || b.length !== a.cols)) fail(op, `cannot add ${shapeText(b.shape)} to ${shapeText(a.shape)}`);
    this.launch('tp_add', [this.blocks(a.length)], 256, [y.ptr, a.ptr, b.ptr, a.length, Math.max(1, b.length)]);
    return y;
  }

  private unary(x: CudaTensor, y: CudaTensor, op: number, param: number, name: string): CudaTensor {
    this.checkF32(name, x);
    this.launch('tp_unary', [this.blocks(x.length)], 256, [y.ptr, x.ptr, x.length, op, param]);
    return y;
  }

  scale(x: DeviceTensor, s: number): DeviceTensor {
    const a = x as CudaTensor;
    return this.unary(a, this.tensor(a.shape), UNARY_SCALE, s, 'scale');
  }

  clamp(x: DeviceTensor, limit: number): DeviceTensor {
    const a = x as CudaTensor;
    return this.unary(a, a, UNARY_CLAMP, limit, 'clamp');
  }

  activation(x: DeviceTensor, kind: Activation): DeviceTensor {
    const a = x as CudaTensor;
    return this.unary(a, this.tensor(a.shape), ACTIVATION_CODE[kind], 0, `activation ${kind}`);
  }

  sigmoid(x: DeviceTensor): DeviceTensor {
    const a = x as CudaTensor;
    return this.unary(a, this.tensor(a.shape), ACTIVATION_CODE.sigmoid, 0, 'sigmoid');
  }

  gated(gate: DeviceTensor, up: DeviceTensor | undefined, kind: Activation): DeviceTensor {
    const g = gate as CudaTensor;
    const code = ACTIVATION_CODE[kind];
    if (up === undefined) {
      if (g.cols % 2 !== 0) fail('gated', `a [gate | up] tensor needs an even width, not ${g.cols}`);
      const cols = g.cols / 2;
      const y = this.tensor([g.rows, cols]);
      this.launch('tp_gated', [this.blocks(g.rows * cols)], 256, [y.ptr, g.ptr, g.ptr + cols * 4, g.rows, cols, 2 * cols, code]);
      return y;
    }
    const u = up as CudaTensor;
    this.checkF32('gated', g, u);
    if (u.length !== g.length) fail('gated', `gate ${shapeText(g.shape)} and up ${shapeText(u.shape)} differ`);
    const y = this.tensor(g.shape);
    this.launch('tp_gated', [this.blocks(g.length)], 256, [y.ptr, g.ptr, u.ptr, g.rows, g.cols, g.cols, code]);
    return y;
  }

  // ───────────────────────────── layout ─────────────────────────────

  sliceColumns(x: DeviceTensor, start: number, end: number): DeviceTensor {
    return this.gatherColumns(x, [[start, end]]);
  }

  gatherColumns(x: DeviceTensor, ranges: ReadonlyArray<readonly [number, number]>): DeviceTensor {
    const a = x as CudaTensor;
    if (a.dtype !== 'f32' && a.dtype !== 'i32') fail('gatherColumns', `expects f32 or i32, not ${a.dtype}`);
    for (const [s, e] of ranges) if (s < 0 || e > a.cols || s > e) fail('gatherColumns', `columns [${s}, ${e}) are outside [0, ${a.cols})`);
    const width = ranges.reduce((n, [s, e]) => n + e - s, 0);
    const rows = a.rows;
    const y = this.tensor(a.shape.length <= 1 ? [width] : [...a.shape.slice(0, -1), width], a.dtype);
    let at = 0;
    for (const [s, e] of ranges) {
      this.copyColumns(y.ptr, width, at, a.ptr, a.cols, s, rows, e - s);
      at += e - s;
    }
    return y;
  }

  /** dst[r, dstOffset + c] = src[r, srcOffset + c], 4-byte elements. */
  copyColumns(dst: Handle, dstCols: number, dstOffset: number, src: Handle, srcCols: number, srcOffset: number, rows: number, width: number): void {
    if (rows * width === 0) return;
    this.launch('tp_copy_columns', [this.blocks(rows * width)], 256, [dst, dstCols, dstOffset, src, srcCols, srcOffset, rows, width]);
  }

  gatherRows(x: DeviceTensor, rows: DeviceTensor): DeviceTensor {
    const a = x as CudaTensor;
    const r = rows as CudaTensor;
    const y = this.tensor([r.length, a.cols]);
    this.launch('tp_gather_rows', [this.blocks(r.length * a.cols)], 256, [y.ptr, a.ptr, r.ptr, r.length, a.cols]);
    return y;
  }

  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: DeviceTensor, weights: DeviceTensor): DeviceTensor {
    const t = target as CudaTensor;
    const s = src as CudaTensor;
    const r = rows as CudaTensor;
    if (s.cols !== t.cols) fail('scatterAddRows', `source ${shapeText(s.shape)} and target ${shapeText(t.shape)} differ in width`);
    this.launch('tp_scatter_add_rows', [this.blocks(r.length * t.cols)], 256, [t.ptr, s.ptr, r.ptr, (weights as CudaTensor).ptr, r.length, t.cols]);
    return target;
  }

  // ───────────────────────────── selection and routing ─────────────────────────────

  argmax(x: DeviceTensor): DeviceTensor {
    const a = x as CudaTensor;
    const y = this.tensor([a.rows], 'i32');
    this.launch('tp_argmax', [a.rows], a.cols > 4096 ? 1024 : 256, [y.ptr, a.ptr, a.cols]);
    return y;
  }

  topk(x: DeviceTensor, k: number): { values: DeviceTensor; indices: DeviceTensor } {
    const a = x as CudaTensor;
    if (k < 1 || k > a.cols) fail('topk', `k ${k} is outside [1, ${a.cols}]`);
    const values = this.tensor([a.rows, k]);
    const indices = this.tensor([a.rows, k], 'i32');
    this.launch('tp_topk', [a.rows], a.cols > 4096 ? 1024 : 256, [values.ptr, indices.ptr, a.ptr, a.cols, k]);
    return { values, indices };
  }

  route(logits: DeviceTensor, topK: number, normalize: boolean): Routing {
    const a = logits as CudaTensor;
    if (topK < 1 || topK > a.cols) fail('route', `top ${topK} of ${a.cols} experts`);
    const experts = this.tensor([a.rows, topK], 'i32');
    const weights = this.tensor([a.rows, topK]);
    this.launch('tp_route', [Math.ceil(a.rows / 128)], 128, [experts.ptr, weights.ptr, a.ptr, a.rows, a.cols, topK, normalize ? 1 : 0]);
    return { experts, weights };
  }

  /** Every row, with weight 0 where not routed to `e` (no host round trip to count them). */
  expertRows(x: DeviceTensor, routing: Routing, e: number): ExpertRows {
    const a = x as CudaTensor;
    const ex = routing.experts as CudaTensor;
    const rows = a.rows;
    const weights = this.tensor([rows]);
    const ids = this.tensor([rows], 'i32');
    this.launch('tp_expert_weights', [Math.ceil(rows / 128)], 128, [weights.ptr, ids.ptr, ex.ptr, (routing.weights as CudaTensor).ptr, rows, ex.cols, e]);
    return { x, rows: ids, weights };
  }

  // ───────────────────────────── KV cache and attention ─────────────────────────────

  createKvCache(batch: number, kvHeads: number, headDim: number, valueDim: number, dtype: StorageDtype): KvCache {
    if (!(['f32', 'f16', 'bf16'] as const).includes(dtype)) fail('createKvCache', `a KV cache cannot be ${dtype}`);
    const cache = new CudaKvCache(batch, kvHeads, headDim, valueDim, dtype);
    this.caches.add(cache);
    return cache;
  }

  freeKvCache(cache: KvCache): void {
    const c = cache as CudaKvCache;
    if (c.k) this.release(c.k);
    if (c.v) this.release(c.v);
    c.k = c.v = 0;
    c.capacity = c.length = 0;
    this.caches.delete(c);
  }

  /** Grow `cache` to hold `slots` (by at least half, in 64-slot chunks), keeping what it holds. */
  private ensureCapacity(c: CudaKvCache, slots: number): void {
    if (slots <= c.capacity) return;
    const capacity = Math.ceil(Math.max(slots, Math.ceil(c.capacity * 1.5)) / KV_CHUNK) * KV_CHUNK;
    const es = DEVICE_DTYPE_BYTES[c.dtype];
    for (const [key, width] of [['k', c.kvHeads * c.headDim] as const, ['v', c.kvHeads * c.valueDim] as const]) {
      const next = this.scratch(c.batch * capacity * width * es);
      const old = c[key];
      if (old && c.length > 0) {
        const halves = (c.length * width * es) / 2;
        this.launch('tp_kv_move', [this.blocks(halves), c.batch], 256, [next, old, halves, (c.capacity * width * es) / 2, (capacity * width * es) / 2]);
      }
      if (old) this.release(old);
      c[key] = next;
    }
    c.capacity = capacity;
  }

  private append(c: CudaKvCache, k: CudaTensor, v: CudaTensor, batch: number, rows: number, start: number): void {
    const kw = c.kvHeads * c.headDim;
    const vw = c.kvHeads * c.valueDim;
    if (k.length !== batch * rows * kw) fail('attention', `k ${shapeText(k.shape)} is not [${batch * rows}, ${kw}]`);
    if (v.length !== batch * rows * vw) fail('attention', `v ${shapeText(v.shape)} is not [${batch * rows}, ${vw}]`);
    this.ensureCapacity(c, start + rows);
    const code = DTYPE_CODE[c.dtype];
    this.launch('tp_kv_append', [this.blocks(batch * rows * kw)], 256, [c.k, code, k.ptr, batch, rows, start, c.capacity, kw]);
    this.launch('tp_kv_append', [this.blocks(batch * rows * vw)], 256, [c.v, code, v.ptr, batch, rows, start, c.capacity, vw]);
    c.length = Math.max(c.length, start + rows);
  }

  attention(q: DeviceTensor, k: DeviceTensor | undefined, v: DeviceTensor | undefined, cache: KvCache, step: AttentionStep, spec: AttentionSpec): DeviceTensor {
    const c = cache as CudaKvCache;
    const qt = q as CudaTensor;
    const { batch, rows, start } = step;
    if (spec.kvHeads <= 0 || spec.heads % spec.kvHeads !== 0) fail('attention', `${spec.heads} heads do not share ${spec.kvHeads} kv heads evenly`);
    if (spec.kvHeads !== c.kvHeads || spec.headDim !== c.headDim || spec.valueDim !== c.valueDim) {
      fail('attention', `the cache holds ${c.kvHeads} kv heads of ${c.headDim}/${c.valueDim}, the spec ${spec.kvHeads} of ${spec.headDim}/${spec.valueDim}`);
    }
    if (qt.length !== batch * rows * spec.heads * spec.headDim) fail('attention', `q ${shapeText(qt.shape)} is not [${batch * rows}, ${spec.heads * spec.headDim}]`);
    if (batch !== c.batch) fail('attention', `the step has batch ${batch}, the cache ${c.batch}`);
    if ((k === undefined) !== (v === undefined)) fail('attention', 'k and v come together');
    const mask = step.keyMask as CudaTensor;
    const keys = mask.shape[1] ?? 0;
    // Checked before the append, so that a refused call leaves the cache as it was.
    const variant = attentionVariant(spec, step, { batch, rows, keys, heads: spec.heads, headDim: spec.headDim, valueDim: spec.valueDim });
    if (k && v) this.append(c, k as CudaTensor, v as CudaTensor, batch, rows, start);
    if (keys > c.capacity) fail('attention', `the key mask has ${keys} slots, the cache ${c.capacity}`);
    const out = this.tensor([batch * rows, spec.heads * spec.valueDim]);
    const blocks = spec.heads * batch * rows;
    if (keys === 0 || blocks === 0) {
      this.call(() => this.ctx.fill32(out.ptr, 0, out.length));
      return out;
    }
    const chunk = Math.min(8192, attentionChunk(keys, blocks, this.info.multiprocessors));
    const splits = Math.ceil(keys / chunk);
    const partOut = this.scratch(blocks * splits * spec.valueDim * 4);
    const partMax = this.scratch(blocks * splits * 4);
    const partSum = this.scratch(blocks * splits * 4);
    const shared = (spec.headDim + chunk) * 4 + chunk * variant.sharedPerKey;
    const args = attentionPartialArgs({
      partOut,
      partMax,
      partSum,
      q: qt.ptr,
      kCache: c.k,
      vCache: c.v,
      cacheDtype: DTYPE_CODE[c.dtype],
      keyMask: mask.ptr,
      keyPositions: (step.keyPositions as CudaTensor | undefined)?.ptr ?? 0,
      alibi: (spec.alibi as CudaTensor | undefined)?.ptr ?? 0,
      ...variant.args,
      rows,
      start,
      keys,
      capacity: c.capacity,
      heads: spec.heads,
      kvHeads: spec.kvHeads,
      headDim: spec.headDim,
      valueDim: spec.valueDim,
      scale: spec.scale,
      causal: spec.mask === 'causal' ? 1 : 0,
      alibiScaled: spec.alibiScaled ? 1 : 0,
      window: spec.window ?? 0,
      softcap: spec.softcap ?? 0,
      chunk,
    });
    this.launch(variant.partial, [spec.heads, batch * rows, splits], 128, args, shared);
    this.launch(variant.merge, [blocks], Math.min(256, 32 * Math.ceil(spec.valueDim / 32)), [out.ptr, partOut, partMax, partSum, spec.heads, spec.valueDim, splits]);
    this.release(partOut);
    this.release(partMax);
    this.release(partSum);
    return out;
  }

  reorderKvCache(cache: KvCache, order: DeviceTensor): void {
    const c = cache as CudaKvCache;
    const o = order as CudaTensor;
    if (o.dtype !== 'i32' || o.length !== c.batch) fail('reorderKvCache', `the order must be i32 [${c.batch}], not ${o.dtype} ${shapeText(o.shape)}`);
    const bad = o.hostInts?.find((v) => !Number.isInteger(v) || v < 0 || v >= c.batch);
    if (bad !== undefined) fail('reorderKvCache', `source sequence ${bad} is outside [0, ${c.batch})`);
    if (c.length === 0 || c.capacity === 0) return;
    const es = DEVICE_DTYPE_BYTES[c.dtype];
    for (const [key, width] of [['k', c.kvHeads * c.headDim] as const, ['v', c.kvHeads * c.valueDim] as const]) {
      const next = this.scratch(c.batch * c.capacity * width * es);
      const halves = (c.length * width * es) / 2;
      this.launch('tp_kv_reorder', [this.blocks(halves), c.batch], 256, [next, c[key], o.ptr, halves, (c.capacity * width * es) / 2, c.batch]);
      this.release(c[key]);
      c[key] = next;
    }
  }

  fillKvCache(cache: KvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number): void {
    const c = cache as CudaKvCache;
    this.append(c, k as CudaTensor, v as CudaTensor, batch, rows, 0);
    c.length = rows;
  }

  // ───────────────────────────── end ─────────────────────────────

  async dispose(): Promise<void> {
    if (this.disposed) return;
    let failure: unknown;
    try {
      await this.collective?.dispose();
    } catch (error) {
      failure = error;
    }
    for (const c of [...this.caches]) this.freeKvCache(c);
    this.disposed = true;
    try {
      this.ctx.dispose();
    } catch (error) {
      failure ??= translate(error, { rank: this.rank, device: this.device });
    }
    if (failure !== undefined) throw failure;
  }
}

/** Every kernel the rank may launch, resolved once from the loaded module. */
export function kernelNames(): KernelName[] {
  return Object.keys(KERNELS) as KernelName[];
}
