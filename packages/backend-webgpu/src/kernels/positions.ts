/** Position kernels: rotary embeddings (in place) and sinusoidal position rows. */
import type { KernelDef } from '../kernel.js';
import { MATH } from '../wgsl/math.js';

const WG = 256;
const MAIN = `@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u)`;

/**
 * Rotate x [rows, heads·headDim] in place: one invocation per (row, head, pair). The angle is
 * f32(position) · invFreq[i] rounded once to f32, as the reference (and torch) compute it; pairs are
 * (i, i + half) for `half` style and (2i, 2i + 1) for interleaved.
 */
export function rotaryKernel(): KernelDef {
  return {
    name: 'rotary',
    bindings: [{ name: 'x', type: 'array<f32>', write: true }, { name: 'positions', type: 'array<i32>' }, { name: 'invFreq', type: 'array<f32>' }],
    params: [['rows', 'u32'], ['heads', 'u32'], ['headDim', 'u32'], ['half', 'u32'], ['interleaved', 'u32'], ['scale', 'f32']],
    code: `${MATH}
${MAIN} {
  let i = flatGroup(wid, nwg) * ${WG}u + lid.x;
  if (i >= p.rows * p.heads * p.half) { return; }
  let pair = i % p.half;
  let rh = i / p.half;
  let row = rh / p.heads;
  let base = row * p.heads * p.headDim + (rh % p.heads) * p.headDim;
  let angle = f32(positions[row]) * invFreq[pair];
  let sc = sinCos(angle) * p.scale;
  var ia = base + pair;
  var ib = base + pair + p.half;
  if (p.interleaved != 0u) { ia = base + 2u * pair; ib = ia + 1u; }
  let a = x[ia];
  let b = x[ib];
  x[ia] = a * sc.y - b * sc.x;
  x[ib] = b * sc.y + a * sc.x;
}`,
  };
}

/**
 * Sinusoidal rows [sin | cos] of `half` frequencies. The frequencies come as two f32 parts (hi + lo =
 * the f64 value): `fairseq` angles are f32 products (lo = 0, as torch computes them), `marian` angles
 * are f64 in transformers, so the product's rounding error and p·lo are added after the range
 * reduction to keep their precision.
 */
export function sinusoidalKernel(): KernelDef {
  return {
    name: 'sinusoidal',
    bindings: [{ name: 'positions', type: 'array<i32>' }, { name: 'freq', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['n', 'u32'], ['half', 'u32'], ['exact', 'u32']],
    code: `${MATH}
${MAIN} {
  let i = flatGroup(wid, nwg) * ${WG}u + lid.x;
  if (i >= p.n * p.half) { return; }
  let r = i / p.half;
  let k = i % p.half;
  let pos = f32(positions[r]);
  let angle = pos * freq[k];
  // fma gives the rounding error of the product exactly; with lo, the f64 angle to ~2^-48.
  let extra = select(0.0, fma(pos, freq[k], -angle) + pos * freq[p.half + k], p.exact != 0u);
  let sc = sinCosReduced(angle, extra);
  y[r * 2u * p.half + k] = sc.x;
  y[r * 2u * p.half + p.half + k] = sc.y;
}`,
  };
}
