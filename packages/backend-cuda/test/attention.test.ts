/**
 * The host side of an attention call (src/attention.ts), without a GPU or the addon: which kernel
 * specialisation each spec launches, the version-3 arguments it packs (bias layout, relative tables,
 * bits), and the errors for bad input — each naming the tensor, what it is and what it must be.
 */
import type { AttentionSpec, AttentionStep, DeviceDtype, DeviceTensor } from '@tp/core';
import { describe, expect, it } from 'vitest';
import { attentionVariant, type AttentionShape } from '../src/attention.js';
import { argLayout, ATTENTION_PARTIAL_ORDER, attentionPartialArgs, KERNELS, packArgs } from '../src/kernels.js';

let nextPtr = 0x1000;
/** A device tensor as attention.ts sees it: shape, dtype, a fake pointer, and host values for small i32 uploads. */
function tensor(shape: number[], dtype: DeviceDtype = 'f32', hostInts?: Int32Array): DeviceTensor & { ptr: number; hostInts?: Int32Array } {
  nextPtr += 0x100;
  return { shape, dtype, ptr: nextPtr, ...(hostInts ? { hostInts } : {}) };
}

const shape: AttentionShape = { batch: 2, rows: 3, keys: 5, heads: 4, headDim: 8, valueDim: 6 };
const spec: AttentionSpec = { heads: 4, kvHeads: 2, headDim: 8, valueDim: 6, scale: 0.5, mask: 'causal' };
const step = (extra: Partial<AttentionStep> = {}): AttentionStep => ({ batch: 2, rows: 3, start: 2, keyMask: tensor([2, 5], 'i32'), ...extra });
const index = (fill = 1) => tensor([3, 5], 'i32', new Int32Array(15).fill(fill));

