/**
 * Reference implementations of every `Rank` kernel on host arrays, written for clarity, not speed:
 * plain loops, f64 accumulation, no tiling. The conformance suite compares each backend against these;
 * they are deliberately independent of any backend's code (the CPU backend's TypeScript kernels
 * included), and packages/core/test/testing/reference.test.ts checks them against hand-computed values.
 *
 * Layouts follow the backend interface: activations row-major [rows, features], weights [out, in],
 * KV caches as [batch, slots, kvHeads · width]. Inputs are any array of numbers; outputs Float64Array
 * (Int32Array for indices).
 */
import type { Activation, NormSpec, StorageDtype } from '../backend/index.js';

type Numbers = ArrayLike<number>;

// ───────────────────────────── storage dtypes ─────────────────────────────

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The nearest bf16 value (round to nearest, ties to even) of `x` taken as an f32, as a number. */
export function roundBf16(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  if (Number.isNaN(scratchF32[0]!)) return Number.NaN;
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
  scratchU32[0] = (rounded << 16) >>> 0;
  return scratchF32[0]!;
}

/** The bf16 bit pattern (round to nearest, ties to even) of `x` taken as an f32. */
export function bf16Bits(x: number): number {
  scratchF32[0] = roundBf16(x);
  return scratchU32[0]! >>> 16;
}

/** floor(log2(a)) for a finite a > 0, exactly (Math.log2 can be off by one next to powers of two). */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

/** Round half to even of a double (used on values already scaled to the target's quantum). */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The nearest f16 value (ties to even; ±Infinity past the largest finite f16) of `x` taken as an f32. */
export function roundF16(x: number): number {
  const v = Math.fround(x);
  if (Number.isNaN(v) || v === 0 || !Number.isFinite(v)) return v;
  const a = Math.abs(v);
  const sign = v < 0 ? -1 : 1;
  if (a >= 65520) return sign * Infinity; // halfway between 65504 and 2^16 rounds to even: 2^16 = overflow
  const e = Math.max(exponentOf(a), -14);
  const quantum = 2 ** (e - 10);
  return sign * roundHalfEven(a / quantum) * quantum;
}

/** The f16 bit pattern of `x` (rounded as roundF16). */
export function f16Bits(x: number): number {
  const r = roundF16(x);
  if (Number.isNaN(r)) return 0x7e00;
  const sign = r < 0 || Object.is(r, -0) ? 0x8000 : 0;
  const a = Math.abs(r);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | (a / 2 ** -24); // subnormal
  const e = exponentOf(a);
  return sign | ((e + 15) << 10) | (a / 2 ** e * 1024 - 1024);
}

/** The value of an f16 bit pattern. */
export function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** The value of a bf16 bit pattern. */
export function bf16Value(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/** `values` rounded to what `dtype` stores (f32: Math.fround), as f32. */
export function roundToDtype(values: Numbers, dtype: StorageDtype): Float32Array {
  const round = dtype === 'f32' ? Math.fround : dtype === 'f16' ? roundF16 : roundBf16;
  return Float32Array.from({ length: values.length }, (_, i) => round(values[i]!));
}

/** Little-endian bytes of `values` stored as `dtype` (rounded to nearest even). */
export function encodeDtype(values: Numbers, dtype: StorageDtype): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(Float32Array.from(values).buffer);
  const bits = dtype === 'f16' ? f16Bits : bf16Bits;
  const out = new Uint8Array(values.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, bits(values[i]!), true);
  return out;
}

// ───────────────────────────── scalar functions ─────────────────────────────

/** erf(x) to ~1e-15: Maclaurin series below 3, the erfc continued fraction above. */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  if (x === 0) return 0;
  if (x < 3) {
    // erf(x) = 2/√π · Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-18) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (x > 6) return 1;
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  let tail = 0;
  for (let n = 100; n >= 1; n--) tail = n / 2 / (x + tail);
  return 1 - Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + tail);
}

export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

export function activationOf(kind: Activation): (x: number) => number {
  switch (kind) {
    case 'silu':
      return (x) => x * sigmoid(x);
    case 'gelu':
      return (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh':
      return (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    case 'relu':
      return (x) => (x > 0 ? x : 0);
    case 'gelu_quick':
      return (x) => x * sigmoid(1.702 * x);
    case 'identity':
      return (x) => x;
  }
}

// ───────────────────────────── kernels ─────────────────────────────

/** y[m, n] = Σ_k x[m, k] · w[n, k] (+ bias[n]); x [M, K], w [N, K]. */
export function linear(x: Numbers, w: Numbers, bias: Numbers | undefined, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      y[m * N + n] = s + (bias ? bias[n]! : 0);
    }
  }
  return y;
}

