/**
 * Reformer's axial position embeddings (transformers' AxialPositionEmbeddings, at inference): the
 * position grid `shape` is read row-major, so position p has one digit per axis, and its embedding
 * is the concatenation, over the axes, of row digit_i of table i. Table i is stored with `shape[i]`
 * rows on its own axis and 1 on the others ([8, 1, 32] and [1, 16, 32] for a grid of 8 × 16), so its
 * bytes are simply [shape[i], dims[i]].
 */
import { ArgumentError } from '../../errors/index.js';

export interface AxialTables {
  /** The position grid (config axial_pos_shape). */
  readonly shape: readonly number[];
  /** Each table's width (config axial_pos_embds_dim); they sum to the hidden size. */
  readonly dims: readonly number[];
  /** Table i: [shape[i], dims[i]], row-major. */
  readonly tables: readonly Float32Array[];
}

/** [positions.length, Σ dims]: the embedding row of each position. */
export function axialRows(axial: AxialTables, positions: ArrayLike<number>): Float32Array {
  const { shape, dims, tables } = axial;
  const width = dims.reduce((a, b) => a + b, 0);
  const grid = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(positions.length * width);
  for (let n = 0; n < positions.length; n++) {
    const p = positions[n]!;
    if (!Number.isInteger(p) || p < 0 || p >= grid) {
      throw new ArgumentError({ argument: 'positions', detail: `position ${p} is outside the axial position grid of ${shape.join(' × ')} = ${grid} positions` });
    }
    // Digits of p in the grid's mixed radix, last axis fastest; each axis' columns follow the previous ones.
    let rest = p;
    let column = width;
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      const digit = rest % shape[axis]!;
      rest = Math.floor(rest / shape[axis]!);
      const dim = dims[axis]!;
      column -= dim;
      out.set(tables[axis]!.subarray(digit * dim, (digit + 1) * dim), n * width + column);
    }
  }
  return out;
}
