/**
 * y = x · wᵀ (+ bias), x f32 [M, K], w [N, K] in its storage dtype, f32 accumulation. A kernel
 * computes N rows of w into columns [nOffset, nOffset + N) of y [M, yCols] (a weight larger than one
 * storage binding is split into row blocks, one dispatch each).
 *
 * - GEMV (decode, M ≤ GEMV_MAX_ROWS): a workgroup of 64 invocations computes R = 64 / T output rows;
 *   T lanes split each row's K, reading 4 elements per load when K % 4 = 0, then add their partial
 *   sums in shared memory. Each weight element is read once per block of x rows, which is the whole
 *   cost of decode. T is chosen per adapter: on a software adapter (lavapipe) each invocation walking
 *   one row (T = 1) is fastest, because an invocation is a SIMD lane of a CPU core and lavapipe makes
 *   every workgroup barrier expensive; on a GPU, T lanes reading consecutive vectors coalesce.
 * - GEMM (prefill on a GPU): 32 × 32 output tiles, 64 invocations each computing 4 × 4, over K in
 *   tiles of 16 staged in shared memory (weights widened to f32 as they are staged). On lavapipe its
 *   two barriers per tile cost ~50× a GEMV pass, so a software adapter runs prefill as blocked GEMV.
 */
import type { StorageDtype } from '@tp/core';
import type { KernelDef } from '../kernel.js';
import type { DirectedKernelDef } from '../pipelines.js';
import { dtypeView } from '../wgsl/dtype.js';

/** Up to this many x rows go through the GEMV kernel (one pass over the weight per row). */
export const GEMV_MAX_ROWS = 4;
/** x rows one GEMV invocation multiplies at once when there is more than one. */
export const GEMV_BLOCK = 4;
export const GEMM_TILE = 32;

/**
 * GEMV over `block` x rows at once: each weight element read is used for `block` rows (1 for decode;
 * more when a software adapter runs prefill through this kernel, see WebGpuRank.linear).
 */
export function gemvKernel(weight: StorageDtype, bias: StorageDtype, nativeF16: boolean, vec4: boolean, lanes: number, block: number): KernelDef {
  const w = dtypeView('w', weight, nativeF16, vec4);
  const b = dtypeView('bias', bias, nativeF16);
  const rows = 64 / lanes;
  const each = (f: (j: number) => string) => Array.from({ length: block }, (_, j) => f(j)).join('\n    ');
  // x rows past M are clamped to row M - 1 (their sums are computed and dropped): no branch per load.
  const body = vec4
    ? `let k4 = p.K / 4u;
    ${each((j) => `var a${j} = vec4f(0.0); let x${j} = min(m0 + ${j}u, p.M - 1u) * k4;`)}
    for (var k = lane; k < k4; k += ${lanes}u) {
      let wv = wVec4(n * k4 + k);
      ${each((j) => `a${j} += x[x${j} + k] * wv;`)}
    }
    ${each((j) => `acc[${j}] = (a${j}.x + a${j}.y) + (a${j}.z + a${j}.w);`)}`
    : `${each((j) => `let x${j} = min(m0 + ${j}u, p.M - 1u) * p.K;`)}
    for (var k = lane; k < p.K; k += ${lanes}u) {
      let wv = wAt(n * p.K + k);
      ${each((j) => `acc[${j}] += x[x${j} + k] * wv;`)}
    }`;
  const reduce =
    lanes === 1
      ? ''
      : `for (var j = 0u; j < ${block}u; j++) { partial[j * 64u + lid] = acc[j]; }
  workgroupBarrier();
  for (var s = ${lanes / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var j = 0u; j < ${block}u; j++) { partial[j * 64u + lid] += partial[j * 64u + lid + s]; }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < ${block}u; j++) { acc[j] = partial[j * 64u + lid]; }`;
  return {
    name: `gemv_${w.tag}_b${b.tag}_t${lanes}_m${block}`,
    f16: w.f16 || b.f16,
    bindings: [{ name: 'x', type: vec4 ? 'array<vec4<f32>>' : 'array<f32>' }, w.binding, b.binding, { name: 'y', type: 'array<f32>', write: true }],
    params: [['M', 'u32'], ['K', 'u32'], ['N', 'u32'], ['yCols', 'u32'], ['nOffset', 'u32'], ['hasBias', 'u32']],
    code: `${w.code}
${b.code}
${lanes === 1 ? '' : `var<workgroup> partial: array<f32, ${64 * block}>;`}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let blocks = (p.N + ${rows - 1}u) / ${rows}u;
  let flat = flatGroup(wid, nwg);
  if (flat >= blocks * ((p.M + ${block - 1}u) / ${block}u)) { return; }
  let m0 = (flat / blocks) * ${block}u;
  let lane = lid % ${lanes}u;
  let n = (flat % blocks) * ${rows}u + lid / ${lanes}u;
  var acc: array<f32, ${block}>;
  if (n < p.N) {
    ${body}
  }
  ${reduce}
  if (lane == 0u && n < p.N) {
    var bv = 0.0;
    if (p.hasBias != 0u) { bv = biasAt(p.nOffset + n); }
    for (var j = 0u; j < ${block}u; j++) {
      if (m0 + j < p.M) { y[(m0 + j) * p.yCols + p.nOffset + n] = acc[j] + bv; }
    }
  }
}`,
  };
}

