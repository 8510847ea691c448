/**
 * RMS and layer norm over groups of `width` features (a whole row, or Qwen3's per-head groups): one
 * 64-invocation workgroup per group, two passes (mean, then the mean of squared deviations, as the
 * reference computes the biased variance), then the affine part with the weight and bias widened from
 * their storage dtype.
 */
import type { StorageDtype } from '@tp/core';
import type { KernelDef } from '../kernel.js';
import { dtypeView } from '../wgsl/dtype.js';

const WG = 64;

/** The shared-memory sum of one value per invocation, returned to all. */
export const WORKGROUP_SUM = /* wgsl */ `
var<workgroup> partial: array<f32, ${WG}>;
fn workgroupSum(v: f32, lid: u32) -> f32 {
  partial[lid] = v;
  workgroupBarrier();
  for (var stride = ${WG / 2}u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] += partial[lid + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}`;

export function normKernel(weight: StorageDtype, bias: StorageDtype, nativeF16: boolean): KernelDef {
  const w = dtypeView('w', weight, nativeF16);
  const b = dtypeView('b', bias, nativeF16);
  return {
    name: `norm_w${w.tag}_b${b.tag}`,
    f16: w.f16 || b.f16,
    bindings: [{ name: 'x', type: 'array<f32>' }, w.binding, b.binding, { name: 'y', type: 'array<f32>', write: true }],
    params: [['groups', 'u32'], ['width', 'u32'], ['eps', 'f32'], ['layer', 'u32'], ['hasWeight', 'u32'], ['plusOne', 'u32'], ['hasBias', 'u32']],
    code: `${w.code}
${b.code}
${WORKGROUP_SUM}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let g = flatGroup(wid, nwg);
  if (g >= p.groups) { return; }
  let lid = lid3.x;
  let base = g * p.width;
  var mean = 0.0;
  if (p.layer != 0u) {
    var s = 0.0;
    for (var i = lid; i < p.width; i += ${WG}u) { s += x[base + i]; }
    mean = workgroupSum(s, lid) / f32(p.width);
  }
  var q = 0.0;
  for (var i = lid; i < p.width; i += ${WG}u) { let d = x[base + i] - mean; q += d * d; }
  let inv = 1.0 / sqrt(workgroupSum(q, lid) / f32(p.width) + p.eps);
  for (var i = lid; i < p.width; i += ${WG}u) {
    var v = (x[base + i] - mean) * inv;
    if (p.hasWeight != 0u) { v *= select(wAt(i), 1.0 + wAt(i), p.plusOne != 0u); }
    if (p.hasBias != 0u) { v += bAt(i); }
    y[base + i] = v;
  }
}`,
  };
}
