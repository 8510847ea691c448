/**
 * Attention of one query row and head per 64-invocation workgroup, over the KV cache in chunks of 64
 * keys with an online softmax (a running maximum m, a running sum l, and the value accumulator rescaled
 * by e^(m_old - m_new) when the maximum grows), so any number of keys fits without a scores buffer.
 *
 * In each chunk an invocation scores one key (q·k plus the relative terms, then ALiBi, the soft cap
 * and the additive bias, in the reference's order); after a barrier it knows the chunk's maximum and
 * turns its key's score into a weight (one exp per key); after a second barrier every invocation sees
 * the chunk's weights, and each one owns value dimensions lid, lid + 64, … of the output. Masked keys
 * (padding, beyond the causal limit, outside the window, a bias entry ≤ -1e30) score NEG_BIG and weigh
 * exactly 0; a query with no visible key outputs zeros.
 *
 * Each optional input is a pipeline variant (`AttentionVariant`), not a per-key test of a parameter:
 * a variant binds and reads only what it uses, and the plain variant's loop is what it was before
 * relative terms and expectation scoring existed. An adapter may allow as few as 8 storage buffers per
 * shader (SwiftShader: 10), fewer than ALiBi, a bias and three relative tables need together: then the
 * `packed` variant reads all the optional inputs from one buffer the rank copies them into, at word
 * offsets given as parameters. The KV cache's dtype is a variant too (f16 and bf16 widened as read,
 * wgsl/dtype.ts), and so is `split`: flash-decoding, where each of `splits` workgroups per row and head
 * takes a consecutive piece of the row's keys and writes a partial that `attentionMergeKernel` combines.
 * Every feature splits: the pieces partition the keys and scoring is per key, so a piece computes what
 * the whole row would over its keys, and the merge is the online softmax's own rescaling (or, for
 * expectation scoring, a plain sum before the normalization).
 *
 * Layouts: q [batch·rows, heads·headDim]; caches [batch, capacity, kStride|vStride] (kvHeads·headDim
 * and kvHeads·valueDim, rounded up to even for a 16-bit cache); keyMask and keyPositions [batch, keys];
 * bias [heads, rows, keys] or [batch, heads, rows, keys] (biasBatch is the per-sequence stride, 0 when
 * broadcast); relIndex [rows, keys]; relative tables [positions, width] with head h's slice at
 * h·relXHead (0 for a table shared by the heads); out [batch·rows, heads·valueDim], or the partials
 * [batch·rows·heads·splits, valueDim + 2] when split.
 */
import { TpError, type StorageDtype } from '@tp/core';
import type { Binding, KernelDef } from '../kernel.js';
import { dtypeView } from '../wgsl/dtype.js';
import { MATH } from '../wgsl/math.js';

const WG = 64;
/** Value dimensions one invocation accumulates (valueDim ≤ 64 · this). */
export const MAX_VALUE_DIM = 4 * WG;
/** Query head width the kernel stages in shared memory. */
export const MAX_HEAD_DIM = 512;

/** Which optional inputs a pipeline reads: each combination is its own pipeline. */
export interface AttentionVariant {
  /** ALiBi slopes and key positions. */
  readonly alibi: boolean;
  /** An additive bias (broadcast over the batch or per sequence: a parameter, not a variant). */
  readonly bias: boolean;
  /** Relative-position tables (AttentionSpec.relative), read through relIndex. */
  readonly relKeys: boolean;
  readonly relQueries: boolean;
  readonly relValues: boolean;
  /** YOSO's expectation weights instead of a softmax (then none of the above: they do not apply). */
  readonly expectation: boolean;
  /** The optional inputs come packed in one buffer (`packed`, 32-bit words) instead of a binding each. */
  readonly packed: boolean;
  /** The KV cache's dtype (default f32); f16 is read as `array<f16>` with `nativeF16`, else unpacked from u32. */
  readonly kv?: StorageDtype;
  readonly nativeF16?: boolean;
  /**
   * Flash-decoding: each workgroup scores one of `splits` consecutive pieces of its row's visible keys
   * and writes a partial (unnormalized values, running maximum, sum) for `attentionMergeKernel`.
   */
  readonly split?: boolean;
}

/** The optional inputs in binding (and packing) order, with their WGSL element types. */
export const OPTIONAL_INPUTS = [
  ['keyPos', 'i32'],
  ['slopes', 'f32'],
  ['bias', 'f32'],
  ['relIndex', 'i32'],
  ['relK', 'f32'],
  ['relQ', 'f32'],
  ['relV', 'f32'],
] as const;

