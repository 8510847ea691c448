/**
 * The whole trick of tensor parallelism, in one function. With W stored [out, in]:
 * - column-parallel (W's rows split): y_r = x · W_rᵀ + b_r — each rank computes its own output
 *   features; no communication.
 * - row-parallel (W's columns split, x arrives split the same way): y = Σ_r x_r · W_rᵀ — each rank
 *   computes a partial sum, an all-reduce adds them, then the full bias is added exactly once.
 * - vocab-parallel LM head (rows = vocabulary split): each rank computes its logits, an all-gather
 *   concatenates them.
 * A replicated weight is an ordinary local matmul.
 */
import type { DeviceTensor, Rank } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { TensorPlan } from '../plan/index.js';

export interface LinearWeight {
  readonly plan: TensorPlan;
  readonly weight: DeviceTensor;
  readonly bias: DeviceTensor | undefined;
}

/** A row-parallel product whose all-reduce the caller performs (to fuse two reductions into one). */
export interface PartialSum {
  readonly partial: DeviceTensor;
  readonly bias: DeviceTensor | undefined;
}

export async function linear(rank: Rank, x: DeviceTensor, w: LinearWeight): Promise<DeviceTensor> {
  switch (w.plan.split) {
    case 'replicate':
    case 'column':
      return rank.linear(x, w.weight, w.bias);
    case 'row': {
      const y = rank.linear(x, w.weight);
      await rank.collective.allReduce(y);
      return w.bias === undefined ? y : rank.addInPlace(y, w.bias);
    }
    case 'vocab': {
      const y = rank.linear(x, w.weight, w.bias);
      return rank.world === 1 ? y : rank.collective.allGather(y);
    }
    default: {
      const never: never = w.plan.split;
      throw new TpError('internal', `unknown split ${String(never)}`);
    }
  }
}

/** Row-parallel without the reduce: for parallel residual blocks that sum attention and MLP first. */
export function linearPartial(rank: Rank, x: DeviceTensor, w: LinearWeight): PartialSum {
  if (w.plan.split !== 'row') return { partial: rank.linear(x, w.weight, w.bias), bias: undefined };
  return { partial: rank.linear(x, w.weight), bias: w.bias };
}

/**
 * Token embeddings. A vocabulary-split table gives zeros for ids outside the rank's rows, so the
 * all-reduce completes every lookup; a replicated table is an ordinary gather.
 */
export async function embed(rank: Rank, table: DeviceTensor, split: TensorPlan, ids: DeviceTensor, scale: number): Promise<DeviceTensor> {
  if (split.split !== 'vocab') return rank.embedding(table, ids, 0, scale);
  const rows = rank.embedding(table, ids, split.ranks[rank.rank]!.ranges[0]![0], scale);
  await rank.collective.allReduce(rows);
  return rows;
}

/**
 * A sub-layer's output. `partial` holds row-parallel partial sums still to be all-reduced (with the
 * full biases of `biases` added once after), `complete` what is already whole on every rank (a
 * replicated or column-parallel projection, a replicated expert). Keeping the two apart lets parallel
 * residual blocks and mixtures of experts share one all-reduce without ever reducing a whole value.
 */
export interface SubLayerOutput {
  partial: DeviceTensor | undefined;
  complete: DeviceTensor | undefined;
  biases: PartialSum[];
}

/** All-reduce the partial sums, add each full bias once, then what was already complete. */
export async function finishSubLayer(rank: Rank, out: SubLayerOutput): Promise<DeviceTensor> {
  if (out.partial === undefined) return out.complete!;
  await rank.collective.allReduce(out.partial);
  for (const p of out.biases) if (p.bias !== undefined) rank.addInPlace(out.partial, p.bias);
  return out.complete === undefined ? out.partial : rank.addInPlace(out.partial, out.complete);
}

/** Two sub-layer outputs as one (a parallel residual block: one all-reduce for both). */
export function combineSubLayers(rank: Rank, a: SubLayerOutput, b: SubLayerOutput): SubLayerOutput {
  const add = (x: DeviceTensor | undefined, y: DeviceTensor | undefined) => (x === undefined ? y : y === undefined ? x : rank.add(x, y));
  return { partial: add(a.partial, b.partial), complete: add(a.complete, b.complete), biases: [...a.biases, ...b.biases] };
}
