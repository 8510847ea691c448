/**
 * Attention of one query row and head per 64-invocation workgroup, over the KV cache in chunks of 64
 * keys with an online softmax (a running maximum m, a running sum l, and the value accumulator rescaled
 * by e^(m_old - m_new) when the maximum grows), so any number of keys fits without a scores buffer.
 *
 * In each chunk an invocation scores one key (q·k, then ALiBi, the soft cap and the additive bias, in
 * the reference's order); after a barrier every invocation sees the chunk's scores, and each one owns
 * value dimensions lid, lid + 64, … of the output. Masked keys (padding, beyond the causal limit,
 * outside the window) score NEG_BIG and weigh exactly 0; a query with no visible key outputs zeros.
 *
 * Layouts: q [batch·rows, heads·headDim]; caches [batch, capacity, kvHeads·headDim|valueDim];
 * keyMask and keyPositions [batch, keys]; bias [heads, rows, keys]; out [batch·rows, heads·valueDim].
 */
import type { KernelDef } from '../kernel.js';
import { MATH } from '../wgsl/math.js';

const WG = 64;
/** Value dimensions one invocation accumulates (valueDim ≤ 64 · this). */
export const MAX_VALUE_DIM = 4 * WG;
/** Query head width the kernel stages in shared memory. */
export const MAX_HEAD_DIM = 512;

export function attentionKernel(): KernelDef {
  return {
    name: 'attention',
    bindings: [
      { name: 'q', type: 'array<f32>' },
      { name: 'kc', type: 'array<f32>' },
      { name: 'vc', type: 'array<f32>' },
      { name: 'keyMask', type: 'array<i32>' },
      { name: 'keyPos', type: 'array<i32>' },
      { name: 'slopes', type: 'array<f32>' },
      { name: 'bias', type: 'array<f32>' },
      { name: 'out', type: 'array<f32>', write: true },
    ],
    params: [
      ['batch', 'u32'],
      ['rows', 'u32'],
      ['start', 'u32'],
      ['keys', 'u32'],
      ['heads', 'u32'],
      ['kvHeads', 'u32'],
      ['headDim', 'u32'],
      ['valueDim', 'u32'],
      ['capacity', 'u32'],
      ['scale', 'f32'],
      ['causal', 'u32'],
      ['window', 'u32'],
      ['softcap', 'f32'],
      ['alibi', 'u32'],
      ['alibiScaled', 'u32'],
      ['hasBias', 'u32'],
    ],
    code: `${MATH}
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> scores: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let flat = flatGroup(wid, nwg);
  if (flat >= p.batch * p.rows * p.heads) { return; }
  let h = flat % p.heads;
  let row = flat / p.heads;
  let b = row / p.rows;
  let t = row % p.rows;
  let slot = p.start + t;
  let kvh = h / (p.heads / p.kvHeads);
  let kw = p.kvHeads * p.headDim;
  let vw = p.kvHeads * p.valueDim;
  var jBegin = 0u;
  var jEnd = p.keys;
  if (p.causal != 0u) {
    jEnd = min(p.keys, slot + 1u);
    if (p.window != 0u && slot + 1u > p.window) { jBegin = slot + 1u - p.window; }
  }
  for (var i = lid; i < p.headDim; i += ${WG}u) { qs[i] = q[row * p.heads * p.headDim + h * p.headDim + i]; }
  workgroupBarrier();

  var m = NEG_BIG;
  var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = jBegin; j0 < jEnd; j0 += ${WG}u) {
    let j = j0 + lid;
    var s = NEG_BIG;
    if (j < jEnd && keyMask[b * p.keys + j] != 0) {
      let kBase = (b * p.capacity + j) * kw + kvh * p.headDim;
      var dot = 0.0;
      for (var i = 0u; i < p.headDim; i++) { dot += qs[i] * kc[kBase + i]; }
      if (p.alibi != 0u) {
        let term = slopes[h] * f32(keyPos[b * p.keys + j]);
        s = select(dot * p.scale + term, (dot + term) * p.scale, p.alibiScaled != 0u);
      } else {
        s = dot * p.scale;
      }
      if (p.softcap > 0.0) { s = p.softcap * safeTanh(s / p.softcap); }
      if (p.hasBias != 0u) { s += bias[(h * p.rows + t) * p.keys + j]; }
    }
    scores[lid] = s;
    workgroupBarrier();
    let count = min(${WG}u, jEnd - j0);
    var chunkMax = NEG_BIG;
    for (var c = 0u; c < count; c++) { chunkMax = max(chunkMax, scores[c]); }
    let newM = max(m, chunkMax);
    let visible = newM > 0.5 * NEG_BIG;
    let correction = select(1.0, exp(m - newM), visible && m > 0.5 * NEG_BIG);
    l *= correction;
    for (var d = 0u; d < 4u; d++) { acc[d] *= correction; }
    if (visible) {
      for (var c = 0u; c < count; c++) {
        let sc = scores[c];
        if (sc > 0.5 * NEG_BIG) {
          let w = exp(sc - newM);
          l += w;
          let vBase = (b * p.capacity + j0 + c) * vw + kvh * p.valueDim;
          for (var d = 0u; d < 4u; d++) {
            let dim = lid + d * ${WG}u;
            if (dim < p.valueDim) { acc[d] += w * vc[vBase + dim]; }
          }
        }
      }
    }
    m = newM;
    workgroupBarrier();
  }
  let outBase = row * p.heads * p.valueDim + h * p.valueDim;
  for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * ${WG}u;
    if (dim < p.valueDim) { out[outBase + dim] = select(0.0, acc[d] / l, l > 0.0); }
  }
}`,
  };
}
