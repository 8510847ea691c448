/** A CPU rank: tensors in a WebAssembly heap, kernels in TypeScript and WebAssembly SIMD. */
import type { Activation, AttentionSpec, Collective, DeviceDtype, DeviceTensor, KvCache, NormSpec, Rank, RankInit, RotarySpec } from '@tp/core';
import { CpuCollective } from './collective.js';
import { Heap } from './heap.js';
import * as js from './kernels/js.js';
import { instantiateKernels, type WasmKernels } from './kernels/wasm.js';
import { CpuTensor } from './tensor.js';

class CpuKvCache implements KvCache {
  constructor(
    readonly batch: number,
    readonly capacity: number,
    readonly k: CpuTensor,
    readonly v: CpuTensor,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly valueDim: number,
  ) {}
}

const SLOT_FLOATS = 1 << 16;

export class CpuRank implements Rank {
  readonly backend = 'cpu';
  readonly rank: number;
  readonly world: number;
  readonly collective: Collective;
  readonly heap = new Heap();
  private readonly wasm: WasmKernels;
  private caches: CpuKvCache[] = [];

  constructor(init: RankInit) {
    this.rank = init.rank;
    this.world = init.world;
    this.collective = new CpuCollective(init.collective, init.rank, init.world, this.heap, init.collective.slotFloats ?? SLOT_FLOATS);
    this.wasm = instantiateKernels(this.heap.memory);
  }

