/**
 * Elementwise kernels over f32 activations: one invocation per element, 256 per workgroup, over a
 * 2-D grid of workgroups. `unary` covers scale, clamp, sigmoid and every activation with an op code,
 * which costs a switch per element and saves a pipeline per op.
 */
import type { KernelDef } from '../kernel.js';
import { MATH } from '../wgsl/math.js';

export const ELEMENTWISE_WG = 256;

const INDEX = `let i = flatGroup(wid, nwg) * ${ELEMENTWISE_WG}u + lid.x;`;
const MAIN = `@compute @workgroup_size(${ELEMENTWISE_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u)`;

/** Unary op codes: activations 0–5 (see MATH's `activate`), then these. */
export const UNARY = { scale: 16, clamp: 17, sigmoid: 18 } as const;

/** out = op(x): an activation code, scale by s, clamp to ±s, or sigmoid. In place when `inPlace`. */
export function unaryKernel(inPlace: boolean): KernelDef {
  const bindings = inPlace ? [{ name: 'x', type: 'array<f32>', write: true }] : [{ name: 'x', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }];
  const out = inPlace ? 'x' : 'y';
  return {
    name: inPlace ? 'unary_inplace' : 'unary',
    bindings,
    params: [['n', 'u32'], ['op', 'u32'], ['s', 'f32']],
    code: `${MATH}
${MAIN} {
  ${INDEX}
  if (i >= p.n) { return; }
  let v = x[i];
  var r: f32;
  switch p.op {
    case ${UNARY.scale}u: { r = v * p.s; }
    case ${UNARY.clamp}u: { r = clamp(v, -p.s, p.s); }
    case ${UNARY.sigmoid}u: { r = sigmoid(v); }
    default: { r = activate(v, p.op); }
  }
  ${out}[i] = r;
}`,
  };
}

/** a + b with b repeating every bn elements (a 1-D bias over rows); in place into a when `inPlace`. */
export function addKernel(inPlace: boolean): KernelDef {
  const bindings = inPlace ? [{ name: 'a', type: 'array<f32>', write: true }, { name: 'b', type: 'array<f32>' }] : [{ name: 'a', type: 'array<f32>' }, { name: 'b', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }];
  return {
    name: inPlace ? 'add_inplace' : 'add',
    bindings,
    params: [['n', 'u32'], ['bn', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.n) { return; }
  ${inPlace ? 'a' : 'y'}[i] = a[i] + b[i % p.bn];
}`,
  };
}

/**
 * act(gate) ⊙ up over [rows, cols]: gate element (r, c) at r·gStride + c, up at r·uStride + uOffset + c.
 * A fused [gate | up] tensor binds the same buffer twice (both read-only, which WebGPU allows).
 */
export function gatedKernel(): KernelDef {
  return {
    name: 'gated',
    bindings: [{ name: 'g', type: 'array<f32>' }, { name: 'u', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['rows', 'u32'], ['cols', 'u32'], ['gStride', 'u32'], ['uStride', 'u32'], ['uOffset', 'u32'], ['act', 'u32']],
    code: `${MATH}
${MAIN} {
  ${INDEX}
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  y[i] = activate(g[r * p.gStride + c], p.act) * u[r * p.uStride + p.uOffset + c];
}`,
  };
}
