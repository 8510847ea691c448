/**
 * The attention additions of backend interface version 3 on WebGPU, beyond what the conformance suite
 * covers: relative-position tables (per head and shared) over more than one 64-key chunk, an index too
 * large to check on the host (clamped on the device), per-sequence biases whose -1e30 and -Infinity
 * entries mask keys, YOSO's expectation scoring, the errors bad inputs get at enqueue, and that every
 * pipeline variant binds only the inputs it reads (the plain one exactly what it did before). Then
 * attention split over the keys (flash-decoding) over long caches, with packed inputs and as the
 * adapter's policy decides, and 16-bit KV caches: their size, their rounding bit for bit, their growth
 * and beam reordering.
 */
import { createHostCollectiveInit, hostTensor, TpError, type AttentionSpec, type AttentionStep, type DeviceTensor, type KvCache } from '@tp/core';
import { reference } from '@tp/core/testing';
import { describe, expect, it } from 'vitest';
import { attentionKernel, type AttentionVariant } from '../src/kernels/attention.js';
import { attentionSplits, GPU_SPLIT, MAX_SPLITS, SOFTWARE_SPLIT } from '../src/kernels/attention-split.js';
import type { GpuKvCache } from '../src/tensor.js';
import { WebGpuRank } from '../src/rank.js';
import { adapterSkip, backend } from './helpers/adapter.js';

const run = it.skipIf(adapterSkip !== '');

async function newRank(options: Record<string, unknown> = {}): Promise<WebGpuRank> {
  return (await backend.createRank({ rank: 0, world: 1, communicator: createHostCollectiveInit(1, 1024, 5000), options })) as WebGpuRank;
}

/** `fn` with a new rank of world 1, disposed after it whatever happens. */
async function withRank(...args: [(rank: WebGpuRank) => Promise<void>] | [Record<string, unknown>, (rank: WebGpuRank) => Promise<void>]): Promise<void> {
  const [options, fn] = args.length === 1 ? [{}, args[0]] : args;
  const rank = await newRank(options);
  try {
    await fn(rank);
  } finally {
    await rank.dispose();
  }
}

/** Deterministic values in [-m, m). */
function values(n: number, seed: number, m = 1): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.fround(((s / 2 ** 32) * 2 - 1) * m);
  });
}

interface Case {
  heads: number;
  kvHeads: number;
  headDim: number;
  valueDim: number;
  batch: number;
  rows: number;
  mask: 'causal' | 'bidirectional';
  /** keyMask per sequence (1 visible); default all visible. */
  keyMask?: Int32Array;
  bias?: { data: Float32Array; shape: number[] };
  relative?: { positions: number; index: Int32Array; keys?: [number, number]; queries?: [number, number]; values?: [number, number] };
  bits?: number;
  scale?: number;
}

