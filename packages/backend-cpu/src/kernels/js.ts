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
export function rotary(x: Float32Array, rows: number, heads: number, positions: Int32Array, spec: RotarySpec): void {
  const { headDim, rotaryDim, invFreq, style } = spec;
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

export interface AttentionArgs {
  q: Float32Array;
  /** cache [batch, capacity, kvHeads, headDim] and [batch, capacity, kvHeads, valueDim] */
  kCache: Float32Array;
  vCache: Float32Array;
  out: Float32Array;
  batch: number;
  rows: number;
  start: number;
  capacity: number;
  keyMask: Uint8Array;
  keyPositions: Int32Array;
  spec: AttentionSpec;
}

/**
 * Turn raw q·k scores of one query (per head, over keys 0..qi) into softmax weights in place:
 * scale, ALiBi, soft cap, the causal/padding/window mask. A query with no visible key (a padding row)
 * gets all-zero weights.
 */
export function softmaxScores(scores: Float32Array, heads: number, n: number, qi: number, keyMask: Uint8Array, maskBase: number, keyPositions: Int32Array, spec: AttentionSpec): void {
  const first = spec.window !== undefined ? Math.max(0, qi - spec.window + 1) : 0;
  for (let h = 0; h < heads; h++) {
    const o = h * n;
    const slope = spec.alibi?.[h];
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      if (j < first || keyMask[maskBase + j] === 0) {
        scores[o + j] = -Infinity;
        continue;
      }
      const dot = scores[o + j]!;
      let s: number;
      if (slope === undefined) s = dot * spec.scale;
      else if (spec.alibiScaled) s = (dot + slope * keyPositions[maskBase + j]!) * spec.scale;
      else s = dot * spec.scale + slope * keyPositions[maskBase + j]!;
      if (spec.softcap !== undefined) s = spec.softcap * Math.tanh(s / spec.softcap);
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

/** Causal attention of `rows` new positions per sequence against the cache (which already holds them). */
export function attention(a: AttentionArgs): void {
  const { q, kCache, vCache, out, batch, rows, start, capacity, keyMask, keyPositions, spec } = a;
  const { heads, kvHeads, headDim, valueDim, scale } = spec;
  const group = heads / kvHeads;
  const scores = new Float64Array(start + rows);
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < rows; t++) {
      const qi = start + t; // the query's timeline slot
      const row = b * rows + t;
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const qo = (row * heads + h) * headDim;
        const slope = spec.alibi?.[h];
        let max = -Infinity;
        const first = spec.window !== undefined ? Math.max(0, qi - spec.window + 1) : 0;
        for (let j = 0; j <= qi; j++) {
          if (j < first || keyMask[b * capacity + j] === 0) {
            scores[j] = -Infinity;
            continue;
          }
          const ko = ((b * capacity + j) * kvHeads + kvh) * headDim;
          let dot = 0;
          for (let i = 0; i < headDim; i++) dot += q[qo + i]! * kCache[ko + i]!;
          let s: number;
          if (slope === undefined) s = dot * scale;
          else if (spec.alibiScaled) s = (dot + slope * keyPositions[b * capacity + j]!) * scale;
          else s = dot * scale + slope * keyPositions[b * capacity + j]!;
          if (spec.softcap !== undefined) s = spec.softcap * Math.tanh(s / spec.softcap);
          scores[j] = s;
          if (s > max) max = s;
        }
        const oo = (row * heads + h) * valueDim;
        for (let i = 0; i < valueDim; i++) out[oo + i] = 0;
        if (max === -Infinity) continue; // a padding query: nothing to attend to
        let total = 0;
        for (let j = 0; j <= qi; j++) {
          const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
          scores[j] = e;
          total += e;
        }
        for (let j = 0; j <= qi; j++) {
          const p = scores[j]! / total;
          if (p === 0) continue;
          const vo = ((b * capacity + j) * kvHeads + kvh) * valueDim;
          for (let i = 0; i < valueDim; i++) out[oo + i]! += p * vCache[vo + i]!;
        }
      }
    }
  }
}