/** Rows `id - rowOffset` of table [rows, dim] times `scale`; zeros for ids outside the table. */
export function embedding(table: Numbers, rows: number, dim: number, ids: Numbers, rowOffset = 0, scale = 1): Float64Array {
  const y = new Float64Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) {
    const r = ids[i]! - rowOffset;
    if (r < 0 || r >= rows) continue;
    for (let c = 0; c < dim; c++) y[i * dim + c] = table[r * dim + c]! * scale;
  }
  return y;
}

/**
 * Sinusoidal position rows [sin | cos] (half = dim/2 frequencies f_i each).
 * - `fairseq` (XGLM, M2M100): f_i = exp(-ln(10000)·i/(half-1)); torch computes the frequencies and the
 *   angles p·f_i in f32, so both are rounded to f32 here.
 * - `marian` (Marian, Pegasus): f_i = 10000^(-2i/dim); transformers builds the table in f64 (numpy).
 */
export function sinusoidal(positions: Numbers, dim: number, kind: 'fairseq' | 'marian'): Float64Array {
  const half = dim / 2;
  const y = new Float64Array(positions.length * dim);
  for (let r = 0; r < positions.length; r++) {
    const p = positions[r]!;
    for (let i = 0; i < half; i++) {
      const angle = kind === 'fairseq' ? Math.fround(p * Math.fround(Math.exp((-Math.log(10000) * i) / (half - 1)))) : p / 10000 ** ((2 * i) / dim);
      y[r * dim + i] = Math.sin(angle);
      y[r * dim + half + i] = Math.cos(angle);
    }
  }
  return y;
}

/**
 * Norm of each `width`-wide group of x (rows = x.length / width): RMS x / √(mean x² + eps), or layer
 * (x - mean) / √(var + eps) with the biased variance; then · weight (· (1 + weight) with plusOne), + bias.
 * weight and bias have `width` elements.
 */
export function norm(x: Numbers, width: number, spec: NormSpec, weight?: Numbers, bias?: Numbers): Float64Array {
  const rows = x.length / width;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let mean = 0;
    if (spec.kind === 'layer') {
      for (let i = 0; i < width; i++) mean += x[o + i]!;
      mean /= width;
    }
    let sq = 0;
    for (let i = 0; i < width; i++) sq += (x[o + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / width + spec.eps);
    for (let i = 0; i < width; i++) {
      let v = (x[o + i]! - mean) * inv;
      if (weight) v *= spec.plusOne ? 1 + weight[i]! : weight[i]!;
      if (bias) v += bias[i]!;
      y[o + i] = v;
    }
  }
  return y;
}

/** a + b, b broadcast over rows when it is shorter (1-D [cols]). */
export function add(a: Numbers, b: Numbers): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => a[i]! + b[i % b.length]!);
}

export function scale(x: Numbers, s: number): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => x[i]! * s);
}

export function clamp(x: Numbers, limit: number): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => Math.min(limit, Math.max(-limit, x[i]!)));
}

export function activation(x: Numbers, kind: Activation): Float64Array {
  const f = activationOf(kind);
  return Float64Array.from({ length: x.length }, (_, i) => f(x[i]!));
}

export function sigmoidAll(x: Numbers): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => sigmoid(x[i]!));
}

/** act(gate) ⊙ up, both [rows, cols]. */
export function gated(gate: Numbers, up: Numbers, kind: Activation): Float64Array {
  const f = activationOf(kind);
  return Float64Array.from({ length: gate.length }, (_, i) => f(gate[i]!) * up[i]!);
}

/** act(gate) ⊙ up of one [rows, 2·cols] tensor whose rows are [gate | up]. */
export function gatedFused(gateUp: Numbers, rows: number, kind: Activation): Float64Array {
  const width = gateUp.length / rows;
  const half = width / 2;
  const f = activationOf(kind);
  const y = new Float64Array(rows * half);
  for (let r = 0; r < rows; r++) for (let i = 0; i < half; i++) y[r * half + i] = f(gateUp[r * width + i]!) * gateUp[r * width + half + i]!;
  return y;
}

