/**
 * LongT5's encoder self-attention as full attention over the keys each query may see, with an
 * additive bias that masks the others.
 *
 * transformers computes it blockwise (LongT5LocalAttention, LongT5TransientGlobalAttention): the
 * sequence is cut into blocks of local_radius + 1 tokens, the queries of a block score the keys of
 * their own block and of the two beside it (_concatenate_3_blocks), the locality mask keeps keys with
 * |key − query| < block length (_mask_local_attention_mask), and every masked score gets -1e10 before
 * the softmax. A query thus softmaxes over exactly the real tokens at most local_radius away, with the
 * stack's T5 bias of their distance (compute_bias over the 3 blocks' relative positions) — which full
 * attention over all keys, the others masked, reproduces.
 *
 * Transient-global adds G = ⌊rows / global_block_size⌋ global keys per sequence: global g is the sum
 * of the (normed) layer input over the tokens of fixed block g (_make_global_fixed_block_ids: padding
 * excluded, a trailing partial block joins the last full one; _create_global_aggregates), normed by
 * the layer's global_input_layer_norm and projected by the same k and v. A real token sees the globals
 * up to its sequence's last block, with a side bias from global_relative_attention_bias of
 * (g − its block) (compute_side_bias). The sums are of the hidden state every rank holds whole, so
 * each rank projects them with its own k/v heads: no communication.
 *
 * One encoder layer's cache holds [G globals | rows tokens] per sequence: the globals are written
 * first (fillKvCache), then the layer's attention appends the token keys at slot G. The bias is
 * [heads, rows, G + rows], or one per sequence when padding gives sequences different blocks. It is
 * dense: the cost is that of full attention, O(rows²) per head, not transformers' O(rows · radius).
 */
import { hostTensor, type AttentionStep, type DeviceTensor, type KvCache } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { LongT5EncoderAttention } from '../graph/index.js';
import { linear } from './linear.js';
import { relativeBucket } from './relative-bias.js';
import type { LayerRefs, StackRefs } from './structure.js';
import type { AttentionRuntime, SubLayers } from './sublayers.js';

/** A bias entry at or below -1e30 masks its key (`AttentionStep.bias`). */
const MASKED = -1e30;

/**
 * The global block of each token of one sequence (`mask`: 1 for a real token), or -1 for none, as
 * transformers' _make_global_fixed_block_ids computes it: ⌊t / blockSize⌋ in float32 from a cumulative
 * sum of 1/blockSize (accumulated in double, as torch's CPU cumsum does, then rounded), padding -1,
 * and tokens after the last full block (counting block ends at real tokens) put in that block.
 */
export function globalBlockIds(mask: ArrayLike<number>, blockSize: number): Int32Array {
  const f = Math.fround;
  const step = f(1 / blockSize);
  const ids = new Int32Array(mask.length);
  let sum = 0;
  let fullBlocks = 0;
  for (let t = 0; t < mask.length; t++) {
    sum += step;
    const fraction = f(f(sum) - step);
    ids[t] = mask[t] === 0 ? -1 : Math.max(-1, Math.floor(f(f(1 + fraction) - 1)));
    if (t % blockSize === blockSize - 1 && ids[t]! >= 0) fullBlocks++;
  }
  // handle_orphan_tokens: min(id, full blocks − 1)
  for (let t = 0; t < ids.length; t++) ids[t] = Math.min(ids[t]!, fullBlocks - 1);
  return ids;
}

/** Whether a real query at `query` sees the real token at `key` (|key − query| ≤ local_radius). */
export function locallyVisible(query: number, key: number, radius: number): boolean {
  return Math.abs(key - query) <= radius;
}

/** Where every key of one encoder batch sits, and which it is. */
export interface LongT5Layout {
  batch: number;
  rows: number;
  /** Global keys per sequence (0 for local attention): slots [0, globals) of each sequence. */
  globals: number;
  /** globals + rows. */
  keys: number;
  /** i32 [batch, keys]: a global up to the sequence's last block, then the real tokens. */
  keyMask: Int32Array;
  /** i32 [batch, rows]: each token's global block, -1 for none. */
  blockIds: Int32Array;
  /** Whether sequences differ in their blocks (padding), so the bias must be one per sequence. */
  perSequence: boolean;
  /** The encoder rows (b·rows + t) that belong to a global block, and the global row (b·globals + g) each adds into. */
  members: Int32Array;
  targets: Int32Array;
}

