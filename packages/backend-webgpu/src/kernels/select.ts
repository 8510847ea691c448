/**
 * Selection on the device, so a decode step reads back ids instead of logits: argmax and top-k per row
 * (one 256-invocation workgroup per row), MoE routing (one invocation per row) and the routing weight
 * of each row for one expert.
 *
 * Order: a larger value first, and between equal values the lower index first (torch.topk's order on
 * ties is unspecified; this one is deterministic and what the reference uses). Top-k runs k rounds;
 * round r picks the best element that comes after round r-1's pick in that order, so nothing is marked
 * and the row is never modified.
 */
import type { KernelDef } from '../kernel.js';

const WG = 256;

const ORDER = /* wgsl */ `
const NONE: u32 = 0xffffffffu;
/** (v, i) comes before (bv, bi) in the selection order; NONE loses to everything. */
fn before(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  if (i == NONE) { return false; }
  if (bi == NONE) { return true; }
  return v > bv || (v == bv && i < bi);
}
var<workgroup> bestV: array<f32, ${WG}>;
var<workgroup> bestI: array<u32, ${WG}>;
/** Workgroup reduction of each invocation's candidate; returns the winner's index (NONE if none). */
fn reduceBest(v: f32, i: u32, lid: u32) -> u32 {
  bestV[lid] = v;
  bestI[lid] = i;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s && before(bestV[lid + s], bestI[lid + s], bestV[lid], bestI[lid])) {
      bestV[lid] = bestV[lid + s];
      bestI[lid] = bestI[lid + s];
    }
    workgroupBarrier();
  }
  let winner = bestI[0];
  workgroupBarrier();
  return winner;
}`;

const MAIN = `@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u)`;

export function argmaxKernel(): KernelDef {
  return {
    name: 'argmax',
    bindings: [{ name: 'x', type: 'array<f32>' }, { name: 'y', type: 'array<i32>', write: true }],
    params: [['rows', 'u32'], ['cols', 'u32']],
    code: `${ORDER}
${MAIN} {
  let lid = lid3.x;
  let r = flatGroup(wid, nwg);
  if (r >= p.rows) { return; }
  var bv = 0.0;
  var bi = NONE;
  for (var c = lid; c < p.cols; c += ${WG}u) {
    let v = x[r * p.cols + c];
    if (before(v, c, bv, bi)) { bv = v; bi = c; }
  }
  let winner = reduceBest(bv, bi, lid);
  if (lid == 0u) { y[r] = select(i32(winner), 0, winner == NONE); }
}`,
  };
}

export function topkKernel(): KernelDef {
  return {
    name: 'topk',
    bindings: [{ name: 'x', type: 'array<f32>' }, { name: 'values', type: 'array<f32>', write: true }, { name: 'indices', type: 'array<i32>', write: true }],
    params: [['rows', 'u32'], ['cols', 'u32'], ['k', 'u32']],
    code: `${ORDER}
${MAIN} {
  let lid = lid3.x;
  let r = flatGroup(wid, nwg);
  if (r >= p.rows) { return; }
  var prevV = 0.0;
  var prevI = NONE;
  for (var round = 0u; round < p.k; round++) {
    var bv = 0.0;
    var bi = NONE;
    for (var c = lid; c < p.cols; c += ${WG}u) {
      let v = x[r * p.cols + c];
      // Only elements after the previous pick are candidates this round.
      if ((prevI == NONE || before(prevV, prevI, v, c)) && before(v, c, bv, bi)) { bv = v; bi = c; }
    }
    let winner = reduceBest(bv, bi, lid);
    prevI = winner;
    prevV = x[r * p.cols + min(winner, p.cols - 1u)];
    if (lid == 0u) {
      values[r * p.k + round] = prevV;
      indices[r * p.k + round] = i32(winner);
    }
  }
}`,
  };
}

/**
 * MoE routing of each row of router logits: softmax, the topK experts (selection order above, on the
 * logits, which the softmax does not reorder), their probabilities, renormalised to sum to 1 when asked.
 */
export function routeKernel(): KernelDef {
  return {
    name: 'route',
    bindings: [{ name: 'x', type: 'array<f32>' }, { name: 'experts', type: 'array<i32>', write: true }, { name: 'weights', type: 'array<f32>', write: true }],
    params: [['rows', 'u32'], ['cols', 'u32'], ['k', 'u32'], ['normalize', 'u32']],
    code: `${ORDER}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let r = flatGroup(wid, nwg) * 64u + lid3.x;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var mx = x[base];
  for (var c = 1u; c < p.cols; c++) { mx = max(mx, x[base + c]); }
  var total = 0.0;
  for (var c = 0u; c < p.cols; c++) { total += exp(x[base + c] - mx); }
  var prevV = 0.0;
  var prevI = NONE;
  var picked = 0.0;
  for (var k = 0u; k < p.k; k++) {
    var bv = 0.0;
    var bi = NONE;
    for (var c = 0u; c < p.cols; c++) {
      let v = x[base + c];
      if ((prevI == NONE || before(prevV, prevI, v, c)) && before(v, c, bv, bi)) { bv = v; bi = c; }
    }
    let w = exp(bv - mx) / total;
    experts[r * p.k + k] = i32(bi);
    weights[r * p.k + k] = w;
    picked += w;
    prevV = bv;
    prevI = bi;
  }
  if (p.normalize != 0u) {
    for (var k = 0u; k < p.k; k++) { weights[r * p.k + k] /= picked; }
  }
}`,
  };
}

/** w[row] = the routing weight of expert e for that row, or 0 when the row does not use it. */
export function expertWeightsKernel(): KernelDef {
  return {
    name: 'expert_weights',
    bindings: [{ name: 'experts', type: 'array<i32>' }, { name: 'weights', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['rows', 'u32'], ['k', 'u32'], ['expert', 'i32']],
    code: `@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let r = flatGroup(wid, nwg) * 64u + lid3.x;
  if (r >= p.rows) { return; }
  var w = 0.0;
  for (var k = 0u; k < p.k; k++) {
    if (experts[r * p.k + k] == p.expert) { w = weights[r * p.k + k]; }
  }
  y[r] = w;
}`,
  };
}
