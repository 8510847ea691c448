/**
 * LSH bucketing and the order it puts a sequence in (transformers' LSHSelfAttention._hash_vectors and
 * _get_sorted_bucket_idx_and_undo_sorted_bucket_idx), on the host: the rotated vectors x·R come from
 * the device, the argmax over [x·R, −x·R] and the sort are done here.
 */

/**
 * The bucket of one vector in one hashing round: with one factor, the index of the largest of
 * [x·R, −x·R] (the first on ties, like torch.argmax); with several factors f_1, f_2, …, each takes
 * its own f_i / 2 consecutive rotations, and the bucket is b_1 + f_1·b_2 + f_1·f_2·b_3 + ….
 * `rotated[at …]` holds Σ f_i / 2 values.
 */
export function hashBucket(rotated: ArrayLike<number>, at: number, factors: readonly number[]): number {
  let bucket = 0;
  let product = 1;
  let offset = at;
  for (const factor of factors) {
    const half = factor / 2;
    let best = 0;
    let bestValue = rotated[offset]!;
    for (let j = 1; j < factor; j++) {
      const value = j < half ? rotated[offset + j]! : -rotated[offset + j - half]!;
      if (value > bestValue) {
        best = j;
        bestValue = value;
      }
    }
    bucket += product * best;
    product *= factor;
    offset += half;
  }
  return bucket;
}

/**
 * The positions of a sequence in LSH order: `buckets` is [hashes, length] (round-major); the entries
 * of round r come before those of round r + 1 (transformers offsets each round's buckets past the
 * previous round's), and within a round they sort by bucket, then by position — the order of
 * _stable_argsort's key length·bucket + index. Entry k of the result is the position (0 … length − 1)
 * at sorted index k.
 */
export function lshOrder(buckets: Int32Array, hashes: number, length: number): Int32Array {
  const order = new Int32Array(hashes * length);
  const positions = Array.from({ length }, (_, t) => t);
  for (let r = 0; r < hashes; r++) {
    const round = buckets.subarray(r * length, (r + 1) * length);
    const sorted = positions.slice().sort((a, b) => round[a]! - round[b]! || a - b);
    order.set(sorted, r * length);
  }
  return order;
}