/** One self-attention call on an empty cache (prefill of `rows`), against the f64 reference. */
async function check(rank: WebGpuRank, c: Case, seed: number, expectedIndex?: Int32Array): Promise<void> {
  const { heads, kvHeads, headDim, valueDim, batch, rows } = c;
  const keys = rows;
  const q = values(batch * rows * heads * headDim, seed);
  const k = values(batch * rows * kvHeads * headDim, seed + 1);
  const v = values(batch * rows * kvHeads * valueDim, seed + 2);
  const keyMask = c.keyMask ?? new Int32Array(batch * keys).fill(1);
  const tables = c.relative && {
    keys: c.relative.keys && values(c.relative.keys[0] * c.relative.keys[1], seed + 3),
    queries: c.relative.queries && values(c.relative.queries[0] * c.relative.queries[1], seed + 4),
    values: c.relative.values && values(c.relative.values[0] * c.relative.values[1], seed + 5),
  };
  const scale = c.scale ?? 1 / Math.sqrt(headDim);
  const expected = reference.attention({
    q,
    kCache: k,
    vCache: v,
    slots: keys,
    batch,
    rows,
    start: 0,
    keys,
    keyMask,
    ...(c.bias ? { bias: c.bias.data } : {}),
    ...(c.relative ? { relative: { positions: c.relative.positions, index: expectedIndex ?? c.relative.index, ...tables } } : {}),
    ...(c.bits !== undefined ? { expectation: { bits: c.bits } } : {}),
    heads,
    kvHeads,
    headDim,
    valueDim,
    scale,
    mask: c.mask,
  });
  const cache = rank.createKvCache(batch, kvHeads, headDim, valueDim, 'f32');
  rank.beginStep();
  try {
    const f32 = (x: Float32Array, shape: number[]) => rank.upload(hostTensor(x, shape));
    const table = (x: Float32Array | undefined, shape: [number, number] | undefined) => (x && shape ? { t: f32(x, shape) } : undefined);
    const rk = table(tables?.keys, c.relative?.keys);
    const rq = table(tables?.queries, c.relative?.queries);
    const rv = table(tables?.values, c.relative?.values);
    const spec: AttentionSpec = {
      heads,
      kvHeads,
      headDim,
      valueDim,
      scale,
      mask: c.mask,
      ...(c.relative ? { relative: { ...(rk ? { keys: rk.t } : {}), ...(rq ? { queries: rq.t } : {}), ...(rv ? { values: rv.t } : {}) } } : {}),
      ...(c.bits !== undefined ? { scoring: { kind: 'expectation', bits: c.bits } } : {}),
    };
    const step: AttentionStep = {
      batch,
      rows,
      start: 0,
      keyMask: rank.upload(hostTensor(keyMask, [batch, keys])),
      ...(c.bias ? { bias: f32(c.bias.data, c.bias.shape) } : {}),
      ...(c.relative ? { relativeIndex: rank.upload(hostTensor(c.relative.index, [rows, keys])) } : {}),
    };
    const y = rank.attention(f32(q, [batch * rows, heads * headDim]), f32(k, [batch * rows, kvHeads * headDim]), f32(v, [batch * rows, kvHeads * valueDim]), cache, step, spec);
    expect(y.shape).toEqual([batch * rows, heads * valueDim]);
    const got = await rank.download(y);
    let maxAbs = 0;
    for (const e of expected) maxAbs = Math.max(maxAbs, Math.abs(e));
    let worst = 0;
    let at = -1;
    for (let i = 0; i < expected.length; i++) {
      const d = Math.abs(got[i]! - expected[i]!);
      if (!(d <= worst)) [worst, at] = [d, i];
    }
    expect(worst, `largest difference at element ${at}: got ${got[at]}, expected ${expected[at]} (max |expected| ${maxAbs})`).toBeLessThanOrEqual(2e-5 * maxAbs);
  } finally {
    await rank.endStep();
    rank.freeKvCache(cache);
  }
}

/** The relative-position table row of query i and key j: the clipped distance j − i, shifted to ≥ 0. */
function distanceIndex(rows: number, keys: number, span: number): Int32Array {
  return Int32Array.from({ length: rows * keys }, (_, n) => Math.max(-span, Math.min(span, (n % keys) - Math.floor(n / keys))) + span);
}