  private tensor(shape: readonly number[]): CpuTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return new CpuTensor(this.heap, this.heap.alloc(n * 4), shape);
  }

  beginStep(): void {
    this.heap.beginStep();
  }

  endStep(): void {
    this.heap.endStep();
  }

  memoryBytes(): number {
    return this.heap.byteLength;
  }

  upload(data: Float32Array, shape: readonly number[], dtype: DeviceDtype = 'f32'): DeviceTensor {
    if (dtype !== 'f32') throw new Error(`the CPU backend stores f32, not ${dtype}`);
    const t = this.tensor(shape);
    t.data().set(data);
    return t;
  }

  async download(t: DeviceTensor): Promise<Float32Array> {
    return (t as CpuTensor).data().slice();
  }

  free(t: DeviceTensor): void {
    const x = t as CpuTensor;
    this.heap.release(x.offset, x.length * 4);
  }

  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const b = w as CpuTensor;
    const [n, k] = b.shape as [number, number];
    if (a.cols !== k) throw new Error(`linear: input has ${a.cols} features, weight [${n}, ${k}] expects ${k}`);
    const y = this.tensor([a.rows, n]);
    this.wasm.matmul(a.offset, b.offset, (bias as CpuTensor | undefined)?.offset ?? 0, y.offset, a.rows, k, n);
    return y;
  }

  embedding(table: DeviceTensor, ids: Int32Array, rowOffset = 0, scale = 1): DeviceTensor {
    const t = table as CpuTensor;
    const [rows, width] = t.shape as [number, number];
    const y = this.tensor([ids.length, width]);
    const out = y.data();
    const src = t.data();
    for (let i = 0; i < ids.length; i++) {
      const r = ids[i]! - rowOffset;
      if (r < 0 || r >= rows) {
        out.fill(0, i * width, (i + 1) * width); // another rank's rows (vocab-parallel): zeros
        continue;
      }
      for (let c = 0; c < width; c++) out[i * width + c] = src[r * width + c]! * scale;
    }
    return y;
  }

  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor(a.shape);
    js.norm(a.data(), y.data(), a.rows, a.cols, spec, (weight as CpuTensor | undefined)?.data(), (bias as CpuTensor | undefined)?.data());
    return y;
  }

  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor(a.shape);
    js.norm(a.data(), y.data(), a.length / width, width, spec, (weight as CpuTensor | undefined)?.data(), (bias as CpuTensor | undefined)?.data());
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
    else for (let i = 0; i < x.length; i++) x[i]! += v[i % v.length]!;
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

  gated(gate: DeviceTensor, up: DeviceTensor | undefined, kind: Activation): DeviceTensor {
    const g = gate as CpuTensor;
    const f = js.activationFn(kind);
    if (up === undefined) {
      // one [gate; up] tensor per row: first half gate, second half up
      const half = g.cols / 2;
      const y = this.tensor([g.rows, half]);
      const out = y.data();
      const src = g.data();
      for (let r = 0; r < g.rows; r++) for (let i = 0; i < half; i++) out[r * half + i] = f(src[r * g.cols + i]!) * src[r * g.cols + half + i]!;
      return y;
    }
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

  gatherRows(x: DeviceTensor, rows: Int32Array): DeviceTensor {
    const a = x as CpuTensor;
    const y = this.tensor([rows.length, a.cols]);
    const out = y.data();
    const src = a.data();
    rows.forEach((r, i) => out.set(src.subarray(r * a.cols, (r + 1) * a.cols), i * a.cols));
    return y;
  }

  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: Int32Array, weights: Float32Array): DeviceTensor {
    const t = target as CpuTensor;
    const out = t.data();
    const s = (src as CpuTensor).data();
    const w = t.cols;
    rows.forEach((r, i) => {
      const k = weights[i]!;
      for (let c = 0; c < w; c++) out[r * w + c]! += k * s[i * w + c]!;
    });
    return target;
  }

  rotary(x: DeviceTensor, positions: Int32Array, spec: RotarySpec): DeviceTensor {
    const a = x as CpuTensor;
    js.rotary(a.data(), a.rows, a.cols / spec.headDim, positions, spec);
    return x;
  }

  createKvCache(batch: number, capacity: number, kvHeads: number, headDim: number, valueDim: number): KvCache {
    const k = this.tensor([batch, capacity, kvHeads, headDim]);
    const v = this.tensor([batch, capacity, kvHeads, valueDim]);
    const cache = new CpuKvCache(batch, capacity, k, v, kvHeads, headDim, valueDim);
    this.caches.push(cache);
    return cache;
  }

  freeKvCache(cache: KvCache): void {
    const c = cache as CpuKvCache;
    this.caches = this.caches.filter((x) => x !== c);
    this.free(c.k);
    this.free(c.v);
  }

  attention(
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    cache: KvCache,
    step: { batch: number; rows: number; start: number; keyMask: Uint8Array; keyPositions: Int32Array },
    spec: AttentionSpec,
  ): DeviceTensor {
    const c = cache as CpuKvCache;
    const { batch, rows, start } = step;
    const out = this.tensor([batch * rows, spec.heads * spec.valueDim]);
    // append the new keys and values at slots [start, start + rows)
    const kc = c.k.data();
    const vc = c.v.data();
    const kn = (k as CpuTensor).data();
    const vn = (v as CpuTensor).data();
    const kw = c.kvHeads * c.headDim;
    const vw = c.kvHeads * c.valueDim;
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < rows; t++) {
        kc.set(kn.subarray((b * rows + t) * kw, (b * rows + t + 1) * kw), (b * c.capacity + start + t) * kw);
        vc.set(vn.subarray((b * rows + t) * vw, (b * rows + t + 1) * vw), (b * c.capacity + start + t) * vw);
      }
    }
    // Per query row: q·k for every visible slot (WebAssembly), the mask and softmax (TypeScript), then
    // the weighted sum of values (WebAssembly).
    const { heads, kvHeads, headDim, valueDim } = spec;
    const group = heads / kvHeads;
    const longest = start + rows;
    const scores = this.heap.alloc(heads * longest * 4);
    const qt = q as CpuTensor;
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < rows; t++) {
        const row = b * rows + t;
        const n = start + t + 1;
        this.wasm.attn_scores(qt.offset + row * heads * headDim * 4, c.k.offset + b * c.capacity * kw * 4, scores, heads, group, headDim, n, kw * 4);
        js.softmaxScores(this.heap.floats(scores, heads * n), heads, n, start + t, step.keyMask, b * c.capacity, step.keyPositions, spec);
        this.wasm.attn_mix(scores, c.v.offset + b * c.capacity * vw * 4, out.offset + row * heads * valueDim * 4, heads, group, valueDim, n, vw * 4);
      }
    }
    return out;
  }

  dispose(): void {
    this.caches = [];
  }
}
