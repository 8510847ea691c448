/**
 * A CPU rank: tensors in a WebAssembly heap, kernels in TypeScript and WebAssembly SIMD. Weights may
 * be stored as f32, f16 or bf16 (matmul and embedding widen them as they read); activations are f32.
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
import { attentionInputs } from './attention-inputs.js';
import { CpuCollective } from './collective.js';
import { convertHost, widenRow } from './convert.js';
import { Heap } from './heap.js';
import * as js from './kernels/js.js';
import { instantiateKernels, type WasmKernels } from './kernels/wasm.js';
import { CpuTensor } from './tensor.js';

/** Positions a KV cache grows by at least, so a decode step rarely reallocates. */
const KV_CHUNK = 64;

class CpuKvCache implements KvCache {
  capacity = 0;
  length = 0;
  k: CpuTensor | undefined;
  v: CpuTensor | undefined;
  readonly dtype = 'f32' as const;

  constructor(
    readonly batch: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly valueDim: number,
  ) {}
}

const fail = (op: string, detail: string): never => {
  throw new TpError('kernel-invalid', `${op}: ${detail}`);
};

export class CpuRank implements Rank {
  readonly backend = 'cpu';
  readonly rank: number;
  readonly world: number;
  readonly collective: Collective;
  readonly heap = new Heap();
  private readonly wasm: WasmKernels;
  private caches = new Set<CpuKvCache>();

  constructor(init: RankInit) {
    this.rank = init.rank;
    this.world = init.world;
    const comm = init.communicator as HostCollectiveInit;
    if (comm.kind !== 'host') fail('createRank', `the CPU backend communicates through host memory, not "${comm.kind}"`);
    this.collective = new CpuCollective(comm, init.rank, init.world, this.heap, comm.slotFloats);
    this.wasm = instantiateKernels(this.heap.memory);
  }

