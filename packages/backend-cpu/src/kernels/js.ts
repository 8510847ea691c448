/**
 * Reference kernels in TypeScript. They define the semantics; the hot paths (GEMV/GEMM and attention)
 * are also written in WebAssembly SIMD (wasm.ts), and tests check the two agree.
 */
import type { Activation, AttentionSpec, NormSpec, RotarySpec } from '@tp/core';
import { gelu, geluQuick, geluTanh, relu, silu } from './math.js';

/** y[m, n] = x[m, :] · w[n, :] (+ b[n]) */
export function linear(x: Float32Array, w: Float32Array, b: Float32Array | undefined, y: Float32Array, m: number, k: number, n: number): void {
  for (let i = 0; i < m; i++) {
    const xo = i * k;
    for (let j = 0; j < n; j++) {
      const wo = j * k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let t = 0;
      for (; t + 4 <= k; t += 4) {
        s0 += x[xo + t]! * w[wo + t]!;
        s1 += x[xo + t + 1]! * w[wo + t + 1]!;
        s2 += x[xo + t + 2]! * w[wo + t + 2]!;
        s3 += x[xo + t + 3]! * w[wo + t + 3]!;
      }
      for (; t < k; t++) s0 += x[xo + t]! * w[wo + t]!;
      y[i * n + j] = s0 + s1 + (s2 + s3) + (b ? b[j]! : 0);
    }
  }
}

export function norm(x: Float32Array, y: Float32Array, rows: number, width: number, spec: NormSpec, weight?: Float32Array, bias?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    let mean = 0;
    if (spec.kind === 'layer') {
      for (let i = 0; i < width; i++) mean += x[o + i]!;
      mean /= width;
    }
    let variance = 0;
    for (let i = 0; i < width; i++) {
      const d = x[o + i]! - mean;
      variance += d * d;
    }
    variance /= width;
    const inv = 1 / Math.sqrt(variance + spec.eps);
    for (let i = 0; i < width; i++) {
      let v = (x[o + i]! - mean) * inv;
      if (spec.kind === 'rms') v = Math.fround(v); // transformers rounds the normalised value to the dtype before the weight
      if (weight) v *= spec.plusOne ? 1 + weight[i]! : weight[i]!;
      if (bias) v += bias[i]!;
      y[o + i] = v;
    }
  }
}

export function activation(x: Float32Array, y: Float32Array, kind: Activation): void {
  const f = activationFn(kind);
  for (let i = 0; i < x.length; i++) y[i] = f(x[i]!);
}

export function activationFn(kind: Activation): (x: number) => number {
  switch (kind) {
    case 'silu':
      return silu;
    case 'gelu':
      return gelu;
    case 'gelu_tanh':
      return geluTanh;
    case 'relu':
      return relu;
    case 'gelu_quick':
      return geluQuick;
    case 'identity':
      return (v) => v;
  }
}

/** In place over [rows, heads·headDim]: rotate the first rotaryDim dims of each head by position · invFreq. */
export function rotary(x: Float32Array, rows: number, heads: number, positions: Int32Array, invFreq: Float32Array, spec: Pick<RotarySpec, 'headDim' | 'rotaryDim' | 'style' | 'scale'>): void {
  const { headDim, rotaryDim, style } = spec;
  const half = rotaryDim / 2;
  const scale = spec.scale ?? 1;
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let r = 0; r < rows; r++) {
    const p = positions[r]!;
    for (let i = 0; i < half; i++) {
      // transformers computes the angle in f32 (positions × inv_freq), then cos/sin of it
      const angle = Math.fround(p * invFreq[i]!);
      cos[i] = Math.cos(angle) * scale;
      sin[i] = Math.sin(angle) * scale;
    }
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = style === 'half' ? o + i : o + 2 * i;
        const b = style === 'half' ? o + i + half : o + 2 * i + 1;
        const x1 = x[a]!;
        const x2 = x[b]!;
        x[a] = x1 * cos[i]! - x2 * sin[i]!;
        x[b] = x2 * cos[i]! + x1 * sin[i]!;
      }
    }
  }
}

/** The host-side parts of an attention spec the score transform reads. */
export interface ScoreSpec {
  scale: number;
  mask: 'causal' | 'bidirectional';
  alibi?: Float32Array | undefined;
  alibiScaled?: boolean | undefined;
  window?: number | undefined;
  softcap?: number | undefined;
}

