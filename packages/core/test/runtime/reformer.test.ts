/**
 * Reformer's host-side pieces against hand-made cases: axial position rows, LSH bucketing and
 * ordering, the chunk windows as an attention bias, and — the claim the engine rests on — that one
 * softmax with that bias gives what transformers' chunked, masked, multi-round LSH attention gives
 * (a literal reference of LSHSelfAttention's steps, written here, on random vectors).
 */
import { describe, expect, it } from 'vitest';
import { reformerMaxLength, reformerPaddedLength, reformerSpec } from '../../src/graph/reformer-spec.js';
import { createConfigReader } from '../../src/graph/index.js';
import type { HfConfig } from '../../src/checkpoint/index.js';
import { axialRows } from '../../src/runtime/reformer/axial.js';
import { hashBucket, lshOrder } from '../../src/runtime/reformer/buckets.js';
import { adjacentChunks, chunkedSoftmaxBias, HIDDEN_KEY, identityOrder, SELF_MASK_VALUE, selfOnlyScale, type ChunkWindow } from '../../src/runtime/reformer/window-bias.js';
import { TokenHistory } from '../../src/runtime/reformer/history.js';

const H = HIDDEN_KEY;
const S = SELF_MASK_VALUE;
/** Natural log (the bias holds it as f32: compare after Math.fround). */
const ln = Math.log;

/** Rows of a [rows, keys] bias as arrays. */
function rowsOf(bias: Float32Array, keys: number): number[][] {
  return Array.from({ length: bias.length / keys }, (_, r) => Array.from(bias.subarray(r * keys, (r + 1) * keys)));
}

function biasOf(keys: number, order: number[], length: number, window: ChunkWindow, selfMask: boolean, rounds = 1): number[][] {
  const out = new Float32Array(keys * keys).fill(H);
  chunkedSoftmaxBias(out, 0, keys, { order, length, window, selfMask, rounds });
  return rowsOf(out, keys);
}

describe('axialRows', () => {
  // grid 2 × 3; table 0 [2, 1] = 10, 20; table 1 [3, 2] = (1, 2), (3, 4), (5, 6)
  const axial = { shape: [2, 3], dims: [1, 2], tables: [Float32Array.of(10, 20), Float32Array.of(1, 2, 3, 4, 5, 6)] };

  it('concatenates table 0 row ⌊p / 3⌋ and table 1 row p mod 3', () => {
    expect(Array.from(axialRows(axial, [0, 4, 5, 2]))).toEqual([10, 1, 2, 20, 3, 4, 20, 5, 6, 10, 5, 6]);
  });

  it('refuses a position outside the grid, naming its size', () => {
    expect(() => axialRows(axial, [6])).toThrow(/position 6 is outside the axial position grid of 2 × 3 = 6 positions/);
  });
});

describe('hashBucket', () => {
  it('one factor: the argmax of [x·R, −x·R]', () => {
    expect(hashBucket([0.5, -2], 0, [4])).toBe(3); // [0.5, −2, −0.5, 2]
    expect(hashBucket([9, 0.5, -2], 1, [4])).toBe(3); // read from `at`
    expect(hashBucket([3, 2], 0, [4])).toBe(0);
  });

  it('ties go to the first index, as torch.argmax', () => {
    expect(hashBucket([1, 1], 0, [4])).toBe(0);
    expect(hashBucket([-1, -1], 0, [4])).toBe(2);
  });

  it('factors [2, 4]: b1 + 2·b2 from their own rotations', () => {
    // factor 2 reads [−1] → [−1, 1] → 1; factor 4 reads [0.2, 0.3] → [0.2, 0.3, −0.2, −0.3] → 1
    expect(hashBucket([-1, 0.2, 0.3], 0, [2, 4])).toBe(1 + 2 * 1);
  });
});

describe('lshOrder', () => {
  it('sorts each round by bucket, then position, and puts the rounds one after the other', () => {
    const buckets = Int32Array.of(1, 0, 1, 0, /* round 1 */ 2, 2, 0, 1);
    expect(Array.from(lshOrder(buckets, 2, 4))).toEqual([1, 3, 0, 2, 2, 3, 0, 1]);
  });
});

