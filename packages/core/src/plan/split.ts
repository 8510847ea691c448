/**
 * The split arithmetic, in one place. Nothing else in tp computes which rank owns what: the plan
 * carries explicit ranges and every other module reads them.
 */
import { PlanError } from '../errors/index.js';

export type Range = [start: number, end: number];

/** n items over k ranks, lower ranks taking the extra ones: 10 over 4 → 3, 3, 2, 2. */
export function nearEven(n: number, k: number): number[] {
  const base = Math.floor(n / k);
  const extra = n % k;
  return Array.from({ length: k }, (_, r) => base + (r < extra ? 1 : 0));
}

/** Consecutive [start, end) ranges from counts, scaled by `unit`. */
export function countsToRanges(counts: readonly number[], unit = 1): Range[] {
  let at = 0;
  return counts.map((c) => {
    const range: Range = [at * unit, (at + c) * unit];
    at += c;
    return range;
  });
}

/**
 * Split a width (MLP features, vocabulary rows, hidden columns) over `tp` ranks in whole grains.
 * The grain (64 by default, the size GEMM libraries like) shrinks by halves until it divides the
 * width and leaves every rank at least one grain, so no rank is ever empty and no shard is ragged.
 */
export function splitWidth(width: number, tp: number, grain: number, what: string): Range[] {
  if (width < tp) {
    throw new PlanError('indivisible', { weight: what, detail: `a width of ${width} cannot be split over ${tp} ranks without leaving a rank empty` });
  }
  let g = Math.max(1, 2 ** Math.floor(Math.log2(Math.max(1, grain))));
  while (g > 1 && (width % g !== 0 || width / g < tp)) g /= 2;
  return countsToRanges(nearEven(width / g, tp), g);
}

export interface HeadShare {
  /** Query heads [start, end) of this rank. */
  q: Range;
  /** Key/value heads [start, end) of this rank. */
  kv: Range;
}

export interface HeadAssignment {
  heads: number;
  kvHeads: number;
  /** True when tp exceeds the kv heads and ranks share (replicate) kv heads. */
  kvReplicated: boolean;
  ranks: HeadShare[];
}

/** Why `heads`/`kvHeads` cannot be split over `tp` ranks, or undefined when they can. */
export function headSplitProblem(heads: number, kvHeads: number, tp: number): string | undefined {
  if (tp > heads) return `${heads} attention heads cannot be shared by ${tp} ranks: a rank would have none`;
  if (tp > kvHeads) {
    const group = heads / kvHeads;
    const ranksPerGroup = Math.ceil(tp / kvHeads);
    if (ranksPerGroup > group) {
      return `with ${kvHeads} key/value heads each serving ${group} query heads, ${tp} ranks would put ${ranksPerGroup} ranks on one group`;
    }
  }
  return undefined;
}

/**
 * Whole heads per rank. With tp ≤ kv heads, each rank takes whole kv groups (near-even, lower ranks
 * first) with their query heads. With tp > kv heads, the kv heads are replicated: the ranks are shared
 * out over the kv groups and each rank takes some query heads of exactly one group.
 */
export function assignHeads(heads: number, kvHeads: number, tp: number, what: string, validTp: () => number[]): HeadAssignment {
  const problem = headSplitProblem(heads, kvHeads, tp);
  if (problem !== undefined) throw new PlanError('indivisible', { weight: what, detail: problem + '.', validTp: validTp() });
  const group = heads / kvHeads;
  if (tp <= kvHeads) {
    const kv = countsToRanges(nearEven(kvHeads, tp));
    return { heads, kvHeads, kvReplicated: false, ranks: kv.map(([s, e]) => ({ kv: [s, e], q: [s * group, e * group] })) };
  }
  const ranksPerGroup = nearEven(tp, kvHeads);
  const ranks: HeadShare[] = [];
  ranksPerGroup.forEach((n, g) => {
    for (const [s, e] of countsToRanges(nearEven(group, n))) ranks.push({ kv: [g, g + 1], q: [g * group + s, g * group + e] });
  });
  return { heads, kvHeads, kvReplicated: true, ranks };
}

/** Scale head ranges to feature ranges of `width` features per head. */
export function headsToFeatures(r: Range, width: number): Range {
  return [r[0] * width, r[1] * width];
}

export function offsetRange(r: Range, by: number): Range {
  return [r[0] + by, r[1] + by];
}

/** Join touching ranges: [[0,8],[8,16]] → [[0,16]]. */
export function mergeRanges(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const [s, e] of ranges) {
    if (e <= s) continue;
    const last = out[out.length - 1];
    if (last !== undefined && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out;
}

export function rangeLength(ranges: readonly Range[]): number {
  return ranges.reduce((n, [s, e]) => n + (e - s), 0);
}