describe('attention kernel choice and version-3 arguments', () => {
  it('without the new fields: the plain softmax kernel, every version-3 argument 0 (the existing path)', () => {
    const v = attentionVariant(spec, step(), shape);
    expect(v.partial).toBe('tp_attention_partial');
    expect(v.merge).toBe('tp_attention_merge');
    expect(v.sharedPerKey).toBe(0);
    expect(Object.values(v.args).every((x) => x === 0)).toBe(true);
    expect(attentionVariant({ ...spec, scoring: { kind: 'softmax' } }, step(), shape).partial).toBe('tp_attention_partial');
  });

  it('a shared bias [heads, rows, keys] is broadcast (stride 0); a per-sequence one [batch, heads, rows, keys] steps by heads·rows·keys', () => {
    const shared = tensor([4, 3, 5]);
    expect(attentionVariant(spec, step({ bias: shared }), shape).args).toMatchObject({ bias: shared.ptr, biasBatchStride: 0 });
    const perSequence = tensor([2, 4, 3, 5]);
    const v = attentionVariant(spec, step({ bias: perSequence }), shape);
    expect(v.args).toMatchObject({ bias: perSequence.ptr, biasBatchStride: 4 * 3 * 5 });
    expect(v.partial).toBe('tp_attention_partial');
  });

  it('relative tables: the relative kernel, each table per head or shared by its width, its own row count, and chunk ints of shared memory', () => {
    const keys = tensor([9, 4 * 8]);
    const queries = tensor([7, 8]);
    const values = tensor([11, 6]);
    const idx = index();
    const v = attentionVariant({ ...spec, relative: { keys, queries, values } }, step({ relativeIndex: idx }), shape);
    expect(v.partial).toBe('tp_attention_partial_relative');
    expect(v.merge).toBe('tp_attention_merge');
    expect(v.sharedPerKey).toBe(4);
    expect(v.args).toEqual({
      bias: 0,
      biasBatchStride: 0,
      relIndex: idx.ptr,
      relKeys: keys.ptr,
      relKeysRows: 9,
      relKeysPerHead: 1,
      relQueries: queries.ptr,
      relQueriesRows: 7,
      relQueriesPerHead: 0,
      relValues: values.ptr,
      relValuesRows: 11,
      relValuesPerHead: 0,
      bits: 0,
    });
    const onlyValues = attentionVariant({ ...spec, relative: { values: tensor([3, 4 * 6]) } }, step({ relativeIndex: index(2) }), shape);
    expect(onlyValues.args).toMatchObject({ relKeys: 0, relQueries: 0, relValuesRows: 3, relValuesPerHead: 1 });
  });

  it('expectation scoring: its own partial kernel and the normalizing merge, the bits passed, and no bias or relative term (the reference applies none)', () => {
    const v = attentionVariant({ ...spec, scoring: { kind: 'expectation', bits: 8 }, relative: { keys: tensor([9, 8]) } }, step({ bias: tensor([2, 4, 3, 5]), relativeIndex: index() }), shape);
    expect(v.partial).toBe('tp_attention_partial_expectation');
    expect(v.merge).toBe('tp_attention_merge_normalized');
    expect(v.args).toMatchObject({ bits: 8, bias: 0, biasBatchStride: 0, relIndex: 0, relKeys: 0, relQueries: 0, relValues: 0 });
  });

  it('the three partial kernels share one parameter list, named in ATTENTION_PARTIAL_ORDER; attentionPartialArgs packs by name', () => {
    expect(KERNELS.tp_attention_partial_relative).toBe(KERNELS.tp_attention_partial);
    expect(KERNELS.tp_attention_partial_expectation).toBe(KERNELS.tp_attention_partial);
    expect(KERNELS.tp_attention_merge_normalized).toBe(KERNELS.tp_attention_merge);
    expect(ATTENTION_PARTIAL_ORDER.length).toBe(KERNELS.tp_attention_partial.length);
    const named = Object.fromEntries(ATTENTION_PARTIAL_ORDER.map((name, i) => [name, KERNELS.tp_attention_partial[i]]));
    expect(named).toMatchObject({ biasBatchStride: 'i64', relKeysRows: 'i32', relValues: 'ptr', scale: 'f32', softcap: 'f32', bits: 'i32', chunk: 'i32' });
    const values = Object.fromEntries(ATTENTION_PARTIAL_ORDER.map((name, i) => [name, name === 'scale' || name === 'softcap' ? i + 0.5 : i * 16])) as Parameters<typeof attentionPartialArgs>[0];
    const buffer = packArgs('tp_attention_partial_relative', attentionPartialArgs(values));
    const view = new DataView(buffer.buffer);
    const { offsets } = argLayout(KERNELS.tp_attention_partial);
    const at = (name: (typeof ATTENTION_PARTIAL_ORDER)[number]) => offsets[ATTENTION_PARTIAL_ORDER.indexOf(name)]!;
    expect(view.getBigInt64(at('biasBatchStride'), true)).toBe(BigInt(values.biasBatchStride));
    expect(view.getBigUint64(at('relValues'), true)).toBe(BigInt(values.relValues));
    expect(view.getInt32(at('relValuesPerHead'), true)).toBe(values.relValuesPerHead);
    expect(view.getInt32(at('bits'), true)).toBe(values.bits);
    expect(view.getFloat32(at('softcap'), true)).toBe(values.softcap);
  });
});