describe('adjacentChunks (transformers _look_adjacent)', () => {
  it('wraps around: chunk 0 looks back at the last chunk', () => {
    expect(adjacentChunks(0, 3, { before: 1, after: 0 })).toEqual([2, 0]);
    expect(adjacentChunks(2, 3, { before: 1, after: 1 })).toEqual([1, 2, 0]);
  });

  it('an offset as large as the number of chunks lands on the chunk itself (the whole list, unrotated)', () => {
    expect(adjacentChunks(1, 2, { before: 2, after: 0 })).toEqual([1, 0, 1]);
  });
});

describe('chunkedSoftmaxBias', () => {
  it('local, 6 tokens padded to 8, chunks of 4 looking back one: causal, padding hidden', () => {
    const rows = biasOf(6, Array.from(identityOrder(8)), 6, { chunkLength: 4, before: 1, after: 0 }, false);
    rows.forEach((row, q) => expect(row).toEqual(Array.from({ length: 6 }, (_, k) => (k <= q ? 0 : H))));
  });

  it('local, 8 tokens, chunks of 4 looking back two (more than there are): keys seen twice weigh log 2', () => {
    const rows = biasOf(8, Array.from(identityOrder(8)), 8, { chunkLength: 4, before: 2, after: 0 }, false);
    // chunk 0 sees chunk 0 twice; chunk 1 sees chunk 1 twice and chunk 0 once
    expect(rows[2]).toEqual([ln(2), ln(2), ln(2), H, H, H, H, H].map(Math.fround));
    expect(rows[5]).toEqual([0, 0, 0, 0, ln(2), ln(2), H, H].map(Math.fround));
  });

  it('LSH, one round: sorted chunks, causal by position, own key at the self-mask value, padding hidden', () => {
    // 5 tokens padded to 8; buckets 1 0 1 0 1, padding in bucket 2 → order 1 3 0 2 | 4 5 6 7
    const order = Array.from(lshOrder(Int32Array.of(1, 0, 1, 0, 1, 2, 2, 2), 1, 8));
    expect(order).toEqual([1, 3, 0, 2, 4, 5, 6, 7]);
    expect(biasOf(5, order, 5, { chunkLength: 4, before: 1, after: 0 }, true)).toEqual([
      [S, H, H, H, H],
      [0, S, H, H, H],
      [0, 0, S, H, H],
      [0, 0, 0, S, H],
      [0, 0, 0, 0, S],
    ]);
  });

  it('LSH, two rounds: every occurrence of a key over the rounds counts (log of the count)', () => {
    // chunks of 2: round 0 order 0 2 1 3, round 1 order 2 3 0 1 → chunks [0 2] [1 3] [2 3] [0 1]
    const order = Array.from(lshOrder(Int32Array.of(0, 1, 0, 1, 1, 1, 0, 0), 2, 4));
    expect(biasOf(4, order, 4, { chunkLength: 2, before: 1, after: 0 }, true, 2)).toEqual([
      [S + ln(3), H, H, H].map(Math.fround),
      [ln(2), S + ln(2), H, H].map(Math.fround),
      [ln(2), ln(2), S + ln(2), H].map(Math.fround),
      [0, ln(2), ln(2), S + ln(3)].map(Math.fround),
    ]);
    // position 0 sees only itself: twice in round 0 (its chunk and the wrapped last chunk), once in round 1
    expect(chunkedSoftmaxBias(new Float32Array(16), 0, 4, { order, length: 4, window: { chunkLength: 2, before: 1, after: 0 }, selfMask: true, rounds: 2 })).toEqual([{ query: 0, counts: [2, 1] }]);
  });
});

describe('selfOnlyScale', () => {
  // torch 2.13: HF's _attend on a row [-1e5 × n, -1e9 × 3] with value 1, then the logsumexp merge of rounds
  it('is 1 for one occurrence in one round (the golden case) and transformers\' f32 value otherwise', () => {
    expect(selfOnlyScale([1])).toBe(1);
    expect(selfOnlyScale([2])).toBe(0.9978370070457458);
    expect(selfOnlyScale([1, 1])).toBe(0.9978370070457458);
    expect(selfOnlyScale([1, 2])).toBeCloseTo(0.9970541000366211, 7);
    expect(selfOnlyScale([2, 2, 1])).toBeCloseTo(1.0000629425048828, 7);
  });
});

