/**
 * The attention bias of one Reformer layer for a whole batch, [batch, heads, rows, rows]: each
 * sequence is run as transformers runs it alone (padded up to the chunk multiple it pads to), its
 * rows from its real length on are hidden, and its block comes from window-bias.ts.
 */
import { reformerPaddedLength, type ReformerSpec } from '../../graph/index.js';
import { lshOrder, hashBucket } from './buckets.js';
import { chunkedSoftmaxBias, HIDDEN_KEY, identityOrder, selfOnlyScale, windowFor } from './window-bias.js';

export interface BatchShape {
  /** Real tokens of each sequence (rows [0, length) of its block). */
  lengths: readonly number[];
  /** Rows (and keys) of every block: the longest length. */
  rows: number;
  /** Local heads. */
  heads: number;
}

/** A local-attention layer: windows by position, the same for every head. */
export function localLayerBias(spec: ReformerSpec, shape: BatchShape): Float32Array {
  const { lengths, rows, heads } = shape;
  const out = new Float32Array(lengths.length * heads * rows * rows).fill(HIDDEN_KEY);
  lengths.forEach((length, b) => {
    const padded = reformerPaddedLength(spec, length);
    const block = b * heads * rows * rows;
    chunkedSoftmaxBias(out, block, rows, { order: identityOrder(padded), length, window: windowFor(spec.local, padded), selfMask: false });
    for (let h = 1; h < heads; h++) out.copyWithin(block + h * rows * rows, block, block + rows * rows);
  });
  return out;
}

/** A row of the batch (b·rows + t) whose head `head` sees only its own key, and its output scale φ ≠ 1. */
export interface ScaledRow {
  row: number;
  head: number;
  scale: number;
}

/**
 * An LSH layer. `rotated` holds, for row b·rows + t and local head h, hashing round r, the
 * rotations x·R of that head's query-key vector at column (h·hashes + r)·half (half = Σ factors / 2).
 * Padding positions take the extra bucket transformers gives them (after every real bucket). Also
 * returns the rows whose output transformers scales (window-bias.ts, selfOnlyScale).
 */
export function lshLayerBias(spec: ReformerSpec, shape: BatchShape, rotated: Float32Array): { bias: Float32Array; scaled: ScaledRow[] } {
  const { lengths, rows, heads } = shape;
  const { buckets: factors, hashes } = spec.lsh;
  const half = factors.reduce((a, f) => a + f, 0) / 2;
  const width = heads * hashes * half;
  const padBucket = factors.reduce((a, f) => a * f, 1);
  const out = new Float32Array(lengths.length * heads * rows * rows).fill(HIDDEN_KEY);
  const scaled: ScaledRow[] = [];
  lengths.forEach((length, b) => {
    const padded = reformerPaddedLength(spec, length);
    const window = windowFor(spec.lsh, padded);
    const chunked = padded > spec.lsh.chunkLength;
    for (let h = 0; h < heads; h++) {
      let order: Int32Array;
      if (chunked) {
        const buckets = new Int32Array(hashes * padded).fill(padBucket);
        for (let r = 0; r < hashes; r++) {
          for (let t = 0; t < length; t++) buckets[r * padded + t] = hashBucket(rotated, (b * rows + t) * width + (h * hashes + r) * half, factors);
        }
        order = lshOrder(buckets, hashes, padded);
      } else {
        order = identityOrder(padded); // the whole sequence fits one chunk: no hashing at all
      }
      const selfOnly = chunkedSoftmaxBias(out, (b * heads + h) * rows * rows, rows, { order, length, window, selfMask: true, rounds: chunked ? hashes : 1 });
      for (const { query, counts } of selfOnly) {
        const scale = selfOnlyScale(counts);
        if (scale !== 1) scaled.push({ row: b * rows + query, head: h, scale });
      }
    }
  });
  return { bias: out, scaled };
}
