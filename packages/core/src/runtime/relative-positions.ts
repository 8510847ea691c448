/**
 * Relative positions inside attention, on the host: the tables and the (query, key) → table-row index
 * the backend's `AttentionSpec.relative` reads. NEZHA's sinusoidal distance table and index, and
 * DeBERTa's (log-bucketed) relative positions. Queries and keys are the positions 0 … n − 1 of one
 * encoder pass. torch computes the floating-point parts in float32; Math.fround keeps the same
 * rounding, so a boundary lands in the same table row.
 */
const f = Math.fround;

/**
 * NEZHA's functional relative position table, as transformers' NezhaRelativePositionsEncoding builds
 * it: [2·maxDistance + 1, depth], row r holding sin(r·f_k) in column 2k and cos(r·f_k) in column
 * 2k + 1, with f_k = exp(2k · (−ln 10000 / depth)). Row r stands for the distance r − maxDistance.
 */
export function functionalTable(maxDistance: number, depth: number): Float32Array {
  const rows = 2 * maxDistance + 1;
  const out = new Float32Array(rows * depth);
  const step = f(-Math.log(10000) / depth);
  for (let k = 0; 2 * k < depth; k++) {
    const frequency = f(Math.exp(f(2 * k * step)));
    for (let r = 0; r < rows; r++) {
      const angle = f(r * frequency);
      out[r * depth + 2 * k] = Math.sin(angle);
      if (2 * k + 1 < depth) out[r * depth + 2 * k + 1] = Math.cos(angle);
    }
  }
  return out;
}

/** i32 [rows, keys]: the functional table's row for query i and key j, clamp(j − i, −m, m) + m. */
export function functionalIndex(rows: number, keys: number, maxDistance: number): Int32Array {
  const out = new Int32Array(rows * keys);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < keys; j++) out[i * keys + j] = Math.min(Math.max(j - i, -maxDistance), maxDistance) + maxDistance;
  }
  return out;
}

/**
 * DeBERTa-v2's make_log_bucket_position for one relative position: distances below bucketSize / 2
 * stay themselves, larger ones share buckets logarithmically, sign kept, reaching ±(bucketSize − 1) at
 * maxPosition − 1 (and beyond it, more).
 */
export function logBucketPosition(relative: number, bucketSize: number, maxPosition: number): number {
  const mid = Math.floor(bucketSize / 2);
  const abs = relative < mid && relative > -mid ? mid - 1 : Math.abs(relative);
  if (abs <= mid) return relative;
  const scaled = f(f(f(Math.log(f(abs / mid))) / f(Math.log(f((maxPosition - 1) / mid)))) * (mid - 1));
  return Math.sign(relative) * (Math.ceil(scaled) + mid);
}

export interface DisentangledIndexShape {
  rows: number;
  keys: number;
  /** Half the rows of the relative embedding table that are used. */
  span: number;
  /** Log buckets (DeBERTa-v2 position_buckets); absent: the plain distance. */
  buckets?: { size: number; maxPosition: number };
}

/**
 * i32 [rows, keys]: DeBERTa's table row δ(i, j) = clamp(bucket(i − j) + span, 0, 2·span − 1) for
 * query i and key j — the c2p gather index of DisentangledSelfAttention, and also its p2c index,
 * which transformers gathers at −bucket(j − i) and transposes (bucket() is odd).
 */
export function disentangledIndex(s: DisentangledIndexShape): Int32Array {
  const out = new Int32Array(s.rows * s.keys);
  for (let i = 0; i < s.rows; i++) {
    for (let j = 0; j < s.keys; j++) {
      const relative = s.buckets ? logBucketPosition(i - j, s.buckets.size, s.buckets.maxPosition) : i - j;
      out[i * s.keys + j] = Math.min(Math.max(relative + s.span, 0), 2 * s.span - 1);
    }
  }
  return out;
}