export type OptionalInput = (typeof OPTIONAL_INPUTS)[number][0];

/** The optional inputs a variant reads, in order. */
export function optionalInputs(v: AttentionVariant): OptionalInput[] {
  const uses: Record<OptionalInput, boolean> = {
    keyPos: v.alibi,
    slopes: v.alibi,
    bias: v.bias,
    relIndex: v.relKeys || v.relQueries || v.relValues,
    relK: v.relKeys,
    relQ: v.relQueries,
    relV: v.relValues,
  };
  return OPTIONAL_INPUTS.map(([name]) => name).filter((name) => uses[name]);
}

/**
 * The bit pattern of f32(1e30): a negative bias whose magnitude's bits reach it is ≤ -1e30 and masks
 * its key. Compared as integers because WGSL implementations may assume no infinities in float
 * comparisons, and -Infinity must mask too.
 */
const MASK_MAGNITUDE_BITS = new Uint32Array(new Float32Array([1e30]).buffer)[0]!;
const MASKS_KEY = /* wgsl */ `
fn masksKey(x: f32) -> bool {
  let u = bitcast<u32>(x);
  return (u & 0x80000000u) != 0u && (u & 0x7fffffffu) >= ${MASK_MAGNITUDE_BITS}u;
}`;

/** Cephes' acosf (S. L. Moshier): WGSL's acos promises little accuracy, and YOSO raises it to a power. */
const ACOS = /* wgsl */ `
fn asinSmall(x: f32) -> f32 {
  let z = x * x;
  return x + x * z * ((((4.2163199048e-2 * z + 2.4181311049e-2) * z + 4.5470025998e-2) * z + 7.4953002686e-2) * z + 1.6666752422e-1);
}
fn accurateAcos(x: f32) -> f32 {
  if (x < -0.5) { return 3.14159265358979 - 2.0 * asinSmall(sqrt(0.5 * (1.0 + x))); }
  if (x > 0.5) { return 2.0 * asinSmall(sqrt(0.5 * (1.0 - x))); }
  return 1.57079632679490 - asinSmall(x);
}
/** x^bits for x in [0, 1]: the integer part by squaring (exact to rounding), a fractional rest by pow. */
fn powBits(x: f32) -> f32 {
  var result = 1.0;
  var base = x;
  var n = p.bitsInt;
  loop {
    if (n == 0u) { break; }
    if ((n & 1u) != 0u) { result *= base; }
    base *= base;
    n >>= 1u;
  }
  if (p.bitsFrac > 0.0) { result *= select(0.0, exp2(p.bitsFrac * log2(x)), x > 0.0); }
  return result;
}`;

export function attentionVariantName(v: AttentionVariant): string {
  const parts = ['attention'];
  if (v.expectation) parts.push('expectation');
  if (v.alibi) parts.push('alibi');
  if (v.bias) parts.push('bias');
  const rel = `${v.relKeys ? 'K' : ''}${v.relQueries ? 'Q' : ''}${v.relValues ? 'V' : ''}`;
  if (rel !== '') parts.push(`rel${rel}`);
  if (v.packed) parts.push('packed');
  if ((v.kv ?? 'f32') !== 'f32') parts.push(`kv${dtypeView('kc', v.kv!, v.nativeF16 ?? false).tag}`);
  if (v.split) parts.push('split');
  return parts.join('_');
}