export function gemmKernel(weight: StorageDtype, bias: StorageDtype, nativeF16: boolean): KernelDef {
  const w = dtypeView('w', weight, nativeF16);
  const b = dtypeView('bias', bias, nativeF16);
  return {
    name: `gemm_${w.tag}_b${b.tag}`,
    f16: w.f16 || b.f16,
    bindings: [{ name: 'x', type: 'array<f32>' }, w.binding, b.binding, { name: 'y', type: 'array<f32>', write: true }],
    params: [['M', 'u32'], ['K', 'u32'], ['N', 'u32'], ['yCols', 'u32'], ['nOffset', 'u32'], ['hasBias', 'u32']],
    code: `${w.code}
${b.code}
var<workgroup> xs: array<f32, 512>;
var<workgroup> ws: array<f32, 512>;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let n0 = wid.x * 32u;
  let m0 = wid.y * 32u;
  let tx = lid % 8u;
  let ty = lid / 8u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    for (var j = 0u; j < 8u; j++) {
      let e = lid + 64u * j;
      let r = e / 16u;
      let c = k0 + e % 16u;
      xs[e] = select(0.0, x[(m0 + r) * p.K + c], m0 + r < p.M && c < p.K);
      var wv = 0.0;
      if (n0 + r < p.N && c < p.K) { wv = wAt((n0 + r) * p.K + c); }
      ws[e] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = vec4f(xs[(ty * 4u) * 16u + kk], xs[(ty * 4u + 1u) * 16u + kk], xs[(ty * 4u + 2u) * 16u + kk], xs[(ty * 4u + 3u) * 16u + kk]);
      let bv = vec4f(ws[(tx * 4u) * 16u + kk], ws[(tx * 4u + 1u) * 16u + kk], ws[(tx * 4u + 2u) * 16u + kk], ws[(tx * 4u + 3u) * 16u + kk]);
      for (var i = 0u; i < 4u; i++) {
        acc[i * 4u] += a[i] * bv.x;
        acc[i * 4u + 1u] += a[i] * bv.y;
        acc[i * 4u + 2u] += a[i] * bv.z;
        acc[i * 4u + 3u] += a[i] * bv.w;
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    for (var j = 0u; j < 4u; j++) {
      let m = m0 + ty * 4u + i;
      let n = n0 + tx * 4u + j;
      if (m < p.M && n < p.N) {
        var v = acc[i * 4u + j];
        if (p.hasBias != 0u) { v += biasAt(p.nOffset + n); }
        y[m * p.yCols + p.nOffset + n] = v;
      }
    }
  }
}`,
  };
}

/** Output rows one workgroup of the subgroup GEMV hands out to its subgroups. */
export const GEMV_SUBGROUP_ROWS = 16;