/** One query's view of the step: its mask row, key positions and bias rows. */
export interface QueryKeys {
  /** i32 [keys] of this sequence: 1 where the key may be seen. */
  mask: Int32Array;
  /** i32 [keys] of this sequence (ALiBi), or undefined. */
  positions: Int32Array | undefined;
  /** f32 [heads, rows, keys] additive bias of this sequence (a per-sequence bias: its slice) and this query's row, or undefined. */
  bias: Float32Array | undefined;
  biasRow: number;
  biasRows: number;
}

/** A bias entry at or below this masks its key as padding does (the interface's AttentionStep.bias). */
export const MASKING_BIAS = -1e30;

/**
 * Turn raw q·k scores of one query (per head, over keys 0..n-1; relative terms already added) into
 * softmax weights in place: scale, ALiBi, soft cap, additive bias, then the padding and window mask
 * (the causal limit is `n`). A bias entry ≤ MASKING_BIAS masks its key. A query with no visible key
 * (a padding row) gets all-zero weights.
 */
export function softmaxScores(scores: Float32Array, heads: number, n: number, qi: number, keys: QueryKeys, spec: ScoreSpec): void {
  const first = spec.window !== undefined && spec.mask === 'causal' ? Math.max(0, qi - spec.window + 1) : 0;
  const width = keys.mask.length;
  for (let h = 0; h < heads; h++) {
    const o = h * n;
    const slope = spec.alibi?.[h];
    const biasBase = keys.bias === undefined ? 0 : (h * keys.biasRows + keys.biasRow) * width;
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      if (j < first || keys.mask[j] === 0) {
        scores[o + j] = -Infinity;
        continue;
      }
      const dot = scores[o + j]!;
      let s: number;
      if (slope === undefined) s = dot * spec.scale;
      else if (spec.alibiScaled) s = (dot + slope * keys.positions![j]!) * spec.scale;
      else s = dot * spec.scale + slope * keys.positions![j]!;
      if (spec.softcap !== undefined) s = spec.softcap * Math.tanh(s / spec.softcap);
      if (keys.bias !== undefined) {
        const add = keys.bias[biasBase + j]!;
        if (add <= MASKING_BIAS) {
          scores[o + j] = -Infinity;
          continue;
        }
        s += add;
      }
      scores[o + j] = s;
      if (s > max) max = s;
    }
    if (max === -Infinity) {
      scores.fill(0, o, o + n);
      continue;
    }
    let total = 0;
    for (let j = 0; j < n; j++) {
      const e = scores[o + j] === -Infinity ? 0 : Math.exp(scores[o + j]! - max);
      scores[o + j] = e;
      total += e;
    }
    for (let j = 0; j < n; j++) scores[o + j] = scores[o + j]! / total;
  }
}

/**
 * YOSO's expectation weights of one query in place (transformers' YosoCumulation): the raw q·k scores
 * become w = (1 − acos(q̂·k̂) / π)^bits for visible keys, 0 for the rest, with q̂·k̂ = q·k / (|q| |k|)
 * and each norm at least 1e-12 (F.normalize's eps). qNorms [heads] are this query's, kNorms
 * [kvHeads, keys] the sequence's key norms. The cosine is clamped to [-1, 1] so rounding cannot
 * make acos NaN. Same masks as softmaxScores; bias, scale, ALiBi and soft cap do not apply.
 */
export function expectationScores(scores: Float32Array, heads: number, group: number, n: number, qi: number, keys: QueryKeys, spec: ScoreSpec, qNorms: Float64Array, kNorms: Float64Array, bits: number): void {
  const first = spec.window !== undefined && spec.mask === 'causal' ? Math.max(0, qi - spec.window + 1) : 0;
  const width = keys.mask.length;
  for (let h = 0; h < heads; h++) {
    const o = h * n;
    const qn = Math.max(qNorms[h]!, 1e-12);
    const ko = Math.floor(h / group) * width;
    for (let j = 0; j < n; j++) {
      if (j < first || keys.mask[j] === 0) {
        scores[o + j] = 0;
        continue;
      }
      const cos = Math.min(1, Math.max(-1, scores[o + j]! / (qn * Math.max(kNorms[ko + j]!, 1e-12))));
      scores[o + j] = (1 - Math.acos(cos) / Math.PI) ** bits;
    }
  }
}

