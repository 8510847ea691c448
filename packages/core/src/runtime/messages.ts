/** Messages between the coordinator (main thread) and the rank workers. */
import type { HostCollectiveInit } from '../backend/index.js';
import type { TPPlan } from '../plan/index.js';
import type { StepInput } from './decoder.js';

export interface WorkerData {
  dir: string;
  plan: TPPlan;
  rank: number;
  world: number;
  backendUrl: string;
  backendOptions: Record<string, unknown>;
  collective: HostCollectiveInit;
  /** Test hook: throw in this rank after this many forward passes. */
  fault?: { rank: number; afterForwards: number };
}

export type ToWorker =
  | { type: 'reset'; id: number; batch: number; capacity: number }
  | { type: 'forward'; id: number; step: StepInput }
  | { type: 'stats'; id: number };

export type FromWorker =
  | { type: 'progress'; rank: number; bytesRead: number; bytesTotal: number }
  | { type: 'ready'; rank: number; bytesRead: number; loadMs: number }
  | { type: 'done'; id: number; rank: number; logits?: Float32Array; stats?: WorkerStats }
  | { type: 'error'; id: number | null; rank: number; message: string; code?: string; stack?: string; failedRank?: number; op?: string };

export interface WorkerStats {
  /** Resident memory of the whole process (ranks are threads of one process). */
  rssBytes: number;
  peakRssBytes: number;
  /** Memory this rank's device holds (weights, KV cache, working buffers). */
  deviceBytes: number;
}
