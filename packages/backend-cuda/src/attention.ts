/**
 * What one attention call launches, decided and checked on the host before anything is enqueued:
 * which specialisation of kernels.cu's attention_partial (softmax, relative, expectation) and of the
 * merge, and the version-3 arguments — the bias's layout (shared [heads, rows, keys] or per sequence
 * [batch, heads, rows, keys]), the relative-position tables (per head or shared) with their index,
 * and YOSO's bits. Bad input is an error naming the tensor, its shape and the shapes it may have.
 */
import { TpError, type AttentionSpec, type AttentionStep, type DeviceTensor } from '@tp/core';
import type { AttentionPartialArgs, KernelName } from './kernels.js';
import type { Handle } from './native.js';

/** The slice of CudaTensor this module reads. */
interface Tensor extends DeviceTensor {
  readonly ptr: Handle;
  readonly hostInts?: Int32Array | undefined;
}

export interface AttentionShape {
  batch: number;
  rows: number;
  keys: number;
  heads: number;
  headDim: number;
  valueDim: number;
}

/** The launch-specific part of an attention call (the rest — q, caches, sizes — the rank fills in). */
export interface AttentionVariant {
  partial: Extract<KernelName, `tp_attention_partial${string}`>;
  merge: Extract<KernelName, `tp_attention_merge${string}`>;
  /** Extra dynamic shared memory per key of a chunk (the relative kernel keeps each key's values-table row). */
  sharedPerKey: number;
  args: Pick<
    AttentionPartialArgs,
    | 'bias'
    | 'biasBatchStride'
    | 'relIndex'
    | 'relKeys'
    | 'relKeysRows'
    | 'relKeysPerHead'
    | 'relQueries'
    | 'relQueriesRows'
    | 'relQueriesPerHead'
    | 'relValues'
    | 'relValuesRows'
    | 'relValuesPerHead'
    | 'bits'
  >;
}

const fail = (detail: string): never => {
  throw new TpError('kernel-invalid', `attention: ${detail}`);
};

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** The bias pointer and the stride between sequences (0: one bias broadcast over the batch). */
function biasLayout(bias: DeviceTensor | undefined, s: AttentionShape): { bias: number; biasBatchStride: number } {
  if (bias === undefined) return { bias: 0, biasBatchStride: 0 };
  const t = bias as Tensor;
  const shared = [s.heads, s.rows, s.keys];
  const perSequence = [s.batch, ...shared];
  if (t.dtype !== 'f32' || !(same(t.shape, shared) || same(t.shape, perSequence))) {
    fail(`the bias is ${t.dtype} ${shapeText(t.shape)}; it must be f32 [heads, rows, keys] = ${shapeText(shared)} (shared by the batch) or [batch, heads, rows, keys] = ${shapeText(perSequence)} (one per sequence)`);
  }
  return { bias: t.ptr, biasBatchStride: t.shape.length === 4 ? s.heads * s.rows * s.keys : 0 };
}

type TableName = 'keys' | 'queries' | 'values';

/** A relative table's pointer, rows and layout (per head or shared), checked against its width. */
function table(name: TableName, tensor: DeviceTensor | undefined, s: AttentionShape): { ptr: number; rows: number; perHead: number } {
  if (tensor === undefined) return { ptr: 0, rows: 0, perHead: 0 };
  const t = tensor as Tensor;
  const width = name === 'values' ? s.valueDim : s.headDim;
  const what = name === 'values' ? 'valueDim' : 'headDim';
  const [positions = 0, cols = 0] = t.shape;
  if (t.dtype !== 'f32' || t.shape.length !== 2 || positions < 1 || (cols !== width && cols !== s.heads * width)) {
    fail(
      `the relative ${name} table is ${t.dtype} ${shapeText(t.shape)}; it must be f32 [positions, heads·${what}] = [positions, ${s.heads * width}] (one slice per local head) or [positions, ${what}] = [positions, ${width}] (shared by the heads), with positions ≥ 1`,
    );
  }
  return { ptr: t.ptr, rows: positions, perHead: cols === width ? 0 : 1 };
}