/** The layout of a right-padded batch (`mask` i32 [batch, rows], 1 for real tokens). */
export function longT5Layout(mask: Int32Array, batch: number, rows: number, attention: LongT5EncoderAttention): LongT5Layout {
  if (mask.length !== batch * rows) throw new TpError('invalid-argument', `a key mask of ${mask.length} entries does not fit ${batch} × ${rows} rows`);
  const globals = attention.kind === 'transient-global' ? Math.floor(rows / attention.globalBlockSize) : 0;
  const keys = globals + rows;
  const keyMask = new Int32Array(batch * keys);
  const blockIds = new Int32Array(batch * rows).fill(-1);
  const members: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < batch; b++) {
    const sequence = mask.subarray(b * rows, (b + 1) * rows);
    if (globals > 0) {
      const ids = globalBlockIds(sequence, (attention as { globalBlockSize: number }).globalBlockSize);
      blockIds.set(ids, b * rows);
      // compute_side_bias: a real token sees global g when g ≤ its sequence's largest block id.
      const last = ids.reduce((m, id) => Math.max(m, id), -1);
      for (let g = 0; g < globals; g++) keyMask[b * keys + g] = g <= last ? 1 : 0;
      ids.forEach((id, t) => {
        if (id < 0) return;
        members.push(b * rows + t);
        targets.push(b * globals + id);
      });
    }
    for (let t = 0; t < rows; t++) keyMask[b * keys + globals + t] = sequence[t] === 0 ? 0 : 1;
  }
  const first = blockIds.subarray(0, rows);
  const perSequence = globals > 0 && Array.from({ length: batch - 1 }, (_, b) => blockIds.subarray((b + 1) * rows, (b + 2) * rows)).some((ids) => ids.some((id, t) => id !== first[t]));
  return { batch, rows, globals, keys, keyMask, blockIds, perSequence, members: Int32Array.from(members), targets: Int32Array.from(targets) };
}

/** The stack's bias tables, each [buckets, local heads] (row-major), and the bucketing of T5's encoder. */
export interface LongT5Tables {
  heads: number;
  local: Float32Array;
  /** global_relative_attention_bias (transient-global only). */
  global: Float32Array | undefined;
  buckets: number;
  maxDistance: number;
}

/**
 * The additive bias over [globals | tokens]: per head, T5's bidirectional bucket of (key − query)
 * from the local table for tokens at most `radius` away (masked beyond), and for global g the global
 * table's bucket of (g − the query's block). [heads, rows, keys], or [batch, heads, rows, keys] when
 * `layout.perSequence`.
 */
export function longT5Bias(layout: LongT5Layout, tables: LongT5Tables, radius: number): { values: Float32Array; shape: number[] } {
  const { rows, keys, globals } = layout;
  const { heads, buckets, maxDistance } = tables;
  const sequences = layout.perSequence ? layout.batch : 1;
  const values = new Float32Array(sequences * heads * rows * keys);
  const bucket = (relative: number) => relativeBucket(relative, true, buckets, maxDistance);
  for (let s = 0; s < sequences; s++) {
    for (let t = 0; t < rows; t++) {
      const block = layout.blockIds[s * rows + t]!;
      for (let g = 0; g < globals; g++) {
        const r = bucket(g - block) * heads;
        for (let h = 0; h < heads; h++) values[((s * heads + h) * rows + t) * keys + g] = tables.global![r + h]!;
      }
      for (let j = 0; j < rows; j++) {
        const visible = locallyVisible(t, j, radius);
        const r = visible ? bucket(j - t) * heads : 0;
        for (let h = 0; h < heads; h++) values[((s * heads + h) * rows + t) * keys + globals + j] = visible ? tables.local[r + h]! : MASKED;
      }
    }
  }
  return { values, shape: layout.perSequence ? [layout.batch, heads, rows, keys] : [heads, rows, keys] };
}

