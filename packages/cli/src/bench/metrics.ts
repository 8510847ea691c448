/**
 * The numbers `tp bench` reports, as pure functions of explicit inputs: timings (milliseconds), the
 * plan (what each rank holds) and the cell's batch and lengths. Nothing here measures anything, so
 * every formula can be checked on synthetic inputs.
 *
 * Units: bytes, milliseconds, GB/s = 1e9 bytes per second, FLOP/s.
 */
import { storageBytes, type StorageDtype } from '@tp/core';

// ───────────────────────────── timings ─────────────────────────────

/** The q-quantile (0 ≤ q ≤ 1) by linear interpolation between the sorted values (q = 0.5: the median). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * Math.min(1, Math.max(0, q));
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/**
 * One generation, timed: `startMs` when generate() was called, `stepMs[i]` when step i's tokens were
 * chosen (step 0 is the first token, made by the prefill forward over the prompt).
 */
export interface RunTimes {
  readonly startMs: number;
  readonly stepMs: readonly number[];
}

export interface RunTiming {
  /** Time to the first token: the prefill forward over the whole prompt, and choosing the token. */
  readonly prefillMs: number;
  /** Each decode step after the first token: stepMs[i] − stepMs[i − 1], i ≥ 1. Prefill is not in them. */
  readonly decodeStepsMs: number[];
  /** Mean of the decode steps: (last − first) / (steps − 1). */
  readonly decodeMeanMs: number;
  /** generate() to the last token. */
  readonly totalMs: number;
}

export function runTiming(run: RunTimes): RunTiming {
  const steps = run.stepMs;
  if (steps.length < 2) throw new Error('a timed run needs at least two steps (the first token and one decode step)');
  const decodeStepsMs = steps.slice(1).map((t, i) => t - steps[i]!);
  return {
    prefillMs: steps[0]! - run.startMs,
    decodeStepsMs,
    decodeMeanMs: (steps.at(-1)! - steps[0]!) / (steps.length - 1),
    totalMs: steps.at(-1)! - run.startMs,
  };
}

export interface CellTiming {
  /** Median over the runs of the time to the first token. */
  readonly prefillMs: number;
  /** Median and 90th percentile of every decode step of every run (per sequence: one token each). */
  readonly decodeMedianMs: number;
  readonly decodeP90Ms: number;
  readonly decodeMeanMs: number;
  readonly decodeSteps: number;
  /** Median over the runs of generate() to the last token. */
  readonly totalMs: number;
}

export function cellTiming(runs: readonly RunTiming[]): CellTiming {
  const steps = runs.flatMap((r) => r.decodeStepsMs);
  return {
    prefillMs: median(runs.map((r) => r.prefillMs)),
    decodeMedianMs: median(steps),
    decodeP90Ms: quantile(steps, 0.9),
    decodeMeanMs: mean(steps),
    decodeSteps: steps.length,
    totalMs: median(runs.map((r) => r.totalMs)),
  };
}

/** Tokens per second when `tokens` are made in `ms` milliseconds. */
export function perSecond(tokens: number, ms: number): number {
  return (tokens * 1000) / ms;
}

// ───────────────────────────── what each rank holds and reads ─────────────────────────────

/** The parts of a tensor's plan (`TPPlan.tensors[i]`) the formulas read. */
export interface TensorLike {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: string;
  readonly storage?: StorageDtype | undefined;
  readonly read: boolean;
  readonly ranks: ReadonlyArray<{ readonly shape: readonly number[]; readonly bytes: number }>;
}

