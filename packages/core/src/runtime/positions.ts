/**
 * Position encodings computed on the host: rotary inverse frequencies (with linear, dynamic-NTK and
 * Llama 3 scaling), ALiBi slopes (BLOOM's and MPT's), and sinusoidal tables (XGLM, fairseq style).
 */
import type { DecoderSpec, RopeScaling } from '../graph/index.js';

/** Dimensions of each head that rotate. */
export function rotaryDims(spec: NonNullable<DecoderSpec['rope']>, headDim: number): number {
  const dims = typeof spec.rotaryDim === 'number' ? spec.rotaryDim : Math.floor(headDim * spec.rotaryDim.fraction);
  return dims - (dims % 2);
}

/**
 * Inverse frequencies theta^(-2i/d) for i < d/2, after scaling. Dynamic NTK scaling depends on how
 * long the sequence has grown (`seqLen`), as in transformers' dynamic rotary embedding.
 */
export function ropeInvFreq(spec: NonNullable<DecoderSpec['rope']>, headDim: number, seqLen = 0): Float32Array {
  const d = rotaryDims(spec, headDim);
  const s: RopeScaling | undefined = spec.scaling;
  let theta = spec.theta;
  if (s?.type === 'dynamic' && spec.maxPositions !== undefined && seqLen > spec.maxPositions) {
    theta = theta * ((s.factor * seqLen) / spec.maxPositions - (s.factor - 1)) ** (d / (d - 2));
  }
  const inv = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / theta ** ((2 * i) / d);
  if (s?.type === 'linear') for (let i = 0; i < inv.length; i++) inv[i] = inv[i]! / s.factor;
  if (s?.type === 'llama3') {
    const low = s.lowFreqFactor ?? 1;
    const high = s.highFreqFactor ?? 4;
    const original = s.originalMaxPositions ?? 8192;
    const lowWavelen = original / low;
    const highWavelen = original / high;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i]!;
      if (wavelen > lowWavelen) inv[i] = inv[i]! / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (original / wavelen - low) / (high - low);
        inv[i] = (1 - smooth) * (inv[i]! / s.factor) + smooth * inv[i]!;
      }
    }
  }
  return inv;
}

/**
 * ALiBi slopes for `heads` heads. BLOOM (and Falcon): geometric 2^(-8/n)·… for the nearest power of
 * two n, the remaining heads taking every other slope of 2n. MPT: 2^(-maxBias·i/n) over the same
 * power-of-two construction.
 */
export function alibiSlopes(heads: number, kind: 'bloom' | 'mpt', maxBias = 8): Float32Array {
  const slopes = new Float32Array(heads);
  if (kind === 'bloom') {
    const closest = 2 ** Math.floor(Math.log2(heads));
    const base = 2 ** -(2 ** -(Math.log2(closest) - 3));
    for (let i = 0; i < closest; i++) slopes[i] = base ** (i + 1);
    if (closest < heads) {
      const extraBase = 2 ** -(2 ** -(Math.log2(2 * closest) - 3));
      const extra = Math.min(closest, heads - closest);
      for (let i = 0; i < extra; i++) slopes[closest + i] = extraBase ** (1 + 2 * i);
    }
    return slopes;
  }
  const padded = 2 ** Math.ceil(Math.log2(heads));
  const all = Array.from({ length: padded }, (_, i) => 1 / 2 ** (((i + 1) * maxBias) / padded));
  const ordered = padded === heads ? all : [...all.filter((_, i) => i % 2 === 1), ...all.filter((_, i) => i % 2 === 0)].slice(0, heads);
  ordered.forEach((v, i) => (slopes[i] = v));
  return slopes;
}

/** Fairseq sinusoidal embedding rows for the given positions: [sin(p·f) | cos(p·f)] halves. */
export function sinusoidalRows(positions: Int32Array, dim: number): Float32Array {
  const half = dim / 2;
  const scale = Math.log(10000) / (half - 1);
  const out = new Float32Array(positions.length * dim);
  for (let r = 0; r < positions.length; r++) {
    const p = positions[r]!;
    for (let i = 0; i < half; i++) {
      const angle = p * Math.exp(-scale * i);
      out[r * dim + i] = Math.sin(angle);
      out[r * dim + half + i] = Math.cos(angle);
    }
  }
  return out;
}