/** One encoder batch, ready on the device: the attention step of every layer, and its global keys. */
export interface LongT5Batch {
  /** Keys from slot `globals` on, the key mask and bias over [globals | tokens]. */
  readonly step: AttentionStep;
  /**
   * Write a layer's global keys and values into slots [0, globals) of `cache`, from the layer's
   * normed input `x` (what its attention reads); nothing for local attention.
   */
  fillGlobals(self: AttentionRuntime, norms: LayerRefs['norms'], x: DeviceTensor, cache: KvCache): Promise<void>;
}

/** LongT5's encoder attention on one rank: its heads' columns of the stack's tables, read once. */
export class LongT5Encoder {
  private constructor(
    private readonly ops: SubLayers,
    private readonly attention: LongT5EncoderAttention,
    private readonly tables: LongT5Tables,
  ) {}

  /**
   * `local` is the stack's relative-bias table as this rank holds it ([buckets, local heads]); the
   * global table is read from the stack's first layer (slot `global_rel_bias`).
   */
  static async create(ops: SubLayers, stack: StackRefs, attention: LongT5EncoderAttention, local: { values: Float32Array; heads: number }, bucketing: { buckets: number; maxDistance: number }): Promise<LongT5Encoder> {
    let global: Float32Array | undefined;
    if (attention.kind === 'transient-global') {
      const ref = stack.layers[0]?.norms.get('global_rel_bias');
      if (ref === undefined) throw new TpError('unsupported-model', `LongT5 with transient-global attention needs ${stack.blockList}.0's global_relative_attention_bias`);
      const t = ops.tensor(ref.weight.name);
      if (t.shape[1] !== local.heads) throw new TpError('internal', `the global bias table has ${t.shape[1]} heads on rank ${ops.rank.rank}, the local one ${local.heads}`);
      global = (await ops.rank.download(t)) as Float32Array;
    }
    return new LongT5Encoder(ops, attention, { heads: local.heads, local: local.values, global, ...bucketing });
  }

  /** The step and global keys of an encoder batch (`keyMask` i32 [batch, rows] on the host). */
  prepare(keyMask: Int32Array, batch: number, rows: number): LongT5Batch {
    const rank = this.ops.rank;
    const layout = longT5Layout(keyMask, batch, rows, this.attention);
    const bias = longT5Bias(layout, this.tables, this.attention.radius);
    const step: AttentionStep = {
      batch,
      rows,
      start: layout.globals,
      keyMask: rank.upload(hostTensor(layout.keyMask, [batch, layout.keys])),
      bias: rank.upload(hostTensor(bias.values, bias.shape)),
    };
    if (layout.globals === 0) return { step, fillGlobals: async () => {} };
    // Every global slot is written, even one no token adds into (a block of padding): a masked key's
    // value still meets a zero weight, and it must not be left over from another step.
    const some = layout.members.length > 0;
    const members = !some || layout.members.length === batch * rows ? undefined : rank.upload(hostTensor(layout.members));
    const targets = some ? rank.upload(hostTensor(layout.targets)) : undefined;
    const ones = some ? rank.upload(hostTensor(new Float32Array(layout.members.length).fill(1))) : undefined;
    return {
      step,
      fillGlobals: async (self, norms, x, cache) => {
        const norm = norms.get('global_norm');
        if (norm === undefined || self.refs.k === undefined || self.refs.v === undefined) {
          throw new TpError('unsupported-model', "LongT5's transient-global attention needs every encoder layer's global_input_layer_norm and k/v projections");
        }
        // _create_global_aggregates: each global row sums its block's tokens (padding belongs to none).
        // Made per layer: each layer runs in a scope of its own, which releases what it made.
        const sums = rank.upload(hostTensor(new Float32Array(batch * layout.globals * x.shape[1]!), [batch * layout.globals, x.shape[1]!]));
        if (some) rank.scatterAddRows(sums, members === undefined ? x : rank.gatherRows(x, members), targets!, ones!);
        const globals = this.ops.norm(sums, norm);
        const k = await linear(rank, globals, this.ops.weight(self.refs.k));
        const v = await linear(rank, globals, this.ops.weight(self.refs.v));
        rank.fillKvCache(cache, k, v, batch, layout.globals);
      },
    };
  }
}