/** The parts of a plan (`TPPlan`) the formulas read. */
export interface PlanLike {
  readonly tpSize: number;
  readonly tensors: readonly TensorLike[];
  readonly lmHead: { readonly weight: string; readonly split: 'row' | 'vocab' | 'replicate'; readonly ranks: ReadonlyArray<{ readonly ranges: ReadonlyArray<readonly [number, number]> }> } | null;
  readonly ranks: ReadonlyArray<{ readonly paramBytes: number; readonly kvCacheBytesPerToken: number }>;
  readonly geometry: { readonly experts?: number | undefined; readonly expertsPerToken?: number | undefined };
  readonly storageDtypes: readonly StorageDtype[];
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const LOOKUP_ROLES = new Set(['embed', 'pos_embed', 'type_embed']);
const isExpert = (role: string) => role.startsWith('moe.expert.');

/** Bytes per parameter of a storage dtype: f32 = 4, f16 = 2, bf16 = 2. */
export function bytesPerParameter(dtype: StorageDtype): number {
  return storageBytes(dtype);
}

/** Device bytes of one rank's slice of a tensor: elements × its storage dtype's width (as stored when it has none). */
export function sliceBytes(t: TensorLike, rank: number): number {
  const slice = t.ranks[rank]!;
  return t.storage === undefined ? slice.bytes : product(slice.shape) * bytesPerParameter(t.storage);
}

/** Weight memory of a rank: every tensor it holds, in its storage dtype. Equals `plan.ranks[rank].paramBytes`. */
export function rankWeightBytes(plan: PlanLike, rank: number): number {
  let bytes = 0;
  for (const t of plan.tensors) if (t.read) bytes += sliceBytes(t, rank);
  return bytes;
}

/** The MoE numbers of a plan: routed experts E and experts per token k; undefined for a dense model. */
export function moeOf(plan: PlanLike): { experts: number; expertsPerToken: number } | undefined {
  const { experts, expertsPerToken } = plan.geometry;
  if (experts === undefined || expertsPerToken === undefined || experts <= 0 || !plan.tensors.some((t) => isExpert(t.role))) return undefined;
  return { experts, expertsPerToken: Math.min(expertsPerToken, experts) };
}

/**
 * The share of the routed experts' weights a decode step of `batch` sequences reads: each token uses
 * k of the E experts, so one token touches k/E of them; a batch of B tokens touches
 * 1 − (1 − k/E)^B of them in expectation when routing is uniform (exact for B = 1).
 */
export function expertShareRead(moe: { experts: number; expertsPerToken: number }, batch: number): number {
  return 1 - (1 - moe.expertsPerToken / moe.experts) ** batch;
}

/** Bytes per element of a tensor on the device: its storage dtype's, or as stored (non-float tensors). */
function elementBytes(t: TensorLike): number {
  if (t.storage !== undefined) return bytesPerParameter(t.storage);
  const slice = t.ranks[0];
  const n = slice === undefined ? 0 : product(slice.shape);
  return n === 0 ? 0 : slice!.bytes / n;
}

/** Elements of the LM head that `rank` multiplies by (its split is the LM head plan's, also when it is the tied embedding). */
function lmHeadElements(plan: PlanLike, t: TensorLike, rank: number | undefined): number {
  const head = plan.lmHead!;
  if (rank === undefined || head.split === 'replicate') return product(t.shape);
  const width = head.ranks[rank]!.ranges.reduce((n, [a, b]) => n + (b - a), 0);
  const [rows = 1, cols = 1] = t.shape;
  // row: split by hidden (dim 1); vocab: split by vocabulary rows (dim 0).
  return head.split === 'row' ? rows * width : width * cols;
}

export interface Workload {
  /**
   * Parameters multiplied per generated token: every matrix (2-D or larger weight) a token goes
   * through, the LM head included (also when it is the tied embedding); embedding tables are looked up,
   * not multiplied, and vectors (norms, biases) are not counted; MoE experts count k/E of their
   * parameters (the active ones).
   */
  readonly parametersPerToken: number;
  /**
   * Weight bytes read by one decode step of `batch` sequences: every weight the step uses, in its
   * storage dtype (vectors included; embedding tables not: a lookup reads `batch` rows); MoE experts
   * the share `expertShareRead` touches.
   */
  readonly weightBytesPerStep: number;
}

/**
 * What one rank (or, with `rank` undefined, the unsharded model) multiplies and reads per decode step
 * — or per forward of an encoder, which goes through every weight once. `uses` leaves out the
 * tensors a step does not go through (an encoder–decoder's decode step: the encoder's).
 */
export function workload(plan: PlanLike, rank: number | undefined, batch: number, uses: (name: string) => boolean = () => true): Workload {
  const moe = moeOf(plan);
  let parametersPerToken = 0;
  let weightBytesPerStep = 0;
  for (const t of plan.tensors) {
    if (!t.read || !uses(t.name)) continue;
    const isHead = plan.lmHead !== null && plan.lmHead.weight === t.name;
    if (LOOKUP_ROLES.has(t.role) && !isHead) continue;
    const elements = isHead ? lmHeadElements(plan, t, rank) : rank === undefined ? product(t.shape) : product(t.ranks[rank]!.shape);
    const bytes = elements * elementBytes(t);
    const expert = moe !== undefined && isExpert(t.role);
    const used = expert ? moe.expertsPerToken / moe.experts : 1;
    const readShare = expert ? expertShareRead(moe, batch) : 1;
    if (t.shape.length >= 2) parametersPerToken += elements * used;
    weightBytesPerStep += bytes * readShare;
  }
  return { parametersPerToken, weightBytesPerStep };
}

/**
 * Mean number of keys a decode step attends to: decode step i (1 ≤ i < new) feeds the token chosen at
 * step i − 1 and attends to prompt + i positions, so over the steps the mean is prompt + new/2.
 */
export function meanDecodeContext(promptTokens: number, newTokens: number): number {
  return promptTokens + newTokens / 2;
}

/**
 * An encoder–decoder's decode step: the decoder starts from one start token, so step i (1 ≤ i < new)
 * attends to i + 1 decoder positions — a mean of 1 + new/2 — in its self-attention cache, and to the
 * whole source (the prompt) in its cross-attention cache.
 */
export function seq2seqDecodeContext(newTokens: number): number {
  return 1 + newTokens / 2;
}

/**
 * KV bytes one decode step reads per sequence: the self-attention cache over its mean context, plus
 * (encoder–decoders) the cross-attention cache over the source.
 */
export function kvBytesReadPerSequence(selfBytesPerToken: number, context: number, crossBytesPerSourceToken = 0, sourceTokens = 0): number {
  return selfBytesPerToken * context + crossBytesPerSourceToken * sourceTokens;
}

/** KV-cache bytes of `batch` sequences of `tokens` positions on a rank holding `bytesPerToken` per position. */
export function kvCacheBytes(bytesPerToken: number, tokens: number, batch: number): number {
  return bytesPerToken * tokens * batch;
}

/** Effective bandwidth: bytes read per step ÷ step time, in GB/s (1e9 bytes/s). */
export function bandwidthGBps(bytesPerStep: number, stepMs: number): number {
  return bytesPerStep / (stepMs / 1000) / 1e9;
}

/** Achieved FLOP/s: 2 × parameters per token × tokens ÷ time (a multiply and an add per parameter). */
export function flopPerSecond(parametersPerToken: number, tokens: number, ms: number): number {
  return (2 * parametersPerToken * tokens) / (ms / 1000);
}

// ───────────────────────────── memory and the largest batch ─────────────────────────────

/**
 * Workspace (device bytes beyond weights and KV cache) as a function of the batch, from measured
 * points: between measured batches, interpolated; below the smallest, that batch's value; beyond the
 * largest B*, scaled in proportion, W(B) = W(B*) · B / B* — an upper bound whenever the true
 * workspace is a fixed part plus a part per sequence (both ≥ 0), since then W(B) ≤ W(B*) · B / B* for B ≥ B*.
 */
export function workspaceModel(points: ReadonlyArray<{ batch: number; bytes: number }>): (batch: number) => number {
  const byBatch = new Map<number, number>();
  for (const p of points) byBatch.set(p.batch, Math.max(byBatch.get(p.batch) ?? 0, Math.max(0, p.bytes)));
  const sorted = [...byBatch.entries()].sort((a, b) => a[0] - b[0]);
  if (sorted.length === 0) return () => 0;
  return (batch) => {
    const first = sorted[0]!;
    const last = sorted.at(-1)!;
    if (batch <= first[0]) return first[1];
    if (batch >= last[0]) return (last[1] * batch) / last[0];
    const i = sorted.findIndex(([b]) => b >= batch);
    const [b1, w1] = sorted[i - 1]!;
    const [b2, w2] = sorted[i]!;
    return w1 + ((w2 - w1) * (batch - b1)) / (b2 - b1);
  };
}

export interface RankMemoryInputs {
  /** Weights the rank holds (`plan.ranks[r].paramBytes`). */
  readonly weightBytes: number;
  /** KV-cache bytes per position per sequence (`plan.ranks[r].kvCacheBytesPerToken`). */
  readonly kvBytesPerToken: number;
  /** Workspace at a batch (see `workspaceModel`). */
  readonly workspace: (batch: number) => number;
}

/** Device bytes a rank needs for `batch` sequences of `tokens` positions: weights + KV cache + workspace. */
export function rankBytesAt(m: RankMemoryInputs, tokens: number, batch: number): number {
  return m.weightBytes + kvCacheBytes(m.kvBytesPerToken, tokens, batch) + m.workspace(batch);
}

/**
 * The largest batch b ≥ 1 with needs(b) ≤ budget, for needs non-decreasing in b: doubling, then
 * bisection. 0 when batch 1 does not fit; `cap` when even that fits.
 */
export function largestBatch(needs: (batch: number) => number, budget: number, cap = 1 << 20): number {
  if (needs(1) > budget) return 0;
  let lo = 1;
  let hi = 2;
  while (hi <= cap && needs(hi) <= budget) {
    lo = hi;
    hi *= 2;
  }
  if (hi > cap) {
    if (needs(cap) <= budget) return cap;
    hi = cap;
  }
  // needs(lo) ≤ budget < needs(hi)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (needs(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** The largest batch every rank fits, and the rank that limits it. */
export function maxBatch(ranks: readonly RankMemoryInputs[], tokens: number, budget: number, cap = 1 << 20): { batch: number; limitingRank: number } {
  let batch = Number.POSITIVE_INFINITY;
  let limitingRank = 0;
  ranks.forEach((m, r) => {
    const b = largestBatch((n) => rankBytesAt(m, tokens, n), budget, cap);
    if (b < batch) {
      batch = b;
      limitingRank = r;
    }
  });
  return { batch: Number.isFinite(batch) ? batch : 0, limitingRank };
}

// ───────────────────────────── parsing ─────────────────────────────

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
};

/** "8GiB", "512 MiB", "1.5GB", "4294967296" → bytes (KiB/MiB/GiB and K/M/G: powers of 1024; KB/MB/GB: of 1000); undefined if not a size. */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (m === null) return undefined;
  const unit = m[2]!.toLowerCase() || 'b';
  const scale = BYTE_UNITS[unit];
  if (scale === undefined) return undefined;
  const bytes = Math.floor(Number(m[1]) * scale);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}