export function attentionKernel(v: AttentionVariant): KernelDef {
  if (v.expectation && (v.alibi || v.bias || v.relKeys || v.relQueries || v.relValues)) {
    throw new TpError('internal', 'attention: expectation scoring applies no ALiBi, bias or relative terms; ask for the variant without them');
  }
  const relative = v.relKeys || v.relQueries || v.relValues;
  const inputs = optionalInputs(v);
  const type = Object.fromEntries(OPTIONAL_INPUTS) as Record<OptionalInput, 'i32' | 'f32'>;
  const kc = dtypeView('kc', v.kv ?? 'f32', v.nativeF16 ?? false);
  const vc = dtypeView('vc', v.kv ?? 'f32', v.nativeF16 ?? false);
  const bindings: Binding[] = [{ name: 'q', type: 'array<f32>' }, kc.binding, vc.binding, { name: 'keyMask', type: 'array<i32>' }];
  if (v.packed && inputs.length > 0) bindings.push({ name: 'packed', type: 'array<u32>' });
  else for (const name of inputs) bindings.push({ name, type: `array<${type[name]}>` });
  // Split: out holds each workgroup's partial, [groups · splits, valueDim + 2] (see attentionMergeKernel).
  bindings.push({ name: 'out', type: 'array<f32>', write: true });
  // Element i of each optional input, from its binding or from the packed words.
  const accessors = inputs
    .map((name) => `fn ${name}At(i: u32) -> ${type[name]} { return ${v.packed ? `bitcast<${type[name]}>(packed[p.${name}Off + i])` : `${name}[i]`}; }`)
    .join('\n');

  const params: Array<readonly [string, 'u32' | 'f32']> = [
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
    ['alibiScaled', 'u32'],
    ['biasBatch', 'u32'],
    ['bitsInt', 'u32'],
    ['bitsFrac', 'f32'],
    ['kStride', 'u32'],
    ['vStride', 'u32'],
    ['splits', 'u32'],
  ];
  for (const x of ['K', 'Q', 'V']) params.push([`rel${x}Rows`, 'u32'], [`rel${x}Stride`, 'u32'], [`rel${x}Head`, 'u32']);
  if (v.packed) for (const name of inputs) params.push([`${name}Off`, 'u32']);

  // ── Scoring one key (invocation lid, key j of sequence b, visible by mask and causality) ──
  const relRow = (x: 'K' | 'Q' | 'V') => `let rel${x}Base = min(r, p.rel${x}Rows - 1u) * p.rel${x}Stride + h * p.rel${x}Head;`;
  const dotTerms = [
    'let kv = kcAt(kBase + i);',
    'dot += qs[i] * kv;',
    v.relKeys ? 'dot += qs[i] * relKAt(relKBase + i);' : '',
    v.relQueries ? 'dot += kv * relQAt(relQBase + i);' : '',
    v.expectation ? 'kk += kv * kv;' : '',
  ].filter((s) => s !== '');
  const biasRead = 'biasAt(b * p.biasBatch + (h * p.rows + t) * p.keys + j)';
  const score = v.expectation
    ? `var dot = 0.0;
      var kk = 0.0;
      for (var i = 0u; i < p.headDim; i++) { ${dotTerms.join(' ')} }
      // F.normalize(q) · F.normalize(k) (eps 1e-12), kept inside acos's domain.
      let cosine = clamp(dot * qInv / max(sqrt(kk), 1e-12), -1.0, 1.0);
      s = powBits(1.0 - accurateAcos(cosine) * 0.318309886183791);`
    : `${v.relKeys ? relRow('K') : ''}
      ${v.relQueries ? relRow('Q') : ''}
      var dot = 0.0;
      for (var i = 0u; i < p.headDim; i++) { ${dotTerms.join(' ')} }
      ${
        v.alibi
          ? `let term = slopesAt(h) * f32(keyPosAt(b * p.keys + j));
      s = select(dot * p.scale + term, (dot + term) * p.scale, p.alibiScaled != 0u);`
          : 's = dot * p.scale;'
      }
      if (p.softcap > 0.0) { s = p.softcap * safeTanh(s / p.softcap); }
      ${v.bias ? 's += bv;' : ''}`;
  // A bias entry ≤ -1e30 hides its key as padding does.
  const scoreVisible = v.bias
    ? `let bv = ${biasRead};
      if (!masksKey(bv)) {
      ${score}
      }`
    : score;
  const relIndexRead = relative ? `r = u32(max(relIndexAt(t * p.keys + j), 0));` : '';

  // ── Combining a chunk's scores into the accumulators ──
  // Each invocation turns its own key's score into a weight (one exp per key, not one per key and
  // invocation), after the chunk's maximum is known; then every invocation adds the chunk's weighted
  // values for its dimensions. A weight < 0 marks a key nobody sees. Invocations past valueDim own no
  // dimension and skip the loop (lid 0, which writes l, always has one): on lavapipe a group of SIMD
  // lanes with nothing to do then skips it too, 2.3× faster at valueDim 8 and 1.15× at 32.
  const valueAt = v.relValues ? '(vcAt(vBase + dim) + relVAt(relVBase + dim))' : 'vcAt(vBase + dim)';
  const relVBase = v.relValues ? 'let relVBase = min(rels[c], p.relVRows - 1u) * p.relVStride + h * p.relVHead;' : '';
  const weigh = v.expectation
    ? 'weights[lid] = select(-1.0, s, s > 0.0);'
    : `var chunkMax = NEG_BIG;
    for (var c = 0u; c < count; c++) { chunkMax = max(chunkMax, scores[c]); }
    let newM = max(m, chunkMax);
    let visible = newM > 0.5 * NEG_BIG;
    let correction = select(1.0, exp(m - newM), visible && m > 0.5 * NEG_BIG);
    l *= correction;
    for (var d = 0u; d < 4u; d++) { acc[d] *= correction; }
    weights[lid] = select(-1.0, exp(s - newM), visible && s > 0.5 * NEG_BIG);
    m = newM;`;
  const accumulate = `if (lid < p.valueDim) { for (var c = 0u; c < count; c++) {
      let w = weights[c];
      if (w >= 0.0) {
        ${v.expectation ? '' : 'l += w;'}
        let vBase = (b * p.capacity + j0 + c) * p.vStride + kvh * p.valueDim;
        ${relVBase}
        for (var d = 0u; d < 4u; d++) {
          let dim = lid + d * ${WG}u;
          if (dim < p.valueDim) { acc[d] += w * ${valueAt}; }
        }
      }
    } }`;

  // ── Writing the row ──
  const partial = `// A partial for attentionMergeKernel: the values unnormalized, then the maximum and the sum.
  let partBase = part * (p.valueDim + 2u);
  for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * ${WG}u;
    if (dim < p.valueDim) { out[partBase + dim] = acc[d]; }
  }
  if (lid == 0u) {
    out[partBase + p.valueDim] = ${v.expectation ? '0.0' : 'm'};
    out[partBase + p.valueDim + 1u] = ${v.expectation ? '0.0' : 'l'};
  }`;
  const finish = v.split
    ? partial
    : v.expectation
    ? `// The head's output row L2-normalized (F.normalize, eps 1e-12): a workgroup sum of squares.
  var squares = 0.0;
  for (var d = 0u; d < 4u; d++) { if (lid + d * ${WG}u < p.valueDim) { squares += acc[d] * acc[d]; } }
  scores[lid] = squares;
  workgroupBarrier();
  var total = 0.0;
  for (var c = 0u; c < ${WG}u; c++) { total += scores[c]; }
  let inv = 1.0 / max(sqrt(total), 1e-12);
  for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * ${WG}u;
    if (dim < p.valueDim) { out[outBase + dim] = acc[d] * inv; }
  }`
    : `for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * ${WG}u;
    if (dim < p.valueDim) { out[outBase + dim] = select(0.0, acc[d] / l, l > 0.0); }
  }`;

  return {
    name: attentionVariantName(v),
    bindings,
    params,
    f16: kc.f16,
    code: `${MATH}
${kc.code}
${vc.code}
${v.expectation ? ACOS : ''}
${accessors}
${v.bias ? MASKS_KEY : ''}
var<workgroup> qs: array<f32, ${MAX_HEAD_DIM}>;
var<workgroup> scores: array<f32, ${WG}>;
var<workgroup> weights: array<f32, ${WG}>;
${v.relValues ? `var<workgroup> rels: array<u32, ${WG}>;` : ''}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  ${v.split ? `let part = flatGroup(wid, nwg);
  if (part >= p.batch * p.rows * p.heads * p.splits) { return; }
  let piece = part % p.splits;
  let flat = part / p.splits;` : `let flat = flatGroup(wid, nwg);
  if (flat >= p.batch * p.rows * p.heads) { return; }`}
  let h = flat % p.heads;
  let row = flat / p.heads;
  let b = row / p.rows;
  let t = row % p.rows;
  let slot = p.start + t;
  let kvh = h / (p.heads / p.kvHeads);
  var jBegin = 0u;
  var jEnd = p.keys;
  if (p.causal != 0u) {
    jEnd = min(p.keys, slot + 1u);
    if (p.window != 0u && slot + 1u > p.window) { jBegin = slot + 1u - p.window; }
  }
  ${
    v.split
      ? `// This workgroup's piece of the row's visible keys [jBegin, jEnd): the piece'th of \`splits\`.
  let span = (select(0u, jEnd - jBegin, jEnd > jBegin) + p.splits - 1u) / p.splits;
  jBegin = min(jEnd, jBegin + piece * span);
  jEnd = min(jEnd, jBegin + span);`
      : ''
  }
  for (var i = lid; i < p.headDim; i += ${WG}u) { qs[i] = q[row * p.heads * p.headDim + h * p.headDim + i]; }
  workgroupBarrier();
  ${
    v.expectation
      ? `var qq = 0.0;
  for (var i = 0u; i < p.headDim; i++) { qq += qs[i] * qs[i]; }
  let qInv = 1.0 / max(sqrt(qq), 1e-12);`
      : ''
  }

  ${v.expectation ? '' : 'var m = NEG_BIG;\n  var l = 0.0;'}
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = jBegin; j0 < jEnd; j0 += ${WG}u) {
    let j = j0 + lid;
    var s = ${v.expectation ? '0.0' : 'NEG_BIG'};
    ${relative ? 'var r = 0u;' : ''}
    if (j < jEnd && keyMask[b * p.keys + j] != 0) {
      let kBase = (b * p.capacity + j) * p.kStride + kvh * p.headDim;
      ${relIndexRead}
      ${scoreVisible}
    }
    // Two barriers a chunk: after the scores (for the maximum), after the weights. The next chunk
    // writes scores while others may still read weights, and weights only after its first barrier.
    ${v.expectation ? '' : 'scores[lid] = s;\n    workgroupBarrier();'}
    let count = min(${WG}u, jEnd - j0);
    ${weigh}
    ${v.relValues ? 'rels[lid] = r;' : ''}
    workgroupBarrier();
    ${accumulate}
    ${v.expectation ? 'workgroupBarrier();' : ''}
  }
  ${v.split ? '' : 'let outBase = row * p.heads * p.valueDim + h * p.valueDim;'}
  ${finish}
}`,
  };
}

