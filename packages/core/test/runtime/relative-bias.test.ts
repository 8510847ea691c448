/**
 * T5's relative position buckets against values worked out by hand from the definition
 * (transformers' T5Attention._relative_position_bucket: exact below max_exact, then
 * max_exact + trunc(log(d / max_exact) / log(max_distance / max_exact) · (n − max_exact)), capped).
 */
import { describe, expect, it } from 'vitest';
import { relativeBias, relativeBucket } from '../../src/runtime/relative-bias.js';

describe('relativeBucket (32 buckets, max distance 128)', () => {
  it('bidirectional (encoder): 16 buckets per direction, keys after the query in 16-31', () => {
    const b = (rel: number) => relativeBucket(rel, true, 32, 128);
    expect([0, -1, -7, 1, 7].map(b)).toEqual([0, 1, 7, 17, 23]);
    // |d| >= 8: 8 + trunc(log(d/8) / log(16) · 8)
    expect([-8, -15, -16, -31, -32, -127, -128, -1000].map(b)).toEqual([8, 9, 10, 11, 12, 15, 15, 15]);
    expect([8, 16, 128, 5000].map(b)).toEqual([24, 26, 31, 31]);
  });

  it('unidirectional (decoder): keys after the query fall in bucket 0; 16 exact buckets, then log up to 31', () => {
    const b = (rel: number) => relativeBucket(rel, false, 32, 128);
    expect([5, 0, -1, -15].map(b)).toEqual([0, 0, 1, 15]);
    // d >= 16: 16 + trunc(log(d/16) / log(8) · 16)
    expect([-16, -32, -64, -127, -128, -4000].map(b)).toEqual([16, 21, 26, 31, 31, 31]);
  });
});

describe('relativeBias', () => {
  it('is [heads, rows, keys] with each entry the table row of its bucket, for query rows after the start', () => {
    // table [buckets 32, heads 2]: value = 100·bucket + head
    const table = Float32Array.from({ length: 64 }, (_, i) => 100 * Math.floor(i / 2) + (i % 2));
    const bias = relativeBias(table, { heads: 2, rows: 2, keys: 3, queryStart: 1, bidirectional: false, buckets: 32, maxDistance: 128 });
    // queries at positions 1, 2; keys 0, 1, 2; bucket = max(query − key, 0)
    expect(Array.from(bias)).toEqual([100, 0, 0, 200, 100, 0, 101, 1, 1, 201, 101, 1]);
  });
});
