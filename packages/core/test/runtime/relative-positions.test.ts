/**
 * The host side of relative positions: NEZHA's sinusoidal distance table and its index, DeBERTa-v2's
 * log buckets and DeBERTa's disentangled index. Expected numbers were computed from transformers'
 * formulas (NezhaRelativePositionsEncoding, make_log_bucket_position, DisentangledSelfAttention's
 * gathers) with numpy in float32, as torch computes them.
 */
import { describe, expect, test } from 'vitest';
import { disentangledIndex, functionalIndex, functionalTable, logBucketPosition } from '../../src/runtime/relative-positions.js';

describe('NEZHA functional relative positions', () => {
  // numpy: div = exp(arange(0, 16, 2).astype(f32) * f32(-ln(10000)/16)); t[:, 0::2] = sin(pos·div); t[:, 1::2] = cos(pos·div)
  const expected: Record<number, { first: number[]; last: number }> = {
    0: { first: [0, 1, 0, 1, 0, 1], last: 1 },
    1: { first: [0.8414710164070129, 0.5403022766113281, 0.3109835982322693, 0.9504152536392212, 0.0998334139585495, 0.9950041770935059], last: 0.9999999403953552 },
    16: { first: [-0.2879033386707306, -0.9576594829559326, -0.9403103590011597, 0.34031814336776733, 0.9995735883712769, -0.029199426993727684], last: 0.9999871850013733 },
    17: { first: [-0.9613974690437317, -0.27516335248947144, -0.787851870059967, 0.6158647537231445, 0.9916648268699646, -0.12884442508220673], last: 0.9999855756759644 },
    32: { first: [0.5514267086982727, 0.8342233300209045, -0.640009343624115, -0.7683671116828918, -0.05837395042181015, -0.9982947707176208], last: 0.9999487996101379 },
  };

  test('the table (max_relative_position 16, head width 16) is [33, 16] with sin in even and cos in odd columns', () => {
    const t = functionalTable(16, 16);
    expect(t.length).toBe(33 * 16);
    for (const [row, { first, last }] of Object.entries(expected)) {
      const r = Number(row);
      const got = Array.from(t.subarray(r * 16, r * 16 + 6));
      got.forEach((v, k) => expect(v, `row ${r} column ${k}`).toBeCloseTo(first[k]!, 6));
      expect(t[r * 16 + 15], `row ${r} column 15`).toBeCloseTo(last, 6);
    }
  });

  test('pair (i, j) reads row clamp(j − i, −m, m) + m: the diagonal is row m, distances past m share the end rows', () => {
    const index = functionalIndex(5, 5, 2);
    expect(Array.from(index)).toEqual([
      2, 3, 4, 4, 4, //
      1, 2, 3, 4, 4,
      0, 1, 2, 3, 4,
      0, 0, 1, 2, 3,
      0, 0, 0, 1, 2,
    ]);
  });
});

describe('DeBERTa relative positions', () => {
  // numpy make_log_bucket_position(arange(-130, 131), 32, 128), float32 as torch computes it
  const buckets32: Array<[number, number]> = [
    [0, 0], [1, 1], [15, 15], [16, 16], [17, 17], [18, 17], [19, 18], [21, 18], [22, 19], [31, 21], [32, 22], [36, 22], [37, 23],
    [63, 26], [64, 27], [73, 27], [74, 28], [96, 29], [97, 30], [110, 30], [111, 31], [127, 31], [128, 32], [130, 32],
  ];

  test('log buckets (position_buckets 32, max position 128): exact below 16, logarithmic after, odd in the sign', () => {
    for (const [distance, bucket] of buckets32) {
      expect(logBucketPosition(distance, 32, 128), `+${distance}`).toBe(bucket);
      expect(logBucketPosition(-distance, 32, 128), `-${distance}`).toBe(-bucket);
    }
  });

  test('log buckets of DeBERTa-v3 (256 buckets, max position 512) reach 255 at 511 and keep growing past it', () => {
    expect([128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139].map((d) => logBucketPosition(d, 256, 512))).toEqual([128, 129, 130, 131, 131, 132, 133, 133, 134, 135, 135, 136]);
    expect(logBucketPosition(511, 256, 512)).toBe(255);
    expect(logBucketPosition(600, 256, 512)).toBe(270);
    expect(logBucketPosition(-600, 256, 512)).toBe(-270);
  });

  test('δ(i, j) = clamp(i − j + span, 0, 2·span − 1) without buckets (DeBERTa v1)', () => {
    expect(Array.from(disentangledIndex({ rows: 4, keys: 4, span: 2 }))).toEqual([
      2, 1, 0, 0, //
      3, 2, 1, 0,
      3, 3, 2, 1,
      3, 3, 3, 2,
    ]);
  });

  test("the same δ(i, j) serves c2p and p2c: transformers' p2c gathers row clamp(−bucket(j − i) + span) and transposes", () => {
    const n = 140;
    const span = 32;
    const buckets = { size: 32, maxPosition: 128 };
    const index = disentangledIndex({ rows: n, keys: n, span, buckets });
    const clamp = (x: number) => Math.min(Math.max(x, 0), 2 * span - 1);
    const wrong: string[] = [];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const c2p = clamp(logBucketPosition(i - j, buckets.size, buckets.maxPosition) + span);
        const p2c = clamp(-logBucketPosition(j - i, buckets.size, buckets.maxPosition) + span);
        if (index[i * n + j] !== c2p || p2c !== c2p) wrong.push(`(${i}, ${j}): index ${index[i * n + j]}, c2p ${c2p}, p2c ${p2c}`);
      }
    }
    expect(wrong).toEqual([]);
    // bucket(139) = 32 + 33 clamps to the last row, bucket(−139) to the first
    expect(index[139 * n + 0]).toBe(63);
    expect(index[0 * n + 139]).toBe(0);
  });
});
