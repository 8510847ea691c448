/**
 * Argument packing for cuLaunchKernel's parameter buffer (each parameter at the next multiple of its
 * size; fatbin.test.ts checks the offsets against the compiled kernels) and the launch arithmetic
 * (GEMV split-K, attention chunks).
 */
import { describe, expect, it } from 'vitest';
import { argLayout, attentionChunk, gemvSplits, KERNELS, packArgs } from '../src/kernels.js';

describe('argument packing', () => {
  it('aligns each parameter to its size: pointers and 64-bit ints to 8, ints and floats to 4', () => {
    expect(argLayout(['ptr', 'i32', 'ptr'])).toEqual({ offsets: [0, 8, 16], size: 24 });
    expect(argLayout(['i32', 'i64'])).toEqual({ offsets: [0, 8], size: 16 });
    expect(argLayout(['i32', 'f32', 'i32'])).toEqual({ offsets: [0, 4, 8], size: 12 });
    expect(argLayout(['ptr', 'f32', 'i32', 'ptr'])).toEqual({ offsets: [0, 8, 12, 16], size: 24 });
  });

  it('writes little-endian values where the layout says', () => {
    // tp_embedding(y, table, tableDtype, ids, rows, dim, rowOffset, scale)
    const buf = packArgs('tp_embedding', [0x7f0012345678, 0x10, 2, 2 ** 40 + 8, 1000, 64, -5, 2.5]);
    const v = new DataView(buf.buffer);
    expect(buf.byteLength).toBe(argLayout(KERNELS.tp_embedding).size);
    expect(v.getBigUint64(0, true)).toBe(0x7f0012345678n);
    expect(v.getBigUint64(8, true)).toBe(0x10n);
    expect(v.getInt32(16, true)).toBe(2);
    expect(v.getBigUint64(24, true)).toBe(2n ** 40n + 8n);
    expect([v.getInt32(32, true), v.getInt32(36, true), v.getInt32(40, true)]).toEqual([1000, 64, -5]);
    expect(v.getFloat32(44, true)).toBe(2.5);
  });

  it('refuses a wrong count and values that do not fit their parameter', () => {
    expect(() => packArgs('tp_argmax', [1, 2])).toThrow(/takes 3 arguments, not 2/);
    expect(() => packArgs('tp_argmax', [1, 2, 1.5])).toThrow(/does not fit an int/);
    expect(() => packArgs('tp_argmax', [1, 2, 2 ** 31])).toThrow(/does not fit an int/);
    expect(() => packArgs('tp_argmax', [-8, 2, 3])).toThrow(/is not a ptr/);
    expect(() => packArgs('tp_argmax', [2 ** 60, 2, 3])).toThrow(/is not a ptr/);
  });
});

describe('launch arithmetic', () => {
  it('GEMV split-K: chunks are whole vectors, cover K exactly once, and appear only where rows are too few', () => {
    for (const [N, K] of [
      [2048, 2048],
      [256, 8192],
      [1024, 14336],
      [7, 33],
      [128256, 2048],
      [512, 2048],
      [64, 4097],
    ] as const) {
      for (const vector of [4, 8]) {
        const { splits, kChunk } = gemvSplits(N, K, 132, vector);
        expect(kChunk % vector, `N ${N} K ${K}`).toBe(0);
        expect(splits * kChunk).toBeGreaterThanOrEqual(K);
        expect((splits - 1) * kChunk).toBeLessThan(K);
        if (Math.ceil(N / 8) >= 264) expect(splits).toBe(1);
      }
    }
    expect(gemvSplits(256, 8192, 132, 8).splits).toBeGreaterThan(1);
  });

  it('attention: short caches in one split, long ones spread over the GPU in chunks of 32 keys', () => {
    expect(attentionChunk(1, 32, 132)).toBe(1);
    expect(attentionChunk(200, 32, 132)).toBe(200);
    const c = attentionChunk(8192, 32, 132);
    expect(c % 32).toBe(0);
    expect(Math.ceil(8192 / c)).toBeGreaterThan(1);
    expect(attentionChunk(8192, 10_000, 132)).toBe(8192);
  });
});
