/**
 * LongT5's encoder attention, host side: the global block of each token (transformers'
 * _make_global_fixed_block_ids, float32 quirks included), which keys a query sees (the locality mask
 * |key − query| ≤ local_radius, the globals up to the sequence's last block) and the bias entries
 * (T5's bidirectional buckets from the local table, the side buckets of g − block from the global
 * table). Expected values are worked out by hand from those definitions, or (the float32 cases)
 * printed by transformers 4.57.6.
 */
import { describe, expect, it } from 'vitest';
import { globalBlockIds, locallyVisible, longT5Bias, longT5Layout, type LongT5Tables } from '../../src/runtime/longt5-attention.js';

const ones = (n: number) => new Array<number>(n).fill(1);
const ids = (mask: number[], size: number) => Array.from(globalBlockIds(mask, size));

describe('globalBlockIds', () => {
  it('gives ⌊t / size⌋, and the tokens after the last full block join it (10 tokens, blocks of 4: the golden input)', () => {
    expect(ids(ones(10), 4)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(ids(ones(12), 4)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('gives padding -1, counts only block ends at real tokens, and a sequence shorter than a block has no block', () => {
    expect(ids([...ones(9), 0, 0, 0], 4)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, -1, -1, -1]);
    expect(ids([1, 1, ...new Array<number>(10).fill(0)], 4)).toEqual(new Array<number>(12).fill(-1));
    // a hole at a block end (t = 7): only one block end after block 0, so tokens 8-11 fall back into block 1
    expect(ids([1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1], 4)).toEqual([0, 0, -1, 0, 1, 1, 1, -1, 1, 1, 1, 1]);
  });

  it('reproduces the float32 rounding of the cumulative 1/size: transformers puts some block starts in the block before', () => {
    // transformers 4.57.6 on 2048 real tokens: blocks of 25 give t = 425 block 16 (not 17), blocks of 83 give t = 166 block 1
    expect(ids(ones(2048), 25).slice(423, 428)).toEqual([16, 16, 16, 17, 17]);
    expect(ids(ones(2048), 83).slice(164, 168)).toEqual([1, 1, 1, 2]);
    // powers of two are exact
    expect(ids(ones(2048), 16).slice(1023, 1026)).toEqual([63, 64, 64]);
  });
});

describe('longT5Layout', () => {
  it('transient-global: G = ⌊rows / size⌋ global slots first, visible up to each sequence’s last block, then its real tokens', () => {
    const mask = Int32Array.from([...ones(10), ...ones(6), 0, 0, 0, 0]);
    const layout = longT5Layout(mask, 2, 10, { kind: 'transient-global', radius: 3, globalBlockSize: 4 });
    expect(layout.globals).toBe(2);
    expect(layout.keys).toBe(12);
    // the second sequence (6 tokens) has one full block, so only global 0
    expect(Array.from(layout.keyMask)).toEqual([1, 1, ...ones(10), 1, 0, ...ones(6), 0, 0, 0, 0]);
    expect(Array.from(layout.blockIds)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1]);
    expect(layout.perSequence).toBe(true);
    // every real token adds into its sequence's global row (b · G + block)
    expect(Array.from(layout.members)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(Array.from(layout.targets)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
  });

  it('local: no global slots, the key mask is the padding mask, one bias for the batch', () => {
    const mask = Int32Array.from([1, 1, 1, 1, 1, 0]);
    const layout = longT5Layout(mask, 2, 3, { kind: 'local', radius: 1 });
    expect(layout.globals).toBe(0);
    expect(Array.from(layout.keyMask)).toEqual([1, 1, 1, 1, 1, 0]);
    expect(layout.perSequence).toBe(false);
    expect(layout.members.length).toBe(0);
  });

  it('refuses a mask that does not fit the batch', () => {
    expect(() => longT5Layout(new Int32Array(5), 2, 3, { kind: 'local', radius: 1 })).toThrow(/5 entries does not fit 2 × 3 rows/);
  });
});

describe('locallyVisible', () => {
  it('keeps keys at most local_radius away (blocks of radius + 1, |key − query| < block length)', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((k) => locallyVisible(3, k, 2))).toEqual([false, true, true, true, true, true, false]);
    expect([2, 3, 4].map((k) => locallyVisible(3, k, 0))).toEqual([false, true, false]);
  });
});

describe('longT5Bias', () => {
  // [32 buckets, 2 heads]: local value 100·bucket + head, global 1000 + 100·bucket + head
  const tables: LongT5Tables = {
    heads: 2,
    local: Float32Array.from({ length: 64 }, (_, i) => 100 * Math.floor(i / 2) + (i % 2)),
    global: Float32Array.from({ length: 64 }, (_, i) => 1000 + 100 * Math.floor(i / 2) + (i % 2)),
    buckets: 32,
    maxDistance: 128,
  };
  // bidirectional buckets: relative 0 → 0, −1 → 1, +1 → 17
  const at = (values: Float32Array, keys: number, rows: number, h: number, t: number, k: number) => values[(h * rows + t) * keys + k]!;

  it('side bias from the global table by (g − the query’s block), then the local window by (key − query), masked beyond radius', () => {
    const layout = longT5Layout(Int32Array.from(ones(5)), 1, 5, { kind: 'transient-global', radius: 1, globalBlockSize: 2 });
    expect(Array.from(layout.blockIds)).toEqual([0, 0, 1, 1, 1]);
    const { values, shape } = longT5Bias(layout, tables, 1);
    expect(shape).toEqual([2, 5, 7]);
    for (const h of [0, 1]) {
      // query 0 (block 0): global 0 at relative 0, global 1 at +1
      expect([at(values, 7, 5, h, 0, 0), at(values, 7, 5, h, 0, 1)]).toEqual([1000 + h, 1000 + 1700 + h]);
      // query 4 (a trailing token that joins block 1): global 0 at −1, global 1 at 0
      expect([at(values, 7, 5, h, 4, 0), at(values, 7, 5, h, 4, 1)]).toEqual([1000 + 100 + h, 1000 + h]);
      // query 2: tokens 1, 2, 3 at −1, 0, +1; tokens 0 and 4 are too far
      expect([1, 2, 3].map((j) => at(values, 7, 5, h, 2, 2 + j))).toEqual([100 + h, h, 1700 + h]);
      expect(at(values, 7, 5, h, 2, 2)).toBeLessThanOrEqual(-1e30);
      expect(at(values, 7, 5, h, 2, 6)).toBeLessThanOrEqual(-1e30);
    }
  });

  it('is one bias per sequence when padding gives sequences different blocks', () => {
    const layout = longT5Layout(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 0]), 2, 4, { kind: 'transient-global', radius: 3, globalBlockSize: 2 });
    const { values, shape } = longT5Bias(layout, tables, 3);
    expect(shape).toEqual([2, 2, 4, 6]);
    // blocks [0, 0, 1, 1] and [0, 0, 0, −1] (the second has one full block; its third token joins it)
    expect(Array.from(layout.blockIds)).toEqual([0, 0, 1, 1, 0, 0, 0, -1]);
    const perSequence = (s: number, t: number, g: number) => values[((s * 2 + 0) * 4 + t) * 6 + g]!;
    // query 2 to global 1: relative 0 in the first sequence, +1 in the second
    expect([perSequence(0, 2, 1), perSequence(1, 2, 1)]).toEqual([1000, 1000 + 1700]);
    // query 3 to global 0: −1 in the first, +1 from the padding's −1 in the second
    expect([perSequence(0, 3, 0), perSequence(1, 3, 0)]).toEqual([1000 + 100, 1000 + 1700]);
  });
});