describe(`WebGPU attention, interface version 3${adapterSkip}`, () => {
  run('relative keys and queries, one slice per head (DeBERTa), GQA, causal over 70 keys with padding, against the reference', async () => {
    await withRank(async (rank) => {
      const [heads, headDim, rows, span] = [4, 6, 70, 8];
      const keyMask = Int32Array.from({ length: 2 * rows }, (_, n) => (n >= rows && n % rows < 3 ? 0 : 1)); // sequence 1 left-padded by 3
      const index = distanceIndex(rows, rows, span);
      await check(rank, { heads, kvHeads: 2, headDim, valueDim: headDim, batch: 2, rows, mask: 'causal', keyMask, relative: { positions: 2 * span + 1, index, keys: [2 * span + 1, heads * headDim], queries: [2 * span + 1, heads * headDim] } }, 11);
    });
  });

  run('relative keys and values shared by the heads (NEZHA), valueDim ≠ headDim, bidirectional over 66 keys, against the reference', async () => {
    await withRank(async (rank) => {
      const [rows, span] = [66, 5];
      const index = distanceIndex(rows, rows, span);
      await check(rank, { heads: 3, kvHeads: 3, headDim: 5, valueDim: 7, batch: 2, rows, mask: 'bidirectional', relative: { positions: 2 * span + 1, index, keys: [2 * span + 1, 5], values: [2 * span + 1, 7] } }, 21);
      // All three tables, per head, with a per-sequence bias on top.
      const small = 9;
      const bias = values(2 * 2 * small * small, 5, 2);
      await check(
        rank,
        {
          heads: 2,
          kvHeads: 1,
          headDim: 4,
          valueDim: 4,
          batch: 2,
          rows: small,
          mask: 'bidirectional',
          bias: { data: bias, shape: [2, 2, small, small] },
          relative: { positions: 7, index: distanceIndex(small, small, 3), keys: [7, 8], queries: [7, 8], values: [7, 8] },
        },
        31,
      );
    });
  });

  run('an index too large to check on the host is clamped on the device to the tables’ rows', async () => {
    await withRank(async (rank) => {
      // 70 × 70 = 4900 entries: more than the rank keeps on the host, so nothing is checked at enqueue.
      const rows = 70;
      const positions = 5;
      const index = Int32Array.from({ length: rows * rows }, (_, n) => (n % 7) * 3 - 4); // -4 … 14
      const clamped = index.map((r) => Math.min(positions - 1, Math.max(0, r)));
      await check(rank, { heads: 2, kvHeads: 2, headDim: 4, valueDim: 4, batch: 1, rows, mask: 'causal', relative: { positions, index, keys: [positions, 8], values: [positions, 4] } }, 41, clamped);
    });
  });

  run('a per-sequence bias: entries ≤ -1e30 and -Infinity mask keys as padding does; a query with every key masked outputs zeros', async () => {
    await withRank(async (rank) => {
      const [batch, heads, rows] = [2, 2, 5];
      const bias = values(batch * heads * rows * rows, 9, 3);
      const at = (b: number, h: number, t: number, j: number) => ((b * heads + h) * rows + t) * rows + j;
      bias[at(0, 0, 1, 0)] = -1e30;
      bias[at(0, 1, 2, 3)] = -Infinity;
      bias[at(1, 0, 4, 4)] = -3.4e38;
      bias[at(1, 1, 0, 2)] = -9.9e29; // above -1e30: a very negative score, not a mask
      for (let j = 0; j < rows; j++) bias[at(1, 1, 3, j)] = j % 2 === 0 ? -1e30 : -Infinity; // nothing left for this query
      await check(rank, { heads, kvHeads: 1, headDim: 6, valueDim: 6, batch, rows, mask: 'bidirectional', bias: { data: bias, shape: [batch, heads, rows, rows] } }, 51);
      // The same with one bias for the batch, and causal masking on top.
      await check(rank, { heads, kvHeads: 2, headDim: 6, valueDim: 3, batch, rows, mask: 'causal', bias: { data: bias.slice(0, heads * rows * rows), shape: [heads, rows, rows] } }, 52);
    });
  });

  run('a fully masked query row outputs exact zeros (hand-checked: one key, bias -1e30)', async () => {
    await withRank(async (rank) => {
      const cache = rank.createKvCache(1, 1, 2, 2, 'f32');
      rank.beginStep();
      const f32 = (x: number[], shape: number[]) => rank.upload(hostTensor(Float32Array.from(x), shape));
      const spec: AttentionSpec = { heads: 1, kvHeads: 1, headDim: 2, valueDim: 2, scale: 1, mask: 'bidirectional' };
      const step = (bias: number[]): AttentionStep => ({ batch: 1, rows: 2, start: 0, keyMask: rank.upload(hostTensor(Int32Array.from([1, 1]), [1, 2])), bias: f32(bias, [1, 1, 2, 2]) });
      // Row 0 sees only key 1 (value [5, 6]); row 1 sees nothing.
      const y = rank.attention(f32([1, 0, 0, 1], [2, 2]), f32([1, 1, 2, 2], [2, 2]), f32([3, 4, 5, 6], [2, 2]), cache, step([-1e30, 0, -Infinity, -1e31]), spec);
      expect(Array.from(await rank.download(y))).toEqual([5, 6, 0, 0]);
      await rank.endStep();
      rank.freeKvCache(cache);
    });
  });

  run('expectation scoring (YOSO) with 8, 3 and 1.5 bits, GQA, padding and an empty sequence, against the reference', async () => {
    await withRank(async (rank) => {
      const rows = 67;
      const keyMask = Int32Array.from({ length: 3 * rows }, (_, n) => (n < rows ? 1 : n < 2 * rows ? Number(n % rows < 40) : 0));
      await check(rank, { heads: 4, kvHeads: 2, headDim: 8, valueDim: 5, batch: 3, rows, mask: 'bidirectional', keyMask, bits: 8 }, 61);
      await check(rank, { heads: 2, kvHeads: 2, headDim: 3, valueDim: 3, batch: 1, rows: 9, mask: 'causal', bits: 3 }, 62);
      await check(rank, { heads: 1, kvHeads: 1, headDim: 4, valueDim: 4, batch: 1, rows: 6, mask: 'bidirectional', bits: 1.5 }, 63);
    });
  });

  run('expectation scoring ignores scale, bias and relative tables (they are still checked)', async () => {
    await withRank(async (rank) => {
      const rows = 4;
      const bias = values(2 * rows * rows, 3, 2);
      bias[1] = -1e30; // no mask either: the bias does not apply at all
      await check(
        rank,
        { heads: 2, kvHeads: 1, headDim: 4, valueDim: 4, batch: 1, rows, mask: 'bidirectional', bits: 4, scale: 7, bias: { data: bias, shape: [2, rows, rows] }, relative: { positions: 3, index: distanceIndex(rows, rows, 1), keys: [3, 8] } },
        71,
      );
    });
  });

  run('bad inputs throw at enqueue, naming what is wrong, and leave the cache as it was', async () => {
    await withRank(async (rank) => {
      const [heads, headDim, rows] = [2, 4, 3];
      const cache = rank.createKvCache(1, 1, headDim, headDim, 'f32');
      rank.beginStep();
      const f32 = (shape: number[]) => rank.upload(hostTensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape));
      const i32 = (data: number[], shape: number[]) => rank.upload(hostTensor(Int32Array.from(data), shape));
      const q = f32([rows, heads * headDim]);
      const k = f32([rows, headDim]);
      const v = f32([rows, headDim]);
      const base: AttentionSpec = { heads, kvHeads: 1, headDim, valueDim: headDim, scale: 1, mask: 'causal' };
      const index = i32(Array(rows * rows).fill(1), [rows, rows]);
      const step: AttentionStep = { batch: 1, rows, start: 0, keyMask: i32([1, 1, 1], [1, rows]), relativeIndex: index };
      const attempt = (spec: Partial<AttentionSpec>, s: Partial<AttentionStep> = {}) => () => rank.attention(q, k, v, cache as KvCache, { ...step, ...s }, { ...base, ...spec });
      const refused = (f: () => DeviceTensor, pattern: RegExp) => {
        let error: unknown;
        try {
          f();
        } catch (e) {
          error = e;
        }
        expect(TpError.isInstance(error), String(error)).toBe(true);
        expect((error as TpError).code).toBe('kernel-invalid');
        expect((error as Error).message).toMatch(pattern);
      };
      refused(attempt({ relative: { keys: f32([4, 5]) } }), /relative keys table f32 \[4, 5\] is neither f32 \[positions, 8\].*nor \[positions, 4\]/);
      refused(attempt({ relative: { values: f32([4, 6]) } }), /relative values table/);
      refused(attempt({ relative: { queries: f32([4, 8]) } }, { relativeIndex: undefined }), /need step\.relativeIndex/);
      refused(attempt({ relative: { keys: f32([4, 8]) } }, { relativeIndex: i32(Array(rows * 2).fill(0), [rows, 2]) }), /relative index i32 \[3, 2\] is not i32 \[3, 3\]/);
      refused(attempt({ relative: { keys: f32([4, 8]) } }, { relativeIndex: i32([0, 1, 2, 3, 4, 0, 0, 0, 0], [rows, rows]) }), /relative index 4 at \[1, 1\] is outside the tables' 4 positions/);
      refused(attempt({ relative: { keys: f32([4, 8]) } }, { relativeIndex: i32([0, -1, 0, 0, 0, 0, 0, 0, 0], [rows, rows]) }), /relative index -1/);
      refused(attempt({}, { bias: f32([heads, rows, rows + 1]) }), /bias f32 \[2, 3, 4\] is neither f32 \[2, 3, 3\].*nor \[1, 2, 3, 3\]/);
      refused(attempt({}, { bias: f32([heads * rows * rows]) }), /bias f32 \[18\] is neither/);
      refused(attempt({ scoring: { kind: 'expectation', bits: 0 } }), /bits ≥ 1.*got 0/);
      refused(attempt({ scoring: { kind: 'expectation', bits: Number.NaN } }), /bits ≥ 1.*got NaN/);
      expect(cache.length).toBe(0);
      // A relative spec without any table reads nothing, so it needs no index.
      expect(() => attempt({ relative: {} }, { relativeIndex: undefined })()).not.toThrow();
      await rank.endStep();
      rank.freeKvCache(cache);
    });
  });
});