/** The column ranges [start, end) of x [rows, cols], concatenated per row. */
export function gatherColumns(x: Numbers, cols: number, ranges: ReadonlyArray<readonly [number, number]>): Float64Array {
  const rows = x.length / cols;
  const out: number[] = [];
  for (let r = 0; r < rows; r++) for (const [s, e] of ranges) for (let c = s; c < e; c++) out.push(x[r * cols + c]!);
  return Float64Array.from(out);
}

/** Rows `rows` of x [*, cols], in order. */
export function gatherRows(x: Numbers, cols: number, rows: Numbers): Float64Array {
  const y = new Float64Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) for (let c = 0; c < cols; c++) y[i * cols + c] = x[rows[i]! * cols + c]!;
  return y;
}

/** A copy of target with target[rows[i]] += weights[i] · src[i]. */
export function scatterAddRows(target: Numbers, cols: number, src: Numbers, rows: Numbers, weights: Numbers): Float64Array {
  const y = Float64Array.from(target);
  for (let i = 0; i < rows.length; i++) for (let c = 0; c < cols; c++) y[rows[i]! * cols + c]! += weights[i]! * src[i * cols + c]!;
  return y;
}

export interface RotaryReference {
  headDim: number;
  rotaryDim: number;
  style: 'half' | 'interleaved';
  invFreq: Numbers;
  scale?: number;
}

/**
 * Rotary embedding of x [rows, heads·headDim] at `positions` [rows]: angle = fround(p · invFreq[i]);
 * pairs (i, i + rotaryDim/2) for `half`, (2i, 2i+1) for `interleaved`; cos and sin times `scale`;
 * dimensions from rotaryDim on pass through.
 */
export function rotary(x: Numbers, positions: Numbers, spec: RotaryReference): Float64Array {
  const rows = positions.length;
  const width = x.length / rows;
  const heads = width / spec.headDim;
  const half = spec.rotaryDim / 2;
  const s = spec.scale ?? 1;
  const y = Float64Array.from(x);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const o = r * width + h * spec.headDim;
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(positions[r]! * spec.invFreq[i]!);
        const cos = Math.cos(angle) * s;
        const sin = Math.sin(angle) * s;
        const a = spec.style === 'half' ? o + i : o + 2 * i;
        const b = spec.style === 'half' ? o + i + half : o + 2 * i + 1;
        y[a] = x[a]! * cos - x[b]! * sin;
        y[b] = x[b]! * cos + x[a]! * sin;
      }
    }
  }
  return y;
}

/** Index of the largest value of each row (the first on ties). */
export function argmax(x: Numbers, cols: number): Int32Array {
  const rows = x.length / cols;
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c]! > x[r * cols + best]!) best = c;
    y[r] = best;
  }
  return y;
}

/** The k largest values of each row and their indices, best first, the lower index first on ties. */
export function topk(x: Numbers, cols: number, k: number): { values: Float64Array; indices: Int32Array } {
  const rows = x.length / cols;
  const values = new Float64Array(rows * k);
  const indices = new Int32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: cols }, (_, c) => c).sort((a, b) => x[r * cols + b]! - x[r * cols + a]! || a - b);
    for (let i = 0; i < k; i++) {
      indices[r * k + i] = order[i]!;
      values[r * k + i] = x[r * cols + order[i]!]!;
    }
  }
  return { values, indices };
}

/** Softmax of each row. */
export function softmax(x: Numbers, cols: number): Float64Array {
  const rows = x.length / cols;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[r * cols + c]!);
    let total = 0;
    for (let c = 0; c < cols; c++) total += y[r * cols + c] = Math.exp(x[r * cols + c]! - max);
    for (let c = 0; c < cols; c++) y[r * cols + c]! /= total;
  }
  return y;
}

/** MoE routing: softmax of each row of logits [rows, experts], top k (ties: lower index), renormalised when asked. */
export function route(logits: Numbers, experts: number, topK: number, normalize: boolean): { experts: Int32Array; weights: Float64Array } {
  const probs = softmax(logits, experts);
  const { values, indices } = topk(probs, experts, topK);
  if (normalize) {
    for (let r = 0; r < values.length / topK; r++) {
      let total = 0;
      for (let i = 0; i < topK; i++) total += values[r * topK + i]!;
      for (let i = 0; i < topK; i++) values[r * topK + i]! /= total;
    }
  }
  return { experts: indices, weights: values };
}

