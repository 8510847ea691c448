/**
 * The kernels of kernels/kernels.cu as the TypeScript side sees them: each one's parameter list (in
 * order, with its C type class) and the packing of arguments into the buffer cuLaunchKernel takes
 * (CU_LAUNCH_PARAM_BUFFER_POINTER): every parameter at the next multiple of its own size. The
 * fatbin tests check these lists against the PTX and the parameter offsets against the cubins'
 * .nv.info records, so a kernel and its caller cannot drift apart.
 */
import { InternalError, type DeviceDtype } from '@tp/core';

/** A parameter's class: a device pointer, a 32-bit int, an f32, a 64-bit int. */
export type ArgKind = 'ptr' | 'i32' | 'f32' | 'i64';

const P = 'ptr' as const;
const I = 'i32' as const;
const F = 'f32' as const;
const L = 'i64' as const;

const GEMV = [P, P, P, P, I, I, I, I, I] as const; // out, x, w, bias, biasDtype, M, K, N, kChunk
const GEMM = [P, P, P, P, I, I, I, I] as const; // y, x, w, bias, biasDtype, M, K, N
/**
 * The three specialisations of kernels.cu's attention_partial (softmax, relative, expectation) take
 * the same parameters, in ATTENTION_PARTIAL_ORDER's order; each ignores those it does not use.
 */
export const ATTENTION_PARTIAL_ORDER = [
  'partOut', 'partMax', 'partSum', 'q', 'kCache', 'vCache', 'cacheDtype', 'keyMask', 'keyPositions', 'bias', 'biasBatchStride', 'alibi',
  'relIndex', 'relKeys', 'relKeysRows', 'relKeysPerHead', 'relQueries', 'relQueriesRows', 'relQueriesPerHead', 'relValues', 'relValuesRows', 'relValuesPerHead',
  'rows', 'start', 'keys', 'capacity', 'heads', 'kvHeads', 'headDim', 'valueDim', 'scale', 'causal', 'alibiScaled', 'window', 'softcap', 'bits', 'chunk',
] as const;
const ATTENTION_PARTIAL = [P, P, P, P, P, P, I, P, P, P, L, P, P, P, I, I, P, I, I, P, I, I, I, I, I, I, I, I, I, I, F, I, I, I, F, I, I] as const;
const ATTENTION_MERGE = [P, P, P, P, I, I, I] as const; // out, partOut, partMax, partSum, heads, valueDim, splits

export const KERNELS = {
  tp_gemv_f32: GEMV,
  tp_gemv_f16: GEMV,
  tp_gemv_bf16: GEMV,
  tp_splitk_reduce: [P, P, P, I, I, I, I], // y, partial, bias, biasDtype, M, N, splits
  tp_gemm_f32: GEMM,
  tp_gemm_f16: GEMM,
  tp_gemm_bf16: GEMM,
  tp_split_bf16: [P, P, P, L], // hi, lo, x, n
  tp_add_bias: [P, P, I, I, I], // y, bias, biasDtype, M, N
  tp_embedding: [P, P, I, P, I, I, I, F], // y, table, tableDtype, ids, rows, dim, rowOffset, scale
  tp_sinusoidal: [P, P, I, I], // y, positions, dim, kind
  tp_rotary: [P, P, P, I, I, I, I, I, F], // x, positions, invFreq, rows, heads, headDim, rotaryDim, interleaved, scale
  tp_norm: [P, P, P, I, P, I, I, I, F, I], // y, x, weight, weightDtype, bias, biasDtype, width, layer, eps, plusOne
  tp_add: [P, P, P, L, L], // y, a, b, n, bLength
  tp_unary: [P, P, L, I, F], // y, x, n, op, param
  tp_gated: [P, P, P, I, I, I, I], // y, gate, up, rows, cols, stride, kind
  tp_copy_columns: [P, I, I, P, I, I, I, I], // dst, dstCols, dstOffset, src, srcCols, srcOffset, rows, width
  tp_gather_rows: [P, P, P, I, I], // y, x, rows, n, cols
  tp_scatter_add_rows: [P, P, P, P, I, I], // target, src, rows, weights, n, cols
  tp_argmax: [P, P, I], // y, x, cols
  tp_topk: [P, P, P, I, I], // values, indices, x, cols, k
  tp_route: [P, P, P, I, I, I, I], // experts, weights, logits, rows, numExperts, topK, normalize
  tp_expert_weights: [P, P, P, P, I, I, I], // out, rowIds, experts, weights, rows, topK, e
  tp_kv_append: [P, I, P, I, I, I, I, I], // cache, cacheDtype, src, batch, rows, start, capacity, width
  tp_kv_move: [P, P, L, L, L], // dst, src, halves, srcPitch, dstPitch
  tp_kv_reorder: [P, P, P, L, L, I], // dst, src, order, halves, pitch, batch
  tp_attention_partial: ATTENTION_PARTIAL,
  tp_attention_partial_relative: ATTENTION_PARTIAL,
  tp_attention_partial_expectation: ATTENTION_PARTIAL,
  tp_attention_merge: ATTENTION_MERGE,
  tp_attention_merge_normalized: ATTENTION_MERGE,
  tp_reduce_sum: [P, P, P, P, P, P, P, P, P, I, L], // y, p0…p7, count, n
} as const satisfies Record<string, readonly ArgKind[]>;