describe(`WebGPU attention on an adapter with few storage buffers${adapterSkip}`, () => {
  run('ALiBi, a bias and three relative tables (12 bindings) run packed into 6; below 6 attention with any of them is refused', async () => {
    const packed = await newRank({ maxStorageBuffers: 6 });
    try {
      const rows = 70;
      const bias = values(2 * 2 * rows * rows, 7, 2);
      bias[5] = -1e30;
      const relative = { positions: 9, index: distanceIndex(rows, rows, 4), keys: [9, 8] as [number, number], queries: [9, 4] as [number, number], values: [9, 8] as [number, number] };
      await check(packed, { heads: 2, kvHeads: 1, headDim: 4, valueDim: 4, batch: 2, rows, mask: 'causal', bias: { data: bias, shape: [2, 2, rows, rows] }, relative }, 81);
      const compiled = (packed as unknown as { pipelines: { cache: Map<string, unknown> } }).pipelines.cache;
      expect([...compiled.keys()]).toContain('attention_bias_relKQV_packed');
    } finally {
      await packed.dispose();
    }
    const tiny = await newRank({ maxStorageBuffers: 5 });
    try {
      await check(tiny, { heads: 2, kvHeads: 1, headDim: 4, valueDim: 4, batch: 1, rows: 3, mask: 'causal' }, 82);
      await expect(check(tiny, { heads: 2, kvHeads: 1, headDim: 4, valueDim: 4, batch: 1, rows: 3, mask: 'causal', bias: { data: values(18, 1), shape: [2, 3, 3] } }, 83)).rejects.toThrow(
        /allows 5 storage buffers per shader; attention needs at least 6/,
      );
    } finally {
      await tiny.dispose();
    }
  });
});