/**
 * The merge pass of split (flash-decoding) attention: group g = row·heads + h combines its `splits`
 * partials [groups · splits, valueDim + 2] — values unnormalized against the piece's maximum m_s, then
 * m_s and the piece's sum l_s — into out[g, :] = Σ e^(m_s - M) acc_s / Σ e^(m_s - M) l_s with
 * M = max m_s, which is what one online softmax over all the pieces computes. A piece with no visible
 * key has m_s = NEG_BIG and weighs 0; a row with none at all outputs zeros, as the unsplit kernel does.
 * Expectation scoring (no softmax) adds the pieces and L2-normalizes the sum, as the unsplit kernel
 * normalizes its row. One 64-invocation workgroup per group, each invocation owning value dimensions
 * lid, lid + 64, ….
 */
export function attentionMergeKernel(expectation: boolean): KernelDef {
  const combine = expectation
    ? `for (var s = 0u; s < p.splits; s++) {
    let base = (g * p.splits + s) * width;
    for (var d = 0u; d < 4u; d++) {
      let dim = lid + d * ${WG}u;
      if (dim < p.valueDim) { acc[d] += parts[base + dim]; }
    }
  }
  var squares = 0.0;
  for (var d = 0u; d < 4u; d++) { if (lid + d * ${WG}u < p.valueDim) { squares += acc[d] * acc[d]; } }
  sums[lid] = squares;
  workgroupBarrier();
  var total = 0.0;
  for (var c = 0u; c < ${WG}u; c++) { total += sums[c]; }
  let scale = 1.0 / max(sqrt(total), 1e-12);
  let divisor = 1.0;`
    : `var top = NEG_BIG;
  for (var s = 0u; s < p.splits; s++) { top = max(top, parts[(g * p.splits + s) * width + p.valueDim]); }
  var total = 0.0;
  if (top > 0.5 * NEG_BIG) {
    for (var s = 0u; s < p.splits; s++) {
      let base = (g * p.splits + s) * width;
      let m = parts[base + p.valueDim];
      if (m > 0.5 * NEG_BIG) {
        let w = exp(m - top);
        total += w * parts[base + p.valueDim + 1u];
        for (var d = 0u; d < 4u; d++) {
          let dim = lid + d * ${WG}u;
          if (dim < p.valueDim) { acc[d] += w * parts[base + dim]; }
        }
      }
    }
  }
  // As the unsplit kernel: acc / l, zeros where nothing was visible.
  let scale = 1.0;
  let divisor = select(1.0, total, total > 0.0);
  if (total <= 0.0) { acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0); }`;
  return {
    name: expectation ? 'attention_merge_expectation' : 'attention_merge',
    bindings: [{ name: 'parts', type: 'array<f32>' }, { name: 'out', type: 'array<f32>', write: true }],
    params: [['groups', 'u32'], ['splits', 'u32'], ['valueDim', 'u32']],
    code: `${expectation ? `var<workgroup> sums: array<f32, ${WG}>;` : ''}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lid = lid3.x;
  let g = flatGroup(wid, nwg);
  if (g >= p.groups) { return; }
  let width = p.valueDim + 2u;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  ${combine}
  for (var d = 0u; d < 4u; d++) {
    let dim = lid + d * ${WG}u;
    if (dim < p.valueDim) { out[g * p.valueDim + dim] = acc[d] * scale / divisor; }
  }
}`,
  };
}
