/**
 * The plan: a plain, serialisable object and the single source of truth the engine reads. Every
 * tensor says how it is split and, for every rank, which index ranges of its split dimension the rank
 * gathers — in the order the rank's local tensor is assembled.
 */
import type { StorageDtype } from '../backend/index.js';
import type { Dtype } from '../checkpoint/index.js';
import type { Geometry, LayoutKind, Role } from '../graph/index.js';
import type { Range } from './split.js';
import type { SplitKind } from './policy.js';
import type { StorageRequest } from './storage.js';

export const PLAN_FORMAT_VERSION = 1;

/**
 * How a weight is shared (Y = X·Wᵀ with W stored [out, in], as nn.Linear does):
 * - `replicate`: every rank holds all of W.
 * - `column`: W's rows (output features, dim 0) are split; Y comes out split by feature; no collective.
 * - `row`: W's columns (input features, dim 1) are split; each rank's Y is a partial sum, all-reduced,
 *   then the full bias is added once.
 * - `vocab`: an embedding or LM head split by vocabulary rows: lookups are masked and all-reduced,
 *   logits are all-gathered.
 * `dim` gives the stored dimension actually split (GPT-2's Conv1D stores [in, out], so its column
 * split is dim 1).
 */
export type Split = SplitKind;

export interface RankSlice {
  /** [start, end) along `dim`, concatenated in this order to build the rank's local tensor. */
  readonly ranges: Range[];
  /** The local tensor's shape. */
  readonly shape: number[];
  /** Bytes the rank reads for this tensor (0 when `read` is false). */
  readonly bytes: number;
  /**
   * A fused q/k/v weight: how the loader turns the rank's rows (native layout, as `ranges` assemble
   * them, after any transposition) into [Q; K; V] with heads in order — `canonicalQkvOrder(layout,
   * qHeads, kvHeads, headWidth, codegenBlocks)` — so every engine splits every fused layout the same way.
   */
  readonly rowOrder?: QkvRowOrder;
}

/** The parameters of a rank's fused q/k/v row permutation (see `RankSlice.rowOrder`). */
export interface QkvRowOrder {
  readonly layout: LayoutKind;
  /** Query and key/value heads in the rank's local tensor. */
  readonly qHeads: number;
  readonly kvHeads: number;
  /** Rows per head. */
  readonly headWidth: number;
  /** CodeGen's mp_num blocks in the local tensor (4 whole, fewer when sliced); 1 otherwise. */
  readonly codegenBlocks: number;
}

export interface TensorPlan {
  readonly name: string;
  readonly shape: readonly number[];
  /** The dtype in the checkpoint. */
  readonly dtype: Dtype;
  /**
   * What the weight is held as on the device (`storageDtypeFor` of the plan's options): the requested
   * dtype for a matrix, f32 for a vector (norm weight, bias). Present for every tensor that is read
   * and floating point; absent for buffers that are not read and for non-float tensors.
   */
  readonly storage?: StorageDtype;
  readonly role: Role;
  readonly split: Split;
  readonly dim: number;
  readonly ranks: RankSlice[];
  /** The analysis rule that gave the role (`llama:self_attn.q_proj`, `generic:q`). */
  readonly rule: string;
  /** Why it is split this way (`attention heads`, `policy (tp_plan) ...`). */
  readonly decidedBy: string;
  readonly layout?: LayoutKind;
  /** Stored [in, out] (GPT-2's Conv1D): the loader transposes each rank's slice to [out, in]. */
  readonly transposed?: true;
  /** The collective that follows the op using this weight. */
  readonly after: 'all-reduce' | 'all-gather' | null;
  /** False for stored buffers the engine recomputes (never read from disk). */
  readonly read: boolean;
  readonly note?: string;
}

export interface AttentionPlan {
  readonly group: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number | undefined;
  /** True when tp exceeds the kv heads: ranks hold copies of their group's kv head. */
  readonly kvReplicated: boolean;
  /** q/k are computed whole and sliced by head after a norm that spans all heads (mpt qk_ln). */
  readonly sliceAfterNorm: boolean;
  /** Per rank: its query and kv head ranges, and what its attention computes with them. */
  readonly ranks: AttentionRankPlan[];
}

/**
 * One rank's share of an attention group. The engine reads these instead of re-deriving them from
 * local weight shapes: `heads`/`kvHeads` are the local counts (the lengths of `q` and `kv`),
 * `headDim` the width of a query/key head and `valueDim` of a value head (they differ for Perceiver).
 */
export interface AttentionRankPlan {
  readonly q: Range;
  readonly kv: Range;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly valueDim: number;
}

export interface LmHeadPlan {
  /** The weight used as output projection (the embedding when tied). */
  readonly weight: string;
  readonly tied: boolean;
  /** `row`: split by hidden, logits all-reduced; `vocab`: split by vocabulary, logits all-gathered. */
  readonly split: 'row' | 'vocab' | 'replicate';
  /** Hidden ranges (row) or vocabulary ranges (vocab) per rank. */
  readonly ranks: Array<{ ranges: Range[] }>;
  readonly after: 'all-reduce' | 'all-gather' | null;
}

export interface RankSummary {
  readonly rank: number;
  /** Weight bytes this rank reads from disk. */
  readonly bytesToRead: number;
  /** Parameter memory on the rank: each weight in its storage dtype (`TensorPlan.storage`). */
  readonly paramBytes: number;
  /** KV-cache bytes this rank adds per token of context (per sequence), in the KV dtype. */
  readonly kvCacheBytesPerToken: number;
}

/** The options a plan was made with. */
export interface PlanOptionsRecord {
  readonly vocabParallel: boolean;
  readonly grain: number;
  /** Activations and accumulation: always f32. */
  readonly computeDtype: 'f32';
  /** The matrices' storage dtype as asked (`auto` = as stored; vectors are f32); each tensor's result is `TensorPlan.storage`. */
  readonly storageDtype: StorageRequest;
  /** What the backend stores, as the planner was told (all three by default). */
  readonly supportedStorage: readonly StorageDtype[];
  /** The KV cache's dtype. */
  readonly kvDtype: StorageDtype;
  readonly policy: boolean;
}

export interface TPPlan {
  readonly formatVersion: typeof PLAN_FORMAT_VERSION;
  readonly tpSize: number;
  readonly options: PlanOptionsRecord;
  readonly model: {
    readonly modelType: string;
    readonly family: string;
    readonly title: string;
    readonly kind: 'causal' | 'seq2seq' | 'encoder';
    readonly architectures: readonly string[];
    /** The checkpoint dtype holding most bytes. */
    readonly dtype: Dtype;
  };
  /**
   * The storage dtypes of the matrices that are read (rank ≥ 2), most bytes first (one entry unless
   * mixed): what the model is "held as". Vectors (norm weights, biases) are always f32 and are not
   * listed — a BF16 checkpoint under auto says `['bf16']`. Their bytes still count in `paramBytes`.
   */
  readonly storageDtypes: readonly StorageDtype[];
  readonly geometry: Geometry;
  readonly attention: readonly AttentionPlan[];
  readonly lmHead: LmHeadPlan | null;
  readonly tensors: readonly TensorPlan[];
  /** Per block list, the weights whose op is followed by an all-reduce. */
  readonly allReduces: ReadonlyArray<{ block: string; after: string[] }>;
  readonly ranks: readonly RankSummary[];
  /** The unsharded model: bytes on disk, parameter memory (storage dtypes), KV bytes per token (KV dtype). */
  readonly totals: { bytes: number; paramBytes: number; kvCacheBytesPerToken: number };
  readonly warnings: readonly string[];
  readonly notes: readonly string[];
}