/** The names of the pipelines a rank has compiled. */
const compiled = (rank: WebGpuRank) => [...(rank as unknown as { pipelines: { cache: Map<string, unknown> } }).pipelines.cache.keys()];

/**
 * One decode row per sequence against a cache filled with `keys` keys (fillKvCache), bidirectional
 * (a cross-attention read), against the f64 reference over the cache's rounded values.
 */
async function decodeOverCache(rank: WebGpuRank, c: { heads: number; kvHeads: number; headDim: number; batch: number; keys: number; dtype: 'f32' | 'f16' | 'bf16'; bits?: number; softcap?: number }, seed: number): Promise<void> {
  const { heads, kvHeads, headDim, batch, keys } = c;
  const q = values(batch * heads * headDim, seed, 2);
  const k = values(batch * keys * kvHeads * headDim, seed + 1, 2);
  const v = values(batch * keys * kvHeads * headDim, seed + 2);
  // Sequence 1 (if any) sees only its first keys − 100: a shorter cache in the same batch.
  const keyMask = Int32Array.from({ length: batch * keys }, (_, n) => (n >= keys && n % keys >= keys - 100 ? 0 : 1));
  const scale = 1 / Math.sqrt(headDim);
  const expected = reference.attention({
    q,
    kCache: reference.roundToDtype(k, c.dtype),
    vCache: reference.roundToDtype(v, c.dtype),
    slots: keys,
    batch,
    rows: 1,
    start: 0,
    keys,
    keyMask,
    ...(c.bits !== undefined ? { expectation: { bits: c.bits } } : {}),
    ...(c.softcap !== undefined ? { softcap: c.softcap } : {}),
    heads,
    kvHeads,
    headDim,
    valueDim: headDim,
    scale,
    mask: 'bidirectional',
  });
  const cache = rank.createKvCache(batch, kvHeads, headDim, headDim, c.dtype);
  rank.beginStep();
  try {
    const f32 = (x: Float32Array, shape: number[]) => rank.upload(hostTensor(x, shape));
    rank.fillKvCache(cache, f32(k, [batch * keys, kvHeads * headDim]), f32(v, [batch * keys, kvHeads * headDim]), batch, keys);
    const spec: AttentionSpec = { heads, kvHeads, headDim, valueDim: headDim, scale, mask: 'bidirectional', ...(c.softcap !== undefined ? { softcap: c.softcap } : {}), ...(c.bits !== undefined ? { scoring: { kind: 'expectation', bits: c.bits } } : {}) };
    const y = rank.attention(f32(q, [batch, heads * headDim]), undefined, undefined, cache, { batch, rows: 1, start: 0, keyMask: rank.upload(hostTensor(keyMask, [batch, keys])) }, spec);
    const got = await rank.download(y);
    let maxAbs = 0;
    let worst = 0;
    for (let i = 0; i < expected.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
      worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
    }
    expect(worst, `largest difference (max |expected| ${maxAbs})`).toBeLessThanOrEqual(2e-5 * maxAbs);
  } finally {
    await rank.endStep();
    rank.freeKvCache(cache);
  }
}