/** The relative index, checked for shape and (where the host holds its values) for range. */
function relativeIndex(step: AttentionStep, s: AttentionShape, tables: ReadonlyArray<readonly [TableName, number]>): number {
  const index = step.relativeIndex as Tensor | undefined;
  if (index === undefined) fail('spec.relative needs step.relativeIndex (i32 [rows, keys]: the relative table row of each query row and key slot)');
  const t = index!;
  if (t.dtype !== 'i32' || !same(t.shape, [s.rows, s.keys])) fail(`relativeIndex is ${t.dtype} ${shapeText(t.shape)}; it must be i32 [rows, keys] = [${s.rows}, ${s.keys}]`);
  const values = t.hostInts;
  if (values !== undefined) {
    for (const [name, positions] of tables) {
      if (positions === 0) continue;
      const bad = values.findIndex((v) => v < 0 || v >= positions);
      if (bad >= 0) fail(`relativeIndex[${Math.floor(bad / s.keys)}, ${bad % s.keys}] = ${values[bad]} is outside the relative ${name} table's rows [0, ${positions})`);
    }
  }
  return t.ptr;
}

/** Checks the version-3 parts of an attention call and says what to launch. */
export function attentionVariant(spec: AttentionSpec, step: AttentionStep, s: AttentionShape): AttentionVariant {
  const scoring = spec.scoring ?? { kind: 'softmax' };
  if (scoring.kind !== 'softmax' && scoring.kind !== 'expectation') fail(`unknown scoring kind ${JSON.stringify((scoring as { kind: unknown }).kind)} (softmax | expectation)`);
  const bits = scoring.kind === 'expectation' ? scoring.bits : 0;
  if (scoring.kind === 'expectation' && !(Number.isInteger(bits) && bits >= 1)) fail(`expectation scoring needs a whole number of bits ≥ 1, not ${bits}`);
  const bias = biasLayout(step.bias, s);
  const none = { relIndex: 0, relKeys: 0, relKeysRows: 0, relKeysPerHead: 0, relQueries: 0, relQueriesRows: 0, relQueriesPerHead: 0, relValues: 0, relValuesRows: 0, relValuesPerHead: 0 };
  let relative = none;
  if (spec.relative !== undefined) {
    const keys = table('keys', spec.relative.keys, s);
    const queries = table('queries', spec.relative.queries, s);
    const values = table('values', spec.relative.values, s);
    const relIndex = relativeIndex(step, s, [
      ['keys', keys.rows],
      ['queries', queries.rows],
      ['values', values.rows],
    ]);
    relative = {
      relIndex,
      relKeys: keys.ptr,
      relKeysRows: keys.rows,
      relKeysPerHead: keys.perHead,
      relQueries: queries.ptr,
      relQueriesRows: queries.rows,
      relQueriesPerHead: queries.perHead,
      relValues: values.ptr,
      relValuesRows: values.rows,
      relValuesPerHead: values.perHead,
    };
  }
  if (scoring.kind === 'expectation') {
    // YOSO's weights take no scale, ALiBi, soft cap, bias or relative term (AttentionSpec.scoring):
    // the bias is checked but not passed, so it masks nothing either (as @tp/core/testing's reference).
    return { partial: 'tp_attention_partial_expectation', merge: 'tp_attention_merge_normalized', sharedPerKey: 0, args: { bias: 0, biasBatchStride: 0, ...none, bits } };
  }
  const hasRelative = relative.relKeys !== 0 || relative.relQueries !== 0 || relative.relValues !== 0;
  if (hasRelative) return { partial: 'tp_attention_partial_relative', merge: 'tp_attention_merge', sharedPerKey: 4, args: { ...bias, ...relative, bits: 0 } };
  return { partial: 'tp_attention_partial', merge: 'tp_attention_merge', sharedPerKey: 0, args: { ...bias, ...none, bits: 0 } };
}