/** L2 norms of `count` vectors of `width` floats, `stride` floats apart from `at`, into out[0..count). */
export function norms(x: Float32Array, at: number, stride: number, width: number, count: number, out: Float64Array, outAt = 0): void {
  for (let i = 0; i < count; i++) {
    let s = 0;
    for (let d = 0; d < width; d++) s += x[at + i * stride + d]! ** 2;
    out[outAt + i] = Math.sqrt(s);
  }
}

/** Each `width`-wide group of x divided by max(its L2 norm, 1e-12), in place (transformers' F.normalize). */
export function normalizeGroups(x: Float32Array, width: number): void {
  for (let o = 0; o < x.length; o += width) {
    let s = 0;
    for (let d = 0; d < width; d++) s += x[o + d]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < width; d++) x[o + d] = x[o + d]! * inv;
  }
}

/**
 * A relative-position table as the kernels read it: row r of head h starts at r·rowWidth +
 * h·headWidth (headWidth 0: one slice every head shares).
 */
export interface RelativeTable {
  data: Float32Array;
  rowWidth: number;
  headWidth: number;
}

/**
 * scores[h·n + j] += a_{h,j} · table[index[j]]_h over `width` floats, where a_{h,j} starts at
 * aAt + floor(h / aGroup)·width + j·aStride: the relative keys term (a = the query, aStride 0) or the
 * queries term (a = the cached keys). The reference of the WebAssembly attn_rel_scores.
 */
export function relativeScores(scores: Float32Array, heads: number, n: number, width: number, a: Float32Array, aAt: number, aGroup: number, aStride: number, table: RelativeTable, index: Int32Array): void {
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < n; j++) {
      const ao = aAt + Math.floor(h / aGroup) * width + j * aStride;
      const to = index[j]! * table.rowWidth + h * table.headWidth;
      let dot = 0;
      for (let d = 0; d < width; d++) dot += a[ao + d]! * table.data[to + d]!;
      scores[h * n + j] = scores[h * n + j]! + dot;
    }
  }
}

/** out_h += Σ_j p[h·n + j] · table[index[j]]_h over `width` floats: the reference of attn_rel_mix. */
export function relativeMix(p: Float32Array, heads: number, n: number, width: number, table: RelativeTable, index: Int32Array, out: Float32Array): void {
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < n; j++) {
      const w = p[h * n + j]!;
      const to = index[j]! * table.rowWidth + h * table.headWidth;
      for (let d = 0; d < width; d++) out[h * width + d] = out[h * width + d]! + w * table.data[to + d]!;
    }
  }
}

/**
 * Sinusoidal position rows: `[sin | cos]` halves. `fairseq` (XGLM, M2M100): frequency
 * exp(-ln(10000)·i/(half-1)); `marian` (Marian, Pegasus): 10000^(-2i/dim), computed in f64 as numpy does.
 */
export function sinusoidal(positions: Int32Array, dim: number, kind: 'fairseq' | 'marian', out: Float32Array): void {
  const half = Math.floor(dim / 2);
  const sinWidth = kind === 'marian' ? dim - half : half;
  for (let r = 0; r < positions.length; r++) {
    const p = positions[r]!;
    const o = r * dim;
    if (kind === 'fairseq') {
      const scale = Math.log(10000) / (half - 1);
      for (let i = 0; i < half; i++) {
        const angle = p * Math.exp(-scale * i);
        out[o + i] = Math.sin(angle);
        out[o + half + i] = Math.cos(angle);
      }
      if (dim % 2 === 1) out[o + dim - 1] = 0;
    } else {
      for (let i = 0; i < sinWidth; i++) out[o + i] = Math.sin(p / 10000 ** ((2 * i) / dim));
      for (let i = 0; i < half; i++) out[o + sinWidth + i] = Math.cos(p / 10000 ** ((2 * i) / dim));
    }
  }
}

/** Indices of the k largest values, best first; ties keep the lower index first. */
export function topk(row: Float32Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (best.length === k && !(v > row[best[k - 1]!]!)) continue;
    let at = best.length === k ? k - 1 : best.length;
    if (best.length < k) best.push(i);
    while (at > 0 && v > row[best[at - 1]!]!) {
      best[at] = best[at - 1]!;
      at--;
    }
    best[at] = i;
  }
  return best;
}
