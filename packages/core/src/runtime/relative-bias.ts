/**
 * T5's relative position bias, on the host: each rank holds the table's columns of its own heads
 * ([buckets, local heads], read once from the device) and builds the [heads, rows, keys] bias of a
 * step, which the attention kernel adds to the scores (broadcast over the batch).
 */

/**
 * The bucket of one relative position (key position − query position), as transformers'
 * T5Attention._relative_position_bucket computes it: with `bidirectional` (the encoder) half the
 * buckets hold keys after the query; the other positions count back from the query (the decoder
 * clamps keys after it to 0). Distances below half the buckets (of one direction) get a bucket each,
 * larger ones share buckets logarithmically up to `maxDistance`. torch computes the logarithmic part
 * in float32 and truncates; Math.fround keeps the same rounding, so boundary distances land alike.
 */
export function relativeBucket(relative: number, bidirectional: boolean, buckets: number, maxDistance: number): number {
  let n = buckets;
  let bucket = 0;
  let distance: number;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (relative > 0) bucket += n;
    distance = Math.abs(relative);
  } else {
    distance = -Math.min(relative, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (distance < maxExact) return bucket + distance;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(distance / maxExact))) / f(Math.log(maxDistance / maxExact))) * (n - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), n - 1);
}

export interface RelativeBiasShape {
  /** Local heads: the table's columns. */
  heads: number;
  rows: number;
  keys: number;
  /** Position of the first query row (keys are at positions 0 … keys − 1). */
  queryStart: number;
  bidirectional: boolean;
  buckets: number;
  maxDistance: number;
}

/** [heads, rows, keys] bias from a [buckets, heads] table (row-major). */
export function relativeBias(table: Float32Array, s: RelativeBiasShape): Float32Array {
  const out = new Float32Array(s.heads * s.rows * s.keys);
  for (let t = 0; t < s.rows; t++) {
    const query = s.queryStart + t;
    for (let k = 0; k < s.keys; k++) {
      const bucket = relativeBucket(k - query, s.bidirectional, s.buckets, s.maxDistance);
      for (let h = 0; h < s.heads; h++) out[(h * s.rows + t) * s.keys + k] = table[bucket * s.heads + h]!;
    }
  }
  return out;
}