describe(`WebGPU attention split over the keys (flash-decoding), and 16-bit KV caches${adapterSkip}`, () => {
  run('a decode of one head over 5000 keys in pieces of 1000 (a partial each, then the merge) matches the reference, softmax and expectation', async () => {
    await withRank({ attentionSplitKeys: 1000 }, async (rank) => {
      await decodeOverCache(rank, { heads: 1, kvHeads: 1, headDim: 16, batch: 1, keys: 5000, dtype: 'f32', softcap: 3 }, 21);
      expect(compiled(rank)).toEqual(expect.arrayContaining(['attention_split', 'attention_merge']));
      await decodeOverCache(rank, { heads: 1, kvHeads: 1, headDim: 16, batch: 1, keys: 5000, dtype: 'f32', bits: 6 }, 22);
      expect(compiled(rank)).toEqual(expect.arrayContaining(['attention_expectation_split', 'attention_merge_expectation']));
    });
  });

  run('by default the rank splits as its adapter\'s policy says: never on a software adapter, a lone head over 5000 keys on a GPU', async () => {
    await withRank(async (rank) => {
      await decodeOverCache(rank, { heads: 1, kvHeads: 1, headDim: 16, batch: 1, keys: 5000, dtype: 'f32' }, 23);
      const split = compiled(rank).includes('attention_split');
      expect(split).toBe(!rank.opened.adapter.fallback);
      expect(attentionSplits(5000, 1, rank.opened.adapter.fallback ? SOFTWARE_SPLIT : GPU_SPLIT) > 1).toBe(split);
    });
  });

  run('forced pieces of 7 keys over f16 and bf16 caches of 300 keys, GQA, two sequences of different lengths', async () => {
    await withRank({ attentionSplitKeys: 7 }, async (rank) => {
      for (const dtype of ['f16', 'bf16'] as const) await decodeOverCache(rank, { heads: 6, kvHeads: 2, headDim: 10, batch: 2, keys: 300, dtype }, 24);
      expect(compiled(rank)).toEqual(expect.arrayContaining(['attention_kvf16_split', 'attention_kvbf16_split', 'attention_merge']));
    });
  });

  run('split with every optional input packed into one binding (6 storage buffers): ALiBi, a bias and three relative tables', async () => {
    await withRank({ maxStorageBuffers: 6, attentionSplitKeys: 5 }, async (rank) => {
      const rows = 40;
      const bias = values(2 * 2 * rows * rows, 9, 2);
      bias[7] = -1e30;
      const relative = { positions: 9, index: distanceIndex(rows, rows, 4), keys: [9, 8] as [number, number], queries: [9, 4] as [number, number], values: [9, 8] as [number, number] };
      await check(rank, { heads: 2, kvHeads: 1, headDim: 4, valueDim: 4, batch: 2, rows, mask: 'causal', bias: { data: bias, shape: [2, 2, rows, rows] }, relative }, 91);
      expect(compiled(rank)).toContain('attention_bias_relKQV_packed_split');
    });
  });

  run('a 16-bit cache holds half the bytes of an f32 one; an odd slot width is padded to a whole word', async () => {
    await withRank(async (rank) => {
      const bytes = (dtype: 'f32' | 'f16' | 'bf16', kvHeads: number, headDim: number) => {
        const cache = rank.createKvCache(1, kvHeads, headDim, headDim, dtype) as GpuKvCache;
        rank.beginStep();
        const rows = 64;
        const x = rank.upload(hostTensor(values(rows * kvHeads * headDim, 3), [rows, kvHeads * headDim]));
        rank.fillKvCache(cache, x, x, 1, rows);
        const out = [cache.k!.byteLength, cache.k!.blocks[0]!.buffer.size, cache.kStride];
        rank.freeKvCache(cache);
        return out;
      };
      expect(bytes('f32', 2, 64)).toEqual([64 * 128 * 4, 64 * 128 * 4, 128]);
      expect(bytes('f16', 2, 64)).toEqual([64 * 128 * 2, 64 * 128 * 2, 128]);
      expect(bytes('bf16', 2, 64)).toEqual([64 * 128 * 2, 64 * 128 * 2, 128]);
      expect(bytes('bf16', 1, 5)[2]).toBe(6);
      await rank.endStep();
    });
  });

  run('appends round on the device exactly as the host does: ties to even, subnormals, overflow, NaN, signed zero', async () => {
    await withRank(async (rank) => {
      const f = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0]!;
      // Halfway cases both ways for each format, f16 subnormals and their rounding, f16 overflow (65520
      // rounds up to Infinity, 65519 down to 65504), bf16 carries into the exponent, NaN, ±0, ±Infinity.
      const special = [
        1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 2 ** -24, 1.5 * 2 ** -24, 2.5 * 2 ** -24, 0.49 * 2 ** -24, 0.5 * 2 ** -24, 0.51 * 2 ** -24, 3e-6, -7e-7,
        65519, 65520, -70000, f(0x7f7fffff), f(0x3f80ffff), f(0x3fffffff), f(0x00000001), f(0x807fffff), Number.NaN, -0, 0, Infinity, -Infinity, 1 / 3, -2 / 3, 123.456,
      ];
      const width = 7; // odd: every slot has a pad element
      const rows = Math.ceil(special.length / width);
      const data = Float32Array.from({ length: rows * width }, (_, i) => special[i] ?? i / 7);
      for (const dtype of ['f16', 'bf16'] as const) {
        const cache = rank.createKvCache(1, 1, width, width, dtype) as GpuKvCache;
        rank.beginStep();
        const x = rank.upload(hostTensor(data, [rows, width]));
        rank.fillKvCache(cache, x, x, 1, rows);
        const held = await rank.download(cache.k!);
        await rank.endStep();
        const expected = reference.roundToDtype(data, dtype);
        for (let i = 0; i < data.length; i++) {
          const got = held[Math.floor(i / width) * cache.kStride + (i % width)]!;
          expect(Object.is(got, expected[i]) || (Number.isNaN(got) && Number.isNaN(expected[i]!)), `${dtype} of ${data[i]} (element ${i}): got ${got}, expected ${expected[i]}`).toBe(true);
        }
        rank.freeKvCache(cache);
      }
    });
  });

  run('beam reordering and growth of a bf16 cache with an odd slot width keep every word in place', async () => {
    await withRank({ attentionSplitKeys: 4 }, async (rank) => {
      const [batch, width, first] = [3, 5, 50];
      const cache = rank.createKvCache(batch, 1, width, width, 'bf16') as GpuKvCache;
      const data = values(batch * first * width, 31, 4);
      rank.beginStep();
      rank.fillKvCache(cache, rank.upload(hostTensor(data, [batch * first, width])), rank.upload(hostTensor(data, [batch * first, width])), batch, first);
      rank.reorderKvCache(cache, rank.upload(hostTensor(new Int32Array([2, 0, 2]), [batch])));
      // Grow past the capacity (64 slots): the reordered slots are copied into the larger buffers.
      const more = values(batch * 30 * width, 32, 4);
      const q = values(batch * width, 33);
      rank.attention(rank.upload(hostTensor(q, [batch, width])), rank.upload(hostTensor(more.subarray(0, batch * width), [batch, width])), rank.upload(hostTensor(more.subarray(0, batch * width), [batch, width])), cache, { batch, rows: 1, start: first, keyMask: rank.upload(hostTensor(new Int32Array(batch * (first + 1)).fill(1), [batch, first + 1])) }, { heads: 1, kvHeads: 1, headDim: width, valueDim: width, scale: 1, mask: 'causal' });
      for (let s = first + 1; s < 80; s++) {
        const row = more.subarray(0, batch * width);
        rank.attention(rank.upload(hostTensor(q, [batch, width])), rank.upload(hostTensor(row, [batch, width])), rank.upload(hostTensor(row, [batch, width])), cache, { batch, rows: 1, start: s, keyMask: rank.upload(hostTensor(new Int32Array(batch * (s + 1)).fill(1), [batch, s + 1])) }, { heads: 1, kvHeads: 1, headDim: width, valueDim: width, scale: 1, mask: 'causal' });
      }
      const held = await rank.download(cache.k!);
      await rank.endStep();
      expect(cache.capacity).toBeGreaterThan(64);
      const rounded = reference.roundToDtype(data, 'bf16');
      const order = [2, 0, 2];
      for (let b = 0; b < batch; b++) {
        for (let j = 0; j < first; j++) {
          for (let e = 0; e < width; e++) {
            expect(held[(b * cache.capacity + j) * cache.kStride + e]).toBe(rounded[(order[b]! * first + j) * width + e]);
          }
        }
      }
      rank.freeKvCache(cache);
    });
  });
});