export type KernelName = keyof typeof KERNELS;

/** The arguments of an attention_partial specialisation, by name (null pointers and unused values 0). */
export type AttentionPartialArgs = Record<(typeof ATTENTION_PARTIAL_ORDER)[number], number>;

/** `args` in the kernels' parameter order. */
export function attentionPartialArgs(args: AttentionPartialArgs): number[] {
  return ATTENTION_PARTIAL_ORDER.map((name) => args[name]);
}

const SIZE: Record<ArgKind, number> = { ptr: 8, i64: 8, i32: 4, f32: 4 };

/** Byte offset of every parameter and the buffer's size: each at the next multiple of its size. */
export function argLayout(kinds: readonly ArgKind[]): { offsets: number[]; size: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const k of kinds) {
    const s = SIZE[k];
    at = Math.ceil(at / s) * s;
    offsets.push(at);
    at += s;
  }
  return { offsets, size: at };
}

const layouts = new Map<string, { offsets: number[]; size: number }>();

/**
 * The argument buffer of `name` for `values` (device pointers and 64-bit ints as numbers below 2^53,
 * 0 for a null pointer). Throws when the count or a value does not fit its parameter.
 */
export function packArgs(name: KernelName, values: readonly number[]): Uint8Array {
  const kinds = KERNELS[name];
  if (values.length !== kinds.length) throw new InternalError(`kernel ${name} takes ${kinds.length} arguments, not ${values.length}`);
  let layout = layouts.get(name);
  if (layout === undefined) layouts.set(name, (layout = argLayout(kinds)));
  const buffer = new Uint8Array(layout.size);
  const view = new DataView(buffer.buffer);
  for (let i = 0; i < kinds.length; i++) {
    const v = values[i]!;
    const at = layout.offsets[i]!;
    switch (kinds[i]!) {
      case 'ptr':
      case 'i64':
        if (!Number.isSafeInteger(v) || (kinds[i] === 'ptr' && v < 0)) throw new InternalError(`kernel ${name}: argument ${i} (${v}) is not a ${kinds[i]}`);
        view.setBigInt64(at, BigInt(v), true);
        break;
      case 'i32':
        if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) throw new InternalError(`kernel ${name}: argument ${i} (${v}) does not fit an int`);
        view.setInt32(at, v, true);
        break;
      case 'f32':
        view.setFloat32(at, v, true);
        break;
    }
  }
  return buffer;
}

/** math.cuh's Dtype codes. */
export const DTYPE_CODE: Readonly<Record<DeviceDtype, number>> = { f32: 0, f16: 1, bf16: 2, i32: 3 };

/** math.cuh's Act codes (7 and 8 are tp_unary's scale and clamp). */
export const ACTIVATION_CODE = { identity: 0, silu: 1, gelu: 2, gelu_tanh: 3, relu: 4, gelu_quick: 5, sigmoid: 6 } as const;
export const UNARY_SCALE = 7;
export const UNARY_CLAMP = 8;

/** Output rows of one GEMV block (one warp each) and the largest M the GEMV serves. */
export const GEMV_ROWS = 8;
export const GEMV_MAX_M = 8;
export const GEMM_TILE = 64;

/**
 * How a decode GEMV splits K: enough blocks to fill the GPU twice over, each split a multiple of the
 * vector width (so 16-byte loads stay aligned) and at least 1024 elements.
 */
export function gemvSplits(N: number, K: number, multiprocessors: number, vector: number): { splits: number; kChunk: number } {
  const blocks = Math.ceil(N / GEMV_ROWS);
  const target = 2 * multiprocessors;
  let splits = 1;
  if (blocks < target && K >= 2048) splits = Math.min(Math.ceil(target / blocks), Math.floor(K / 1024), 32);
  splits = Math.max(1, splits);
  let kChunk = Math.ceil(K / splits / vector) * vector;
  splits = Math.ceil(K / kChunk);
  if (splits === 1) kChunk = Math.ceil(K / vector) * vector;
  return { splits, kChunk };
}

/** Keys per attention split: decode spreads long caches over the GPU, short ones stay in one split. */
export function attentionChunk(keys: number, blocks: number, multiprocessors: number): number {
  const min = 256;
  if (keys <= min) return Math.max(1, keys);
  const wanted = Math.max(1, Math.ceil((2 * multiprocessors) / Math.max(1, blocks)));
  return Math.max(min, Math.ceil(keys / wanted / 32) * 32);
}