  private tensor(shape: readonly number[], dtype: DeviceDtype = 'f32'): CpuTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return new CpuTensor(this.heap, this.heap.alloc(n * DEVICE_DTYPE_BYTES[dtype]), shape, dtype);
  }

  beginStep(): void {
    this.heap.beginStep();
  }

  async endStep(keep?: DeviceTensor): Promise<void> {
    if (this.heap.depth === 0) fail('endStep', 'no step is open');
    if (keep !== undefined && this.heap.depth === 1) fail('endStep', 'keep has no enclosing step to go to (it is the outermost step); end a nested step with keep, or end this one without');
    if (this.heap.depth > 1) {
      if (keep !== undefined && !(keep instanceof CpuTensor)) fail('endStep', 'keep is not a tensor of this backend');
      const kept = keep as CpuTensor | undefined;
      const moved = this.heap.endScope(kept && { at: kept.offset, bytes: kept.byteLength });
      if (kept !== undefined && moved !== undefined) kept.offset = moved;
      return;
    }
    // Kernels ran synchronously: the device is done with the step as soon as it ends.
    this.heap.endStep();
  }

  memoryBytes(): number {
    return this.heap.byteLength;
  }

  upload(host: HostTensor, as: DeviceDtype = host.dtype): DeviceTensor {
    const n = host.shape.reduce((a, b) => a * b, 1);
    if (host.bytes.byteLength !== n * DEVICE_DTYPE_BYTES[host.dtype]) {
      fail('upload', `${host.bytes.byteLength} bytes do not hold a ${host.dtype} [${host.shape.join(', ')}] tensor`);
    }
    if ((host.dtype === 'i32') !== (as === 'i32')) fail('upload', `cannot store ${host.dtype} data as ${as}`);
    const t = this.tensor(host.shape, as);
    const out = this.heap.bytes(t.offset, t.byteLength);
    if (as === host.dtype) out.set(host.bytes);
    else convertHost(host.bytes, host.dtype as StorageDtype, out, as as StorageDtype, n);
    return t;
  }

  async download(t: DeviceTensor): Promise<Float32Array | Int32Array> {
    const x = t as CpuTensor;
    if (x.dtype === 'i32') return x.ints().slice();
    if (x.dtype === 'f32') return x.data().slice();
    const out = new Float32Array(x.length);
    widenRow(x.halves(), 0, out, 0, x.length, x.dtype);
    return out;
  }

  /**
   * Scratch the matmul kernels may overwrite: 72·K bytes (interleaved x rows for the prefill tiles,
   * widened weight rows, a scaled x for f16 decode). One long-lived buffer per rank, grown to the
   * widest K seen, so no step allocates it.
   */
  private matmulScratch(k: number): number {
    const bytes = 72 * k;
    if (bytes > this.scratch.bytes) {
      if (this.scratch.bytes > 0) this.heap.release(this.scratch.at, this.scratch.bytes);
      this.scratch = { at: this.heap.outsideStep(() => this.heap.alloc(bytes)), bytes };
    }
    return this.scratch.at;
  }

  private scratch = { at: 0, bytes: 0 };

  /** The elements as f32: a view of an f32 tensor, a widened copy of a half one (small vectors). */
  private widened(t: DeviceTensor): Float32Array {
    const x = t as CpuTensor;
    if (x.dtype === 'f32') return x.data();
    if (x.dtype === 'i32') fail('widen', 'an i32 tensor is not a float vector');
    const out = new Float32Array(x.length);
    widenRow(x.halves(), 0, out, 0, x.length, x.dtype as 'f16' | 'bf16');
    return out;
  }

  free(t: DeviceTensor): void {
    const x = t as CpuTensor;
    this.heap.release(x.offset, x.byteLength);
  }

  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const b = w as CpuTensor;
    const [n, k] = b.shape as [number, number];
    if (a.dtype !== 'f32') fail('linear', `the input must be f32, not ${a.dtype}`);
    if (a.cols !== k) fail('linear', `input has ${a.cols} features, weight [${n}, ${k}] expects ${k}`);
    if (bias !== undefined && (bias as CpuTensor).length !== n) fail('linear', `bias has ${(bias as CpuTensor).length} elements, the weight ${n} rows`);
    const y = this.tensor([a.rows, n]);
    const bo = (bias as CpuTensor | undefined)?.offset ?? 0;
    const kernel = b.dtype === 'f32' ? this.wasm.matmul_f32 : b.dtype === 'bf16' ? this.wasm.matmul_bf16 : b.dtype === 'f16' ? this.wasm.matmul_f16 : fail('linear', `weights cannot be ${b.dtype}`);
    kernel(a.offset, b.offset, bo, y.offset, a.rows, k, n, this.matmulScratch(k));
    return y;
  }

  embedding(table: DeviceTensor, ids: DeviceTensor, rowOffset = 0, scale = 1): DeviceTensor {
    const t = table as CpuTensor;
    const [rows, width] = t.shape as [number, number];
    const index = (ids as CpuTensor).ints();
    const y = this.tensor([index.length, width]);
    const out = y.data();
    for (let i = 0; i < index.length; i++) {
      const r = index[i]! - rowOffset;
      if (r < 0 || r >= rows) {
        out.fill(0, i * width, (i + 1) * width); // another rank's rows (vocab-parallel): zeros
        continue;
      }
      if (t.dtype === 'f32') out.set(t.data().subarray(r * width, (r + 1) * width), i * width);
      else widenRow(t.halves(), r * width, out, i * width, width, t.dtype as 'f16' | 'bf16');
      if (scale !== 1) for (let c = i * width; c < (i + 1) * width; c++) out[c] = out[c]! * scale;
    }
    return y;
  }

  sinusoidal(positions: DeviceTensor, dim: number, kind: 'fairseq' | 'marian'): DeviceTensor {
    const y = this.tensor([positions.shape[0]!, dim]);
    js.sinusoidal((positions as CpuTensor).ints(), dim, kind, y.data());
    return y;
  }

  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    return this.groupNorm(x, a.cols, spec, weight, bias);
  }

  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    if (a.length % width !== 0) fail('norm', `${a.length} elements do not split into groups of ${width}`);
    if (weight !== undefined && (weight as CpuTensor).length !== width) fail('norm', `weight has ${(weight as CpuTensor).length} elements, the groups ${width}`);
    const y = this.tensor(a.shape);
    js.norm(a.data(), y.data(), a.length / width, width, spec, weight && this.widened(weight), bias && this.widened(bias));
    return y;
  }

  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const x = a as CpuTensor;
    const y = this.tensor(x.shape);
    y.data().set(x.data());
    return this.addInPlace(y, b);
  }

  addInPlace(a: DeviceTensor, b: DeviceTensor): DeviceTensor {
    const x = (a as CpuTensor).data();
    const v = (b as CpuTensor).data();
    if (v.length === x.length) for (let i = 0; i < x.length; i++) x[i]! += v[i]!;
    else if (x.length % v.length === 0 && v.length === (a as CpuTensor).cols) for (let i = 0; i < x.length; i++) x[i]! += v[i % v.length]!;
    else fail('add', `[${b.shape.join(', ')}] does not broadcast onto [${a.shape.join(', ')}]`);
    return a;
  }

  scale(x: DeviceTensor, s: number): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor(a.shape);
    const out = y.data();
    const src = a.data();
    for (let i = 0; i < out.length; i++) out[i] = src[i]! * s;
    return y;
  }

  clamp(x: DeviceTensor, limit: number): DeviceTensor {
    const d = (x as CpuTensor).data();
    for (let i = 0; i < d.length; i++) d[i] = Math.min(limit, Math.max(-limit, d[i]!));
    return x;
  }

  activation(x: DeviceTensor, kind: Activation): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor(a.shape);
    js.activation(a.data(), y.data(), kind);
    return y;
  }

  sigmoid(x: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor(a.shape);
    const out = y.data();
    const src = a.data();
    for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-src[i]!));
    return y;
  }

  gated(gate: DeviceTensor, up: DeviceTensor | undefined, kind: Activation): DeviceTensor {
    const g = gate as CpuTensor;
    const f = js.activationFn(kind);
    if (up === undefined) {
      // one [gate; up] tensor per row: first half gate, second half up
      if (g.cols % 2 !== 0) fail('gated', `a [gate; up] tensor needs an even width, got ${g.cols}`);
      const half = g.cols / 2;
      const y = this.tensor([g.rows, half]);
      const out = y.data();
      const src = g.data();
      for (let r = 0; r < g.rows; r++) for (let i = 0; i < half; i++) out[r * half + i] = f(src[r * g.cols + i]!) * src[r * g.cols + half + i]!;
      return y;
    }
    if ((up as CpuTensor).length !== g.length) fail('gated', `gate [${g.shape.join(', ')}] and up [${up.shape.join(', ')}] differ`);
    const y = this.tensor(g.shape);
    const out = y.data();
    const a = g.data();
    const b = (up as CpuTensor).data();
    for (let i = 0; i < out.length; i++) out[i] = f(a[i]!) * b[i]!;
    return y;
  }

  sliceColumns(x: DeviceTensor, start: number, end: number): DeviceTensor {
    return this.gatherColumns(x, [[start, end]]);
  }

  gatherColumns(x: DeviceTensor, ranges: ReadonlyArray<readonly [number, number]>): DeviceTensor {
    const a = x as CpuTensor;
    for (const [s, e] of ranges) if (!(s >= 0 && e <= a.cols && s <= e)) fail('gatherColumns', `[${s}, ${e}) is outside ${a.cols} columns`);
    const width = ranges.reduce((n, [s, e]) => n + (e - s), 0);
    const y = this.tensor([a.rows, width]);
    const out = y.data();
    const src = a.data();
    for (let r = 0; r < a.rows; r++) {
      let at = r * width;
      for (const [s, e] of ranges) {
        out.set(src.subarray(r * a.cols + s, r * a.cols + e), at);
        at += e - s;
      }
    }
    return y;
  }

  gatherRows(x: DeviceTensor, rows: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const index = (rows as CpuTensor).ints();
    const y = this.tensor([index.length, a.cols]);
    const out = y.data();
    const src = a.data();
    index.forEach((r, i) => {
      if (r < 0 || r >= a.rows) fail('gatherRows', `row ${r} is outside ${a.rows} rows`);
      out.set(src.subarray(r * a.cols, (r + 1) * a.cols), i * a.cols);
    });
    return y;
  }

  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: DeviceTensor, weights: DeviceTensor): DeviceTensor {
    const t = target as CpuTensor;
    const out = t.data();
    const s = (src as CpuTensor).data();
    const index = (rows as CpuTensor).ints();
    const k = (weights as CpuTensor).data();
    const w = t.cols;
    if ((src as CpuTensor).cols !== w) fail('scatterAddRows', `source width ${(src as CpuTensor).cols} differs from the target's ${w}`);
    index.forEach((r, i) => {
      if (r < 0 || r >= t.rows) fail('scatterAddRows', `row ${r} is outside ${t.rows} rows`);
      const weight = k[i]!;
      for (let c = 0; c < w; c++) out[r * w + c]! += weight * s[i * w + c]!;
    });
    return target;
  }

  rotary(x: DeviceTensor, positions: DeviceTensor, spec: RotarySpec): DeviceTensor {
    const a = x as CpuTensor;
    if (a.cols % spec.headDim !== 0) fail('rotary', `${a.cols} features are not whole heads of ${spec.headDim}`);
    js.rotary(a.data(), a.rows, a.cols / spec.headDim, (positions as CpuTensor).ints(), (spec.invFreq as CpuTensor).data(), spec);
    return x;
  }

  argmax(x: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor([a.rows], 'i32');
    const out = y.ints();
    const src = a.data();
    for (let r = 0; r < a.rows; r++) {
      let best = 0;
      for (let i = 1; i < a.cols; i++) if (src[r * a.cols + i]! > src[r * a.cols + best]!) best = i;
      out[r] = best;
    }
    return y;
  }

  topk(x: DeviceTensor, k: number): { values: DeviceTensor; indices: DeviceTensor } {
    const a = x as CpuTensor;
    if (!Number.isInteger(k) || k < 1 || k > a.cols) fail('topk', `k must be in 1..${a.cols}, got ${k}`);
    const values = this.tensor([a.rows, k]);
    const indices = this.tensor([a.rows, k], 'i32');
    const src = a.data();
    const vs = values.data();
    const is = indices.ints();
    for (let r = 0; r < a.rows; r++) {
      const picked = js.topk(src.subarray(r * a.cols, (r + 1) * a.cols), k);
      picked.forEach((i, j) => {
        is[r * k + j] = i;
        vs[r * k + j] = src[r * a.cols + i]!;
      });
    }
    return { values, indices };
  }

  route(logits: DeviceTensor, topK: number, normalize: boolean): Routing {
    const a = logits as CpuTensor;
    const experts = this.tensor([a.rows, topK], 'i32');
    const weights = this.tensor([a.rows, topK]);
    const src = a.data();
    const es = experts.ints();
    const ws = weights.data();
    for (let r = 0; r < a.rows; r++) {
      const row = src.subarray(r * a.cols, (r + 1) * a.cols);
      let max = -Infinity;
      for (const l of row) max = Math.max(max, l);
      let total = 0;
      for (const l of row) total += Math.exp(l - max);
      const top = js.topk(row, topK);
      const norm = normalize ? top.reduce((s, e) => s + Math.exp(row[e]! - max) / total, 0) : 1;
      top.forEach((e, j) => {
        es[r * topK + j] = e;
        ws[r * topK + j] = Math.exp(row[e]! - max) / total / norm;
      });
    }
    return { experts, weights };
  }

  expertRows(x: DeviceTensor, routing: Routing, e: number): ExpertRows {
    const es = (routing.experts as CpuTensor).ints();
    const ws = (routing.weights as CpuTensor).data();
    const topK = routing.experts.shape[1]!;
    const rows: number[] = [];
    const weights: number[] = [];
    for (let i = 0; i < es.length; i++) {
      if (es[i] === e) {
        rows.push(Math.floor(i / topK));
        weights.push(ws[i]!);
      }
    }
    const index = this.tensor([rows.length], 'i32');
    index.ints().set(rows);
    const w = this.tensor([rows.length]);
    w.data().set(weights);
    return { x: this.gatherRows(x, index), rows: index, weights: w };
  }

  createKvCache(batch: number, kvHeads: number, headDim: number, valueDim: number, dtype: StorageDtype): KvCache {
    if (dtype !== 'f32') fail('createKvCache', `the CPU backend keeps its KV cache in f32, not ${dtype} (use --kv-dtype f32)`);
    const cache = new CpuKvCache(batch, kvHeads, headDim, valueDim);
    this.caches.add(cache);
    return cache;
  }

  freeKvCache(cache: KvCache): void {
    const c = cache as CpuKvCache;
    this.caches.delete(c);
    if (c.k) this.free(c.k);
    if (c.v) this.free(c.v);
    c.k = c.v = undefined;
    c.capacity = c.length = 0;
  }

  /**
   * Make room for `slots` positions per sequence: grow by at least half (and a chunk), so the cache
   * costs what the sequence holds and appending is amortised O(1).
   */
  private reserve(c: CpuKvCache, slots: number): void {
    if (slots <= c.capacity) return;
    const capacity = Math.max(slots, Math.ceil((c.capacity * 1.5) / KV_CHUNK) * KV_CHUNK, KV_CHUNK);
    const grow = (old: CpuTensor | undefined, width: number): CpuTensor => {
      // Allocated outside any step arena: a cache outlives the step that grows it.
      const t = this.heap.outsideStep(() => this.tensor([c.batch, capacity, width]));
      if (old !== undefined) {
        const src = old.data();
        const dst = t.data();
        for (let b = 0; b < c.batch; b++) dst.set(src.subarray(b * c.capacity * width, (b * c.capacity + c.length) * width), b * capacity * width);
        this.free(old);
      }
      return t;
    };
    c.k = grow(c.k, c.kvHeads * c.headDim);
    c.v = grow(c.v, c.kvHeads * c.valueDim);
    c.capacity = capacity;
  }

  private write(c: CpuKvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number, start: number): void {
    const kw = c.kvHeads * c.headDim;
    const vw = c.kvHeads * c.valueDim;
    if (batch !== c.batch) fail('attention', `the cache holds ${c.batch} sequences, the step ${batch}`);
    if (k.shape[0] !== batch * rows || (k as CpuTensor).cols !== kw) fail('attention', `keys [${k.shape.join(', ')}] are not [${batch * rows}, ${kw}]`);
    if (v.shape[0] !== batch * rows || (v as CpuTensor).cols !== vw) fail('attention', `values [${v.shape.join(', ')}] are not [${batch * rows}, ${vw}]`);
    this.reserve(c, start + rows);
    const kc = c.k!.data();
    const vc = c.v!.data();
    const kn = (k as CpuTensor).data();
    const vn = (v as CpuTensor).data();
    for (let b = 0; b < batch; b++) {
      kc.set(kn.subarray(b * rows * kw, (b + 1) * rows * kw), (b * c.capacity + start) * kw);
      vc.set(vn.subarray(b * rows * vw, (b + 1) * rows * vw), (b * c.capacity + start) * vw);
    }
    c.length = Math.max(c.length, start + rows);
  }

  fillKvCache(cache: KvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number): void {
    const c = cache as CpuKvCache;
    c.length = 0;
    this.write(c, k, v, batch, rows, 0);
  }

  /**
   * Sequence b takes what sequence order[b] held, in place: only the sources of moved rows are copied
   * aside first (on the host), so a beam step that keeps most beams copies little.
   */
  reorderKvCache(cache: KvCache, order: DeviceTensor): void {
    const c = cache as CpuKvCache;
    const o = order as CpuTensor;
    if (o.dtype !== 'i32' || o.shape.length !== 1 || o.length !== c.batch) fail('reorderKvCache', `the order [${order.shape.join(', ')}] (${order.dtype}) is not i32 [${c.batch}], one source per sequence of the cache`);
    const src = Array.from(o.ints());
    const bad = src.find((s) => !Number.isInteger(s) || s < 0 || s >= c.batch);
    if (bad !== undefined) fail('reorderKvCache', `source sequence ${bad} is outside the cache's ${c.batch} sequences`);
    if (c.length === 0 || src.every((s, b) => s === b)) return;
    for (const [t, width] of [
      [c.k!, c.kvHeads * c.headDim],
      [c.v!, c.kvHeads * c.valueDim],
    ] as const) {
      const data = t.data();
      const rowFloats = c.length * width;
      const saved = new Map<number, Float32Array>();
      for (let b = 0; b < c.batch; b++) {
        const s = src[b]!;
        if (s !== b && !saved.has(s)) saved.set(s, data.slice(s * c.capacity * width, s * c.capacity * width + rowFloats));
      }
      for (let b = 0; b < c.batch; b++) if (src[b] !== b) data.set(saved.get(src[b]!)!, b * c.capacity * width);
    }
  }

  attention(q: DeviceTensor, k: DeviceTensor | undefined, v: DeviceTensor | undefined, cache: KvCache, step: AttentionStep, spec: AttentionSpec): DeviceTensor {
    const c = cache as CpuKvCache;
    const { batch, rows, start } = step;
    const { heads, kvHeads, headDim, valueDim } = spec;
    if (kvHeads < 1 || heads % kvHeads !== 0) fail('attention', `${heads} query heads cannot share ${kvHeads} kv heads`);
    if (kvHeads !== c.kvHeads || headDim !== c.headDim || valueDim !== c.valueDim) fail('attention', 'the spec does not match the cache it reads');
    if (q.shape[0] !== batch * rows || (q as CpuTensor).cols !== heads * headDim) fail('attention', `queries [${q.shape.join(', ')}] are not [${batch * rows}, ${heads * headDim}]`);
    if ((k === undefined) !== (v === undefined)) fail('attention', 'keys and values come together');
    const keys = step.keyMask.shape[1]!;
    if (spec.alibi !== undefined && step.keyPositions === undefined) fail('attention', 'ALiBi needs key positions');
    const extra = attentionInputs(step, spec, keys); // before the append: bad input leaves the cache as it was
    if (k !== undefined) this.write(c, k, v!, batch, rows, start);
    if (step.keyMask.shape[0] !== batch || keys > c.length) fail('attention', `the key mask [${step.keyMask.shape.join(', ')}] does not fit ${batch} sequences of ${c.length} cached keys`);
    // Allocate before taking views: growing the heap detaches them.
    const out = this.tensor([batch * rows, heads * valueDim]);
    const scores = this.heap.alloc(heads * keys * 4);
    const mask = (step.keyMask as CpuTensor).ints();
    const positions = step.keyPositions ? (step.keyPositions as CpuTensor).ints() : undefined;
    const bias = extra.bias?.tensor.data();
    const scoreSpec: js.ScoreSpec = { ...spec, alibi: spec.alibi ? (spec.alibi as CpuTensor).data() : undefined };
    // Per query row: q·k for every visible slot (WebAssembly), the relative terms when asked
    // (WebAssembly), the mask and softmax or expectation weights (TypeScript), then the weighted sum
    // of values (WebAssembly) and of relative values.
    const group = heads / kvHeads;
    const kw = kvHeads * headDim;
    const vw = kvHeads * valueDim;
    const qt = q as CpuTensor;
    const rel = extra.relative;
    const bits = extra.expectationBits;
    const biasPerSequence = extra.bias?.perSequence ? heads * rows * keys : 0;
    const qNorms = bits === undefined ? undefined : new Float64Array(heads);
    const kNorms = bits === undefined ? undefined : new Float64Array(kvHeads * keys);
    for (let b = 0; b < batch; b++) {
      const query: js.QueryKeys = {
        mask: mask.subarray(b * keys, (b + 1) * keys),
        positions: positions?.subarray(b * keys, (b + 1) * keys),
        bias: biasPerSequence === 0 ? bias : bias!.subarray(b * biasPerSequence, (b + 1) * biasPerSequence),
        biasRow: 0,
        biasRows: rows,
      };
      const kSequence = c.k!.offset + b * c.capacity * kw * 4;
      if (kNorms !== undefined) for (let h = 0; h < kvHeads; h++) js.norms(c.k!.data(), b * c.capacity * kw + h * headDim, kw, headDim, keys, kNorms, h * keys);
      for (let t = 0; t < rows; t++) {
        const row = b * rows + t;
        const n = spec.mask === 'causal' ? Math.min(start + t + 1, keys) : keys;
        query.biasRow = t;
        if (n === 0) {
          out.data().fill(0, row * heads * valueDim, (row + 1) * heads * valueDim);
          continue;
        }
        const qRow = qt.offset + row * heads * headDim * 4;
        this.wasm.attn_scores(qRow, kSequence, scores, heads, group, headDim, n, kw * 4);
        const index = rel === undefined ? 0 : rel.index + t * keys * 4;
        if (rel?.keys) this.wasm.attn_rel_scores(qRow, 1, 0, rel.keys.at, index, rel.keys.rowBytes, rel.keys.headBytes, scores, heads, headDim, n);
        if (rel?.queries) this.wasm.attn_rel_scores(kSequence, group, kw * 4, rel.queries.at, index, rel.queries.rowBytes, rel.queries.headBytes, scores, heads, headDim, n);
        const weights = this.heap.floats(scores, heads * n);
        if (bits === undefined) js.softmaxScores(weights, heads, n, start + t, query, scoreSpec);
        else {
          js.norms(qt.data(), row * heads * headDim, headDim, headDim, heads, qNorms!);
          js.expectationScores(weights, heads, group, n, start + t, query, scoreSpec, qNorms!, kNorms!, bits);
        }
        const outRow = out.offset + row * heads * valueDim * 4;
        this.wasm.attn_mix(scores, c.v!.offset + b * c.capacity * vw * 4, outRow, heads, group, valueDim, n, vw * 4);
        if (rel?.values) this.wasm.attn_rel_mix(scores, rel.values.at, index, rel.values.rowBytes, rel.values.headBytes, outRow, heads, valueDim, n);
        if (bits !== undefined) js.normalizeGroups(this.heap.floats(outRow, heads * valueDim), valueDim);
      }
    }
    return out;
  }

  async dispose(): Promise<void> {
    for (const c of this.caches) this.freeKvCache(c);
    this.caches.clear();
  }
}