describe('attention input errors (thrown at enqueue, naming what is wrong and what it must be)', () => {
  const bad = (s: AttentionSpec, st: AttentionStep) => () => attentionVariant(s, st, shape);

  it('a bias of neither shape, or not f32', () => {
    expect(bad(spec, step({ bias: tensor([4, 3, 4]) }))).toThrow(/attention: the bias is f32 \[4, 3, 4\]; it must be f32 \[heads, rows, keys\] = \[4, 3, 5\] .* or \[batch, heads, rows, keys\] = \[2, 4, 3, 5\]/);
    expect(bad(spec, step({ bias: tensor([3, 4, 3, 5]) }))).toThrow(/\[3, 4, 3, 5\].*\[2, 4, 3, 5\]/);
    expect(bad(spec, step({ bias: tensor([4 * 3 * 5]) }))).toThrow(/the bias is f32 \[60\]/);
    expect(bad(spec, step({ bias: tensor([4, 3, 5], 'bf16') }))).toThrow(/the bias is bf16 \[4, 3, 5\]; it must be f32/);
    expect(bad(spec, step({ bias: tensor([4, 3, 5]) }))).not.toThrow();
  });

  it('relative without relativeIndex', () => {
    expect(bad({ ...spec, relative: { keys: tensor([9, 8]) } }, step())).toThrow(/attention: spec\.relative needs step\.relativeIndex \(i32 \[rows, keys\]/);
  });

  it('a relativeIndex that is not i32 [rows, keys]', () => {
    const s = { ...spec, relative: { keys: tensor([9, 8]) } };
    expect(bad(s, step({ relativeIndex: tensor([5, 3], 'i32') }))).toThrow(/relativeIndex is i32 \[5, 3\]; it must be i32 \[rows, keys\] = \[3, 5\]/);
    expect(bad(s, step({ relativeIndex: tensor([15], 'i32') }))).toThrow(/relativeIndex is i32 \[15\]/);
    expect(bad(s, step({ relativeIndex: tensor([3, 5], 'f32') }))).toThrow(/relativeIndex is f32 \[3, 5\]/);
  });

  it('a table of the wrong width, dtype or rank (keys and queries: heads·headDim or headDim; values: heads·valueDim or valueDim)', () => {
    const st = step({ relativeIndex: index() });
    expect(bad({ ...spec, relative: { keys: tensor([9, 6]) } }, st)).toThrow(/the relative keys table is f32 \[9, 6\]; it must be f32 \[positions, heads·headDim\] = \[positions, 32\] .* or \[positions, headDim\] = \[positions, 8\]/);
    expect(bad({ ...spec, relative: { queries: tensor([9, 16]) } }, st)).toThrow(/the relative queries table is f32 \[9, 16\].*\[positions, 32\].*\[positions, 8\]/);
    expect(bad({ ...spec, relative: { values: tensor([9, 8]) } }, st)).toThrow(/the relative values table is f32 \[9, 8\]; it must be f32 \[positions, heads·valueDim\] = \[positions, 24\] .* or \[positions, valueDim\] = \[positions, 6\]/);
    expect(bad({ ...spec, relative: { keys: tensor([9, 8], 'bf16') } }, st)).toThrow(/the relative keys table is bf16 \[9, 8\]/);
    expect(bad({ ...spec, relative: { keys: tensor([72]) } }, st)).toThrow(/the relative keys table is f32 \[72\]/);
    expect(bad({ ...spec, relative: { keys: tensor([0, 8]) } }, st)).toThrow(/positions ≥ 1/);
  });

  it('an index outside a table it reads, when the host holds the index (a small upload)', () => {
    const values = new Int32Array(15).fill(3);
    values[7] = 9;
    const st = step({ relativeIndex: tensor([3, 5], 'i32', values) });
    expect(bad({ ...spec, relative: { keys: tensor([10, 8]), values: tensor([9, 6]) } }, st)).toThrow(/relativeIndex\[1, 2\] = 9 is outside the relative values table's rows \[0, 9\)/);
    values[7] = -1;
    expect(bad({ ...spec, relative: { queries: tensor([10, 8]) } }, st)).toThrow(/relativeIndex\[1, 2\] = -1 is outside the relative queries table's rows \[0, 10\)/);
    values[7] = 9;
    expect(bad({ ...spec, relative: { keys: tensor([10, 8]) } }, st)).not.toThrow();
  });

  it('expectation scoring with bits < 1 or not whole, and an unknown scoring kind', () => {
    for (const bits of [0, -3, 1.5, Number.NaN]) {
      expect(bad({ ...spec, scoring: { kind: 'expectation', bits } }, step()), `bits ${bits}`).toThrow(new RegExp(`attention: expectation scoring needs a whole number of bits ≥ 1, not ${bits}`));
    }
    expect(bad({ ...spec, scoring: { kind: 'expectation', bits: 1 } }, step())).not.toThrow();
    expect(bad({ ...spec, scoring: { kind: 'linear' } as unknown as AttentionSpec['scoring'] }, step())).toThrow(/unknown scoring kind "linear" \(softmax \| expectation\)/);
  });

  it('errors are TpErrors with code kernel-invalid, like the backend’s other argument errors', () => {
    expect(bad(spec, step({ bias: tensor([1]) }))).toThrow(expect.objectContaining({ code: 'kernel-invalid' }));
  });
});
