/**
 * What the conformance suite's collective workers compute and how they report it. The inputs are small
 * integers, so every sum is exact in f32 whatever the reduction order: results are compared exactly.
 */
import type { CommunicatorInit } from '../backend/index.js';

export type CollectiveScenario = 'collectives' | 'fail' | 'stuck';

export interface CollectiveWorkerData {
  /** The backend module (`backend.moduleUrl`). */
  moduleUrl: string;
  communicator: CommunicatorInit;
  rank: number;
  world: number;
  scenario: CollectiveScenario;
  /** The rank that fails (`fail`) or never arrives (`stuck`). */
  culprit: number;
  /** Int32 counters: the barrier check (collectives); in `fail`, counters[0] counts the other ranks created. */
  counters?: SharedArrayBuffer;
}

export interface CollectiveResult {
  shape: number[];
  dtype: string;
  values: number[];
}

export type CollectiveWorkerMessage =
  | { type: 'ready'; rank: number }
  | { type: 'result'; rank: number; results: Record<string, CollectiveResult> }
  | { type: 'aborted'; rank: number }
  | { type: 'error'; rank: number; name: string; message: string; code?: string; failedRank?: number; stage: string };

/** A length above the CPU backend's 65536-float collective slot, so the large all-reduce goes in chunks. */
export const LARGE_REDUCE = 100_003;

/** Shape and values each rank contributes to the all-reduce `name`. */
export function allReduceInput(name: string, rank: number): { shape: number[]; values: Float32Array } {
  switch (name) {
    case 'allReduce [3, 5]':
      return { shape: [3, 5], values: Float32Array.from({ length: 15 }, (_, i) => (rank + 1) * (i % 7) - (i % 3)) };
    case 'allReduce [37]':
      return { shape: [37], values: Float32Array.from({ length: 37 }, (_, i) => ((i * 13 + rank * 7) % 17) - 8) };
    default:
      return { shape: [LARGE_REDUCE], values: Float32Array.from({ length: LARGE_REDUCE }, (_, i) => ((i + 3 * rank) % 9) - 4) };
  }
}

export const ALL_REDUCES = ['allReduce [3, 5]', 'allReduce [37]', `allReduce [${LARGE_REDUCE}]`] as const;

/** Rank r gathers a 1-D [5 + 2r] tensor and a 2-D [2, 1 + r] one (widths differ per rank). */
export function allGatherInput(twoD: boolean, rank: number): { shape: number[]; values: Float32Array } {
  if (!twoD) return { shape: [5 + 2 * rank], values: Float32Array.from({ length: 5 + 2 * rank }, (_, i) => rank * 100 + i) };
  const w = 1 + rank;
  return { shape: [2, w], values: Float32Array.from({ length: 2 * w }, (_, i) => rank * 100 + Math.floor(i / w) * 10 + (i % w)) };
}

/** Rank r's tensor before a broadcast from `root`: the root's data, or something else. */
export function broadcastInput(root: number, rank: number): { shape: number[]; values: Float32Array } {
  return { shape: [29], values: Float32Array.from({ length: 29 }, (_, i) => (rank === root ? root * 1000 + i : -(i + 1) - rank * 50)) };
}