/** The rows routed to expert `e` (in row order) and their routing weights. */
export function expertRows(experts: Numbers, weights: Numbers, topK: number, e: number): { rows: number[]; weights: number[] } {
  const rows: number[] = [];
  const w: number[] = [];
  for (let r = 0; r < experts.length / topK; r++) {
    for (let i = 0; i < topK; i++) {
      if (experts[r * topK + i] === e) {
        rows.push(r);
        w.push(weights[r * topK + i]!);
      }
    }
  }
  return { rows, weights: w };
}

export interface AttentionReference {
  /** [batch·rows, heads·headDim] */
  q: Numbers;
  /** [batch, slots, kvHeads·headDim] and [batch, slots, kvHeads·valueDim]: slots ≥ keys. */
  kCache: Numbers;
  vCache: Numbers;
  slots: number;
  batch: number;
  rows: number;
  /** Timeline slot of the first query row. */
  start: number;
  /** Key slots visible (keyMask's width). */
  keys: number;
  /** [batch, keys], 1 for a real token. */
  keyMask: Numbers;
  /** [batch, keys], with ALiBi. */
  keyPositions?: Numbers;
  /**
   * [heads, rows, keys] (one for the batch) or [batch, heads, rows, keys] (one per sequence: told
   * apart by length), added after the soft cap; an entry ≤ -1e30 masks its key.
   */
  bias?: Numbers;
  /** [heads] ALiBi slopes. */
  alibi?: Numbers;
  /** Relative-position tables and their index (see `RelativeReference`). */
  relative?: RelativeReference;
  /** YOSO's expectation scoring with this many bits instead of softmax. */
  expectation?: { bits: number };
  heads: number;
  kvHeads: number;
  headDim: number;
  valueDim: number;
  scale: number;
  mask: 'causal' | 'bidirectional';
  alibiScaled?: boolean;
  window?: number;
  softcap?: number;
}

/**
 * Relative-position tables of `positions` rows, each [positions, heads·width] (a slice per query
 * head) or [positions, width] (shared by every head; told apart by length), width headDim for keys
 * and queries, valueDim for values; `index` [rows, keys] picks the row of each (query row, key slot).
 */
export interface RelativeReference {
  positions: number;
  index: Numbers;
  keys?: Numbers;
  queries?: Numbers;
  values?: Numbers;
}

/** A bias entry at or below this masks its key (AttentionStep.bias). */
const MASKING_BIAS = -1e30;

/**
 * Attention output [batch·rows, heads·valueDim]. Query row t of sequence b (timeline slot start + t)
 * sees slots j < keys with keyMask[b][j] = 1 and, when causal, j ≤ start + t (and j > start + t - window
 * with a window); a bias entry ≤ -1e30 hides its key too. Query head h reads kv head
 * floor(h / (heads / kvHeads)), and relative table rows r = index[t][j].
 *
 * Softmax scoring: dot = q·k + q·keys[r]_h + k·queries[r]_h (each term only with its table); score
 * dot·scale, with ALiBi slope s: (dot + s·pos)·scale when alibiScaled, else dot·scale + s·pos; then
 * softcap·tanh(x / softcap); then + bias. Softmax over the visible keys; out = Σ p·(v + values[r]_h).
 *
 * Expectation scoring (YOSO): w = (1 − acos(q̂·k̂) / π)^bits over the visible keys (q̂, k̂: each
 * divided by max(its norm, 1e-12)), out = Σ w·v divided by max(its norm, 1e-12); no scale, ALiBi,
 * soft cap, bias or relative term. A query with no visible key gives zeros either way.
 */