describe('attention pipeline variants', () => {
  const plain: AttentionVariant = { alibi: false, bias: false, relKeys: false, relQueries: false, relValues: false, expectation: false, packed: false };
  const bound = (v: Partial<AttentionVariant>) => attentionKernel({ ...plain, ...v }).bindings.map((b) => b.name);

  it('each variant binds only what it reads: the plain one no bias, ALiBi or relative input', () => {
    expect(bound({})).toEqual(['q', 'kc', 'vc', 'keyMask', 'out']);
    expect(bound({ alibi: true, bias: true })).toEqual(['q', 'kc', 'vc', 'keyMask', 'keyPos', 'slopes', 'bias', 'out']);
    // DeBERTa's and NEZHA's inputs fit the 8 storage buffers every adapter allows.
    expect(bound({ relKeys: true, relQueries: true })).toEqual(['q', 'kc', 'vc', 'keyMask', 'relIndex', 'relK', 'relQ', 'out']);
    expect(bound({ relKeys: true, relValues: true })).toEqual(['q', 'kc', 'vc', 'keyMask', 'relIndex', 'relK', 'relV', 'out']);
    expect(bound({ expectation: true })).toEqual(['q', 'kc', 'vc', 'keyMask', 'out']);
    // Packed: every optional input in one buffer, so any combination fits 6 storage buffers.
    expect(bound({ alibi: true, bias: true, relKeys: true, relQueries: true, relValues: true, packed: true })).toEqual(['q', 'kc', 'vc', 'keyMask', 'packed', 'out']);
  });

  it('variants have distinct pipeline names, and the plain loop reads no relative table, bias or expectation helper', () => {
    const variants = [{}, { alibi: true }, { bias: true }, { relKeys: true }, { relQueries: true }, { relValues: true }, { expectation: true }, { relKeys: true, relValues: true }, { relKeys: true, relValues: true, packed: true }];
    const names = variants.map((v) => attentionKernel({ ...plain, ...v }).name);
    expect(new Set(names).size).toBe(variants.length);
    expect(names[0]).toBe('attention');
    const code = attentionKernel(plain).code;
    for (const absent of ['relIndex', 'relK', 'relQ', 'relV', 'bias', 'slopes', 'keyPos', 'packed', 'accurateAcos', 'rels[']) expect(code).not.toContain(absent);
  });

  it('the KV dtype and the split are variants too: their own names, the same bindings, f16 read natively only with shader-f16', () => {
    const names = [{}, { kv: 'f16', nativeF16: true }, { kv: 'f16', nativeF16: false }, { kv: 'bf16' }, { split: true }, { kv: 'bf16', split: true, expectation: true }].map((v) => attentionKernel({ ...plain, ...v } as AttentionVariant).name);
    expect(names).toEqual(['attention', 'attention_kvf16', 'attention_kvf16p', 'attention_kvbf16', 'attention_split', 'attention_expectation_kvbf16_split']);
    expect(bound({ split: true })).toEqual(bound({}));
    expect(attentionKernel({ ...plain, kv: 'f16', nativeF16: true }).f16).toBe(true);
    expect(attentionKernel({ ...plain, kv: 'f16', nativeF16: false }).f16).toBeFalsy();
    expect(attentionKernel({ ...plain, kv: 'f16', nativeF16: false }).bindings.slice(1, 3).map((b) => b.type)).toEqual(['array<u32>', 'array<u32>']);
  });

  it('the split policy: pieces only when workgroups are few and keys many; the test option splits any call', () => {
    // A GPU: 8 heads of one sequence over 4096 keys → 16 pieces of 256 keys (policy minimum) at most.
    expect(attentionSplits(4096, 8, GPU_SPLIT)).toBe(16);
    expect(attentionSplits(100_000, 8, GPU_SPLIT)).toBe(32); // enough for 256 workgroups
    expect(attentionSplits(511, 8, GPU_SPLIT)).toBe(1); // too few keys for two pieces of 256
    expect(attentionSplits(100_000, 256, GPU_SPLIT)).toBe(1); // a prefill or a large batch fills the GPU
    expect(attentionSplits(100_000, 1, GPU_SPLIT)).toBe(MAX_SPLITS);
    // A software adapter never splits (measured: see SOFTWARE_SPLIT).
    expect(attentionSplits(100_000, 1, SOFTWARE_SPLIT)).toBe(1);
    // backendOptions.attentionSplitKeys: pieces of that many keys, whatever the rows, up to MAX_SPLITS.
    expect(attentionSplits(10, 1000, GPU_SPLIT, 3)).toBe(4);
    expect(attentionSplits(3, 1, GPU_SPLIT, 3)).toBe(1);
    expect(attentionSplits(1000, 1, GPU_SPLIT, 3)).toBe(MAX_SPLITS);
  });

  it('expectation scoring with ALiBi, a bias or relative terms is not a variant', () => {
    expect(() => attentionKernel({ ...plain, expectation: true, relKeys: true })).toThrow(/expectation scoring applies no/);
    expect(() => attentionKernel({ ...plain, expectation: true, bias: true })).toThrow(/expectation scoring applies no/);
  });
});
