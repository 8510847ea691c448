/**
 * Kernels that move rows and columns: column ranges, row gathers and scatters, embeddings and KV-cache
 * appends. One invocation per output element unless noted.
 */
import type { StorageDtype } from '@tp/core';
import type { KernelDef } from '../kernel.js';
import { dtypeView, ROUND_HALF } from '../wgsl/dtype.js';

export const LAYOUT_WG = 256;
const INDEX = `let i = flatGroup(wid, nwg) * ${LAYOUT_WG}u + lid.x;`;
const MAIN = `@compute @workgroup_size(${LAYOUT_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u)`;

/** y[r, dstStart + c] = x[r, srcStart + c] for c < width: one column range (gatherColumns runs one per range). */
export function copyColumnsKernel(): KernelDef {
  return {
    name: 'copy_columns',
    bindings: [{ name: 'x', type: 'array<f32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['rows', 'u32'], ['width', 'u32'], ['srcCols', 'u32'], ['srcStart', 'u32'], ['dstCols', 'u32'], ['dstStart', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.rows * p.width) { return; }
  let r = i / p.width;
  let c = i % p.width;
  y[r * p.dstCols + p.dstStart + c] = x[r * p.srcCols + p.srcStart + c];
}`,
  };
}

/** y[i] = x[rows[i]] (zeros for a row outside x: ids are device data, unchecked on the host). */
export function gatherRowsKernel(): KernelDef {
  return {
    name: 'gather_rows',
    bindings: [{ name: 'x', type: 'array<f32>' }, { name: 'index', type: 'array<i32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['n', 'u32'], ['cols', 'u32'], ['xRows', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.n * p.cols) { return; }
  let r = index[i / p.cols];
  let c = i % p.cols;
  y[i] = select(0.0, x[u32(r) * p.cols + c], r >= 0 && u32(r) < p.xRows);
}`,
  };
}

/**
 * target[rows[i]] += w[i] · src[i]. One invocation per column walks the rows in order, so repeated
 * target rows accumulate without races and in the same order as a sequential loop.
 */
export function scatterAddRowsKernel(): KernelDef {
  return {
    name: 'scatter_add_rows',
    bindings: [{ name: 'dst', type: 'array<f32>', write: true }, { name: 'src', type: 'array<f32>' }, { name: 'index', type: 'array<i32>' }, { name: 'w', type: 'array<f32>' }],
    params: [['n', 'u32'], ['cols', 'u32'], ['targetRows', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.cols) { return; }
  for (var k = 0u; k < p.n; k++) {
    let r = index[k];
    if (r >= 0 && u32(r) < p.targetRows) {
      dst[u32(r) * p.cols + i] += w[k] * src[k * p.cols + i];
    }
  }
}`,
  };
}

/**
 * y[i, c] = table[ids[i] - rowOffset, c] · scale, or 0 when that row is not in the table (nothing
 * written there with `onlyHeld`: a later block of a split table keeps what the earlier ones wrote).
 */
export function embeddingKernel(dtype: StorageDtype, nativeF16: boolean): KernelDef {
  const t = dtypeView('table', dtype, nativeF16);
  return {
    name: `embedding_${t.tag}`,
    f16: t.f16,
    bindings: [t.binding, { name: 'ids', type: 'array<i32>' }, { name: 'y', type: 'array<f32>', write: true }],
    params: [['n', 'u32'], ['dim', 'u32'], ['tableRows', 'u32'], ['rowOffset', 'i32'], ['scale', 'f32'], ['onlyHeld', 'u32']],
    code: `${t.code}
${MAIN} {
  ${INDEX}
  if (i >= p.n * p.dim) { return; }
  let r = ids[i / p.dim] - p.rowOffset;
  let c = i % p.dim;
  let held = r >= 0 && u32(r) < p.tableRows;
  if (held) { y[i] = tableAt(u32(r) * p.dim + c) * p.scale; } else if (p.onlyHeld == 0u) { y[i] = 0.0; }
}`,
  };
}

/**
 * Append rows to a KV cache: cache[b, start + t, :] = src[b·rows + t, :] for t < rows, the cache being
 * [batch, capacity, stride] in its dtype. An f32 cache is written one element per invocation (stride =
 * width). A 16-bit cache is written one u32 word (two elements) per invocation, each rounded to nearest
 * even from the f32 bits (ROUND_HALF); its stride is the width rounded up to even, so every slot starts
 * on a word and no two invocations write one word (a pad element, when there is one, is written 0).
 */
export function kvWriteKernel(dtype: StorageDtype = 'f32'): KernelDef {
  if (dtype === 'f32') {
    return {
      name: 'kv_write',
      bindings: [{ name: 'src', type: 'array<f32>' }, { name: 'cache', type: 'array<f32>', write: true }],
      params: [['batch', 'u32'], ['rows', 'u32'], ['width', 'u32'], ['capacity', 'u32'], ['start', 'u32']],
      code: `${MAIN} {
  ${INDEX}
  if (i >= p.batch * p.rows * p.width) { return; }
  let c = i % p.width;
  let bt = i / p.width;
  let b = bt / p.rows;
  let t = bt % p.rows;
  cache[(b * p.capacity + p.start + t) * p.width + c] = src[i];
}`,
    };
  }
  const round = dtype === 'f16' ? 'f16Bits' : 'bf16Bits';
  return {
    name: `kv_write_${dtype}`,
    // The f32 source as raw bits: a float load could flush a subnormal before it is rounded.
    bindings: [{ name: 'src', type: 'array<u32>' }, { name: 'cache', type: 'array<u32>', write: true }],
    params: [['batch', 'u32'], ['rows', 'u32'], ['width', 'u32'], ['capacity', 'u32'], ['start', 'u32'], ['words', 'u32']],
    code: `${ROUND_HALF}
${MAIN} {
  ${INDEX}
  if (i >= p.batch * p.rows * p.words) { return; }
  let w = i % p.words;
  let bt = i / p.words;
  let b = bt / p.rows;
  let t = bt % p.rows;
  let e = 2u * w;
  let lo = ${round}(src[bt * p.width + e]);
  let hi = select(0u, ${round}(src[bt * p.width + min(e + 1u, p.width - 1u)]), e + 1u < p.width);
  cache[(b * p.capacity + p.start + t) * p.words + w] = lo | (hi << 16u);
}`,
  };
}

/**
 * A reordered copy of a KV cache (beam search): dst[b, j, :] = src[order[b], j, :] for the `length`
 * written slots, both [batch, capacity, width] in 32-bit words (any cache dtype: the bits are copied).
 * A copy, because an order may repeat and drop rows.
 */
export function reorderBatchKernel(): KernelDef {
  return {
    name: 'reorder_batch',
    bindings: [{ name: 'src', type: 'array<u32>' }, { name: 'order', type: 'array<i32>' }, { name: 'dst', type: 'array<u32>', write: true }],
    params: [['batch', 'u32'], ['length', 'u32'], ['width', 'u32'], ['capacity', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.batch * p.length * p.width) { return; }
  let c = i % p.width;
  let bj = i / p.width;
  let b = bj / p.length;
  let j = bj % p.length;
  let s = u32(clamp(order[b], 0, i32(p.batch) - 1));
  dst[(b * p.capacity + j) * p.width + c] = src[(s * p.capacity + j) * p.width + c];
}`,
  };
}

/** y[i] = i (the identity row list of expertRows). */
export function iotaKernel(): KernelDef {
  return {
    name: 'iota',
    bindings: [{ name: 'y', type: 'array<i32>', write: true }],
    params: [['n', 'u32']],
    code: `${MAIN} {
  ${INDEX}
  if (i >= p.n) { return; }
  y[i] = i32(i);
}`,
  };
}
