/**
 * LSH's random rotations (transformers' LSHSelfAttention._hash_vectors): `torch.manual_seed(hash_seed)`
 * then `torch.randn(heads, headDim, hashes, half)` on the CPU, the same for every LSH layer. Each rank
 * keeps its own heads' slice, laid out as one block-diagonal linear weight so the device computes
 * every head's rotations x·R in one product.
 */
import { torchRandn } from '../torch-random.js';

export interface RotationShape {
  /** All heads of the model, and the local ones [start, end). */
  heads: number;
  local: readonly [number, number];
  headDim: number;
  hashes: number;
  /** Rotations per round: Σ bucket factors / 2. */
  half: number;
  seed: number;
}

/**
 * [local·hashes·half, local·headDim] (weights are [out, in]): output column (h·hashes + r)·half + j of
 * a row of local query-key vectors is Σ_d x[h·headDim + d] · R[start + h, d, r, j].
 */
export function rotationWeight(s: RotationShape): Float32Array {
  const { headDim, hashes, half } = s;
  const all = torchRandn(s.seed, s.heads * headDim * hashes * half);
  const local = s.local[1] - s.local[0];
  const inputs = local * headDim;
  const w = new Float32Array(local * hashes * half * inputs);
  for (let h = 0; h < local; h++) {
    const g = s.local[0] + h;
    for (let r = 0; r < hashes; r++) {
      for (let j = 0; j < half; j++) {
        const row = (h * hashes + r) * half + j;
        for (let d = 0; d < headDim; d++) w[row * inputs + h * headDim + d] = all[((g * headDim + d) * hashes + r) * half + j]!;
      }
    }
  }
  return w;
}