/**
 * transformers' LSHSelfAttention for one head, step by step (sort each round by bucket, chunk, look
 * back, dots, -1e9 where the key is in the future or padding, -1e5 on the own key, logsumexp and
 * softmax per chunk row, unsort, then merge rounds with exp(lse_r − logsumexp(lse))), in f64.
 */
function literalLsh(q: number[][], k: number[][], v: number[][], buckets: number[][], length: number, window: ChunkWindow): number[][] {
  const padded = q.length;
  const hashes = buckets.length;
  const order: number[] = [];
  buckets.forEach((round) => order.push(...Array.from({ length: padded }, (_, t) => t).sort((a, b) => round[a]! - round[b]! || a - b)));
  const size = window.chunkLength;
  const chunks = order.length / size;
  const out: number[][][] = Array.from({ length: hashes }, () => []);
  const lse: number[][] = Array.from({ length: hashes }, () => []);
  for (let i = 0; i < order.length; i++) {
    const chunk = Math.floor(i / size);
    const keys = adjacentChunks(chunk, chunks, window).flatMap((c) => order.slice(c * size, (c + 1) * size));
    const p = order[i]!;
    const dots = keys.map((key) => {
      if (key === p) return -1e5;
      if (key > p || key >= length) return -1e9;
      return q[p]!.reduce((s, x, d) => s + x * k[key]![d]!, 0);
    });
    const m = Math.max(...dots);
    const z = m + Math.log(dots.reduce((s, x) => s + Math.exp(x - m), 0));
    const o = new Array(v[0]!.length).fill(0);
    keys.forEach((key, j) => v[key]!.forEach((x, d) => (o[d] += Math.exp(dots[j]! - z) * x)));
    const round = Math.floor(i / padded);
    out[round]![p] = o;
    lse[round]![p] = z;
  }
  return Array.from({ length }, (_, t) => {
    const zs = lse.map((r) => r[t]!);
    const m = Math.max(...zs);
    const total = m + Math.log(zs.reduce((s, x) => s + Math.exp(x - m), 0));
    return out[0]![t]!.map((_, d) => out.reduce((s, r, h) => s + Math.exp(zs[h]! - total) * r[t]![d]!, 0));
  });
}

/** Softmax over keys 0 … length − 1 with the bias added to q·k (what the device computes). */
function biasedAttention(q: number[][], k: number[][], v: number[][], bias: number[][], length: number): number[][] {
  return Array.from({ length }, (_, t) => {
    const scores = Array.from({ length }, (_, j) => (bias[t]![j] === H ? -Infinity : q[t]!.reduce((s, x, d) => s + x * k[j]![d]!, 0) + bias[t]![j]!));
    const m = Math.max(...scores);
    const w = scores.map((s) => Math.exp(s - m));
    const sum = w.reduce((a, b) => a + b, 0);
    return v[0]!.map((_, d) => w.reduce((s, x, j) => s + (x / sum) * v[j]![d]!, 0));
  });
}

/** A small deterministic generator for the random vectors (xorshift). */
function vectors(seed: number, n: number, d: number): number[][] {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  };
  return Array.from({ length: n }, () => Array.from({ length: d }, () => 2 * next()));
}

