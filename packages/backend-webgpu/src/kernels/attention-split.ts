/**
 * How many pieces attention splits each row's keys into (flash-decoding: `AttentionVariant.split`, then
 * `attentionMergeKernel`). Unsplit, attention runs one workgroup per (query row, head), each walking all
 * of its keys: a decode step of one sequence is `heads` workgroups, too few to fill a GPU however long
 * the cache. Splitting multiplies the workgroups and costs a merge dispatch and a partial per piece, so
 * it pays only when the workgroups are few and every piece still holds many keys. (The scheme is
 * Flash-Decoding: T. Dao, D. Haziza, F. Massa, G. Sizov, "Flash-Decoding for long-context inference",
 * 2023.)
 */

/** At most this many pieces per row (bounds the partials: pieces · groups · (valueDim + 2) floats). */
export const MAX_SPLITS = 64;

export interface SplitPolicy {
  /** Split until there are this many workgroups (no more pieces than that needs). */
  readonly targetGroups: number;
  /** Keys a piece holds at least: below, the merge costs more than the parallelism gains. */
  readonly minKeys: number;
}

/**
 * A GPU runs thousands of invocations at once: split until a decode step has a few hundred workgroups,
 * each piece at least 4 chunks of 64 keys. Not measured on real hardware (none was available).
 */
export const GPU_SPLIT: SplitPolicy = { targetGroups: 256, minKeys: 256 };

/**
 * A software adapter (lavapipe) never splits: it runs one workgroup per CPU thread at a time, and on
 * the 2-core machine this was measured on (bench/attention-split.mjs, pieces interleaved; results in
 * bench/results/lavapipe-attention-split.md) no piece count beat the unsplit kernel, not even one head
 * over 8192 keys — the other core is rarely idle. A many-core host might gain for one sequence with
 * few heads; WebGPU does not say how many threads a software adapter has, so that is not guessed.
 */
export const SOFTWARE_SPLIT: SplitPolicy | undefined = undefined;

/**
 * Pieces for `groups` = batch·rows·heads workgroups over at most `keys` keys per row: 1 means the
 * unsplit kernel (always, without a policy). `forcedKeys` (backendOptions.attentionSplitKeys, for
 * tests) splits any call with more keys than that into ceil(keys / forcedKeys) pieces (at most
 * MAX_SPLITS), whatever the policy says.
 */
export function attentionSplits(keys: number, groups: number, policy: SplitPolicy | undefined, forcedKeys?: number): number {
  if (forcedKeys !== undefined) return Math.min(MAX_SPLITS, Math.max(1, Math.ceil(keys / forcedKeys)));
  if (policy === undefined || groups >= policy.targetGroups || keys < 2 * policy.minKeys) return 1;
  return Math.max(1, Math.min(MAX_SPLITS, Math.floor(keys / policy.minKeys), Math.ceil(policy.targetGroups / groups)));
}