/**
 * GEMV with subgroup reductions (the device has `subgroups`): each subgroup of a 64-invocation
 * workgroup takes the workgroup's next output row from a shared counter, its lanes split the row's K
 * (4-wide loads when `vec4`), and `subgroupAdd` sums their parts — no shared-memory tree, no barrier.
 *
 * Nothing here assumes how invocations map to subgroups or how large a subgroup is (WGSL promises
 * neither, and sizes 4–128 exist): a lane's index and the lane count come from `subgroupExclusiveAdd`
 * and `subgroupAdd` of 1 over the active invocations, and rows are handed out by an atomic counter, so
 * any partition of the workgroup into subgroups computes every row once. A row's sum is one subgroup's,
 * so the result is the same from run to run on a device. Every loop around or before a subgroup
 * operation has a trip count uniform over the subgroup (the K loop steps by the lane count and masks
 * its last step), so the lanes are converged where they sum, without relying on reconvergence after a
 * loop whose lanes leave at different times.
 */
export function gemvSubgroupKernel(weight: StorageDtype, bias: StorageDtype, nativeF16: boolean, vec4: boolean, block: number): DirectedKernelDef {
  const w = dtypeView('w', weight, nativeF16, vec4);
  const b = dtypeView('bias', bias, nativeF16);
  const rows = GEMV_SUBGROUP_ROWS;
  const each = (f: (j: number) => string) => Array.from({ length: block }, (_, j) => f(j)).join('\n      ');
  const body = vec4
    ? `let k4 = p.K / 4u;
      ${each((j) => `var a${j} = vec4f(0.0); let x${j} = min(m0 + ${j}u, p.M - 1u) * k4;`)}
      for (var k0 = 0u; k0 < k4; k0 += lanes) {
        let k = k0 + lane;
        if (k < k4) {
          let wv = wVec4(n * k4 + k);
          ${each((j) => `a${j} += x[x${j} + k] * wv;`)}
        }
      }
      ${each((j) => `let s${j} = subgroupAdd((a${j}.x + a${j}.y) + (a${j}.z + a${j}.w));`)}`
    : `${each((j) => `var a${j} = 0.0; let x${j} = min(m0 + ${j}u, p.M - 1u) * p.K;`)}
      for (var k0 = 0u; k0 < p.K; k0 += lanes) {
        let k = k0 + lane;
        if (k < p.K) {
          let wv = wAt(n * p.K + k);
          ${each((j) => `a${j} += x[x${j} + k] * wv;`)}
        }
      }
      ${each((j) => `let s${j} = subgroupAdd(a${j});`)}`;
  return {
    name: `gemv_sg_${w.tag}_b${b.tag}_m${block}`,
    f16: w.f16 || b.f16,
    // `enable subgroups;`, and the subgroup uniformity diagnostic off: the subgroup operations run
    // where control flow is uniform per subgroup, not per workgroup (see withDirectives).
    enable: ['subgroups'],
    bindings: [{ name: 'x', type: vec4 ? 'array<vec4<f32>>' : 'array<f32>' }, w.binding, b.binding, { name: 'y', type: 'array<f32>', write: true }],
    params: [['M', 'u32'], ['K', 'u32'], ['N', 'u32'], ['yCols', 'u32'], ['nOffset', 'u32'], ['hasBias', 'u32']],
    code: `${w.code}
${b.code}
var<workgroup> nextRow: atomic<u32>;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let blocks = (p.N + ${rows - 1}u) / ${rows}u;
  let flat = flatGroup(wid, nwg);
  if (flat >= blocks * ((p.M + ${block - 1}u) / ${block}u)) { return; }
  let m0 = (flat / blocks) * ${block}u;
  let rowBase = (flat % blocks) * ${rows}u;
  let lanes = subgroupAdd(1u);
  let lane = subgroupExclusiveAdd(1u);
  loop {
    var taken = 0u;
    if (lane == 0u) { taken = atomicAdd(&nextRow, 1u); }
    let r = subgroupMax(taken);
    if (r >= ${rows}u) { break; }
    let n = rowBase + r;
    if (n < p.N) {
      ${body}
      if (lane == 0u) {
        var bv = 0.0;
        if (p.hasBias != 0u) { bv = biasAt(p.nOffset + n); }
        ${each((j) => `if (m0 + ${j}u < p.M) { y[(m0 + ${j}u) * p.yCols + p.nOffset + n] = s${j} + bv; }`)}
      }
    }
  }
}`,
  };
}