describe('the bias reproduces transformers\' LSH attention', () => {
  const cases: Array<{ name: string; length: number; padded: number; hashes: number; buckets: number; window: ChunkWindow }> = [
    { name: '7 tokens padded to 8, chunks of 2, one round', length: 7, padded: 8, hashes: 1, buckets: 4, window: { chunkLength: 2, before: 1, after: 0 } },
    { name: '8 tokens, chunks of 2, three rounds', length: 8, padded: 8, hashes: 3, buckets: 4, window: { chunkLength: 2, before: 1, after: 0 } },
    { name: '6 tokens padded to 8, chunks of 2 looking back 5 and ahead 1, two rounds (windows overlap)', length: 6, padded: 8, hashes: 2, buckets: 2, window: { chunkLength: 2, before: 5, after: 1 } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const q = vectors(11, c.padded, 4);
      const k = vectors(12, c.padded, 4);
      const v = vectors(13, c.padded, 3);
      // buckets of real positions from a hash of the position; padding in the extra bucket
      const buckets = Array.from({ length: c.hashes }, (_, r) => Array.from({ length: c.padded }, (_, t) => (t < c.length ? (t * 7 + r * 3 + ((t * t) % 5)) % c.buckets : c.buckets)));
      const order = Array.from(lshOrder(Int32Array.from(buckets.flat()), c.hashes, c.padded));
      const bias = biasOf(c.length, order, c.length, c.window, true);
      const ours = biasedAttention(q, k, v, bias, c.length);
      const ref = literalLsh(q, k, v, buckets, c.length, c.window);
      for (let t = 0; t < c.length; t++) for (let d = 0; d < 3; d++) expect(ours[t]![d]).toBeCloseTo(ref[t]![d]!, 6);
    });
  }
});

describe('reformerSpec', () => {
  const golden = {
    model_type: 'reformer',
    is_decoder: true,
    attn_layers: ['local', 'lsh'],
    local_attn_chunk_length: 4,
    lsh_attn_chunk_length: 6,
    num_buckets: [2, 4],
    num_hashes: 2,
    hash_seed: 3,
    axial_pos_shape: [8, 16],
    axial_pos_embds_dim: [32, 32],
    max_position_embeddings: 100,
  };
  const spec = (over: Record<string, unknown> = {}) => reformerSpec(createConfigReader({ ...golden, ...over } as HfConfig));

  it('reads chunking, bucket factors, rounds and seed; pads to the lcm of the chunk lengths above the smaller one', () => {
    const s = spec();
    expect(s.layers).toEqual(['local', 'lsh']);
    expect(s.lsh).toEqual({ chunkLength: 6, before: 1, after: 0, buckets: [2, 4], hashes: 2, seed: 3 });
    expect([s.minChunk, s.lcmChunk]).toEqual([4, 12]);
    expect([3, 4, 5, 12, 13].map((n) => reformerPaddedLength(s, n))).toEqual([3, 4, 12, 12, 24]);
    // the axial grid (128) is above max_position_embeddings (100): 96 is the longest padded length that fits
    expect(s.maxPaddedLength).toBe(100);
    expect(reformerMaxLength(s)).toBe(96);
  });

  it('refuses configs transformers runs non-deterministically or statefully, and the masked-LM one', () => {
    expect(() => spec({ hash_seed: null })).toThrow(/hash_seed is not set/);
    expect(() => spec({ num_buckets: null })).toThrow(/num_buckets is not set/);
    expect(() => spec({ num_buckets: 3 })).toThrow(/num_buckets must be an even number/);
    expect(() => spec({ is_decoder: false })).toThrow(/is_decoder is false/);
    expect(() => spec({ attn_layers: ['local', 'global'] })).toThrow(/attn_layers must list/);
  });
});

describe('TokenHistory', () => {
  it('keeps real tokens only, maps slots to them, and follows a beam reorder', () => {
    const h = new TokenHistory();
    h.reset(2);
    h.append({ batch: 2, rows: 3, start: 0, ids: Int32Array.of(0, 5, 6, 7, 8, 9), keyMask: Int32Array.of(0, 1, 1, 1, 1, 1) });
    h.append({ batch: 2, rows: 1, start: 3, ids: Int32Array.of(1, 2), keyMask: Int32Array.of(1, 1) });
    expect([h.sequence(0), h.sequence(1)]).toEqual([[5, 6, 1], [7, 8, 9, 2]]);
    expect([h.indexOf(0, 0), h.indexOf(0, 1), h.indexOf(0, 3), h.indexOf(1, 3)]).toEqual([-1, 0, 2, 3]);
    h.reorder(Int32Array.of(1, 1));
    expect([h.sequence(0), h.sequence(1)]).toEqual([[7, 8, 9, 2], [7, 8, 9, 2]]);
    expect(() => h.append({ batch: 2, rows: 1, start: 2, ids: Int32Array.of(1, 2), keyMask: Int32Array.of(1, 1) })).toThrow(/starts at slot 2, but 4 slots are filled/);
  });
});