export function attention(a: AttentionReference): Float64Array {
  const { batch, rows, start, keys, heads, kvHeads, headDim, valueDim, slots } = a;
  const group = heads / kvHeads;
  const kw = kvHeads * headDim;
  const vw = kvHeads * valueDim;
  const out = new Float64Array(batch * rows * heads * valueDim);
  const scores = new Float64Array(keys);
  const visible = new Uint8Array(keys);
  const perSequenceBias = a.bias !== undefined && batch > 1 && a.bias.length === batch * heads * rows * keys;
  const rel = a.relative;
  /** Offset of row r of a relative table for head h: a slice per head, or one shared slice. */
  const tableRow = (table: Numbers, width: number, r: number, h: number) => (table.length === rel!.positions * heads * width ? r * heads * width + h * width : r * width);
  const dot = (x: Numbers, xo: number, y: Numbers, yo: number, n: number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[xo + i]! * y[yo + i]!;
    return s;
  };
  const norm = (x: Numbers, xo: number, n: number) => Math.max(Math.sqrt(dot(x, xo, x, xo, n)), 1e-12);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < rows; t++) {
      const slot = start + t;
      const row = b * rows + t;
      for (let j = 0; j < keys; j++) {
        let ok = a.keyMask[b * keys + j] !== 0;
        if (a.mask === 'causal') {
          ok &&= j <= slot;
          if (a.window !== undefined) ok &&= j > slot - a.window;
        }
        visible[j] = ok ? 1 : 0;
      }
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const qo = row * heads * headDim + h * headDim;
        const oo = row * heads * valueDim + h * valueDim;
        const biasAt = ((perSequenceBias ? b * heads + h : h) * rows + t) * keys;
        if (a.expectation !== undefined) {
          const qn = norm(a.q, qo, headDim);
          for (let j = 0; j < keys; j++) {
            if (!visible[j]) continue;
            const ko = (b * slots + j) * kw + kvh * headDim;
            const cos = dot(a.q, qo, a.kCache, ko, headDim) / (qn * norm(a.kCache, ko, headDim));
            const w = (1 - Math.acos(Math.min(1, Math.max(-1, cos))) / Math.PI) ** a.expectation.bits;
            const vo = (b * slots + j) * vw + kvh * valueDim;
            for (let i = 0; i < valueDim; i++) out[oo + i]! += w * a.vCache[vo + i]!;
          }
          const on = norm(out, oo, valueDim);
          for (let i = 0; i < valueDim; i++) out[oo + i]! /= on;
          continue;
        }
        const hidden = (j: number) => !visible[j] || (a.bias !== undefined && a.bias[biasAt + j]! <= MASKING_BIAS);
        let max = -Infinity;
        for (let j = 0; j < keys; j++) {
          if (hidden(j)) continue;
          const ko = (b * slots + j) * kw + kvh * headDim;
          let d = dot(a.q, qo, a.kCache, ko, headDim);
          if (rel) {
            const r = rel.index[t * keys + j]!;
            if (rel.keys) d += dot(a.q, qo, rel.keys, tableRow(rel.keys, headDim, r, h), headDim);
            if (rel.queries) d += dot(a.kCache, ko, rel.queries, tableRow(rel.queries, headDim, r, h), headDim);
          }
          let s: number;
          if (a.alibi) {
            const term = a.alibi[h]! * a.keyPositions![b * keys + j]!;
            s = a.alibiScaled ? (d + term) * a.scale : d * a.scale + term;
          } else {
            s = d * a.scale;
          }
          if (a.softcap !== undefined) s = a.softcap * Math.tanh(s / a.softcap);
          if (a.bias) s += a.bias[biasAt + j]!;
          scores[j] = s;
          max = Math.max(max, s);
        }
        if (max === -Infinity) continue; // nothing visible: zeros
        let total = 0;
        for (let j = 0; j < keys; j++) if (!hidden(j)) total += scores[j] = Math.exp(scores[j]! - max);
        for (let j = 0; j < keys; j++) {
          if (hidden(j)) continue;
          const p = scores[j]! / total;
          const vo = (b * slots + j) * vw + kvh * valueDim;
          for (let i = 0; i < valueDim; i++) out[oo + i]! += p * a.vCache[vo + i]!;
          if (rel?.values) {
            const ro = tableRow(rel.values, valueDim, rel.index[t * keys + j]!, h);
            for (let i = 0; i < valueDim; i++) out[oo + i]! += p * rel.values[ro + i]!;
          }
        }
      }
    }
  }
  return out;
}

/**
 * A KV cache after `reorderKvCache`: [batch, slots, width] where sequence b holds what sequence
 * order[b] held (rows may repeat or be dropped).
 */
export function reorderBatch(cache: Numbers, batch: number, order: Numbers): Float64Array {
  const per = cache.length / batch;
  const out = new Float64Array(cache.length);
  for (let b = 0; b < batch; b++) {
    const s = order[b]!;
    for (let i = 0; i < per; i++) out[b * per + i] = cache[s * per + i]!;
  }
  return out;
}
