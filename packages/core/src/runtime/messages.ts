/** Messages between the coordinator (main thread) and the rank workers. */
import type { CommunicatorInit, StorageDtype } from '../backend/index.js';
import type { TPPlan } from '../plan/index.js';
import type { StepInput, StepResult } from './engine.js';

export interface WorkerData {
  dir: string;
  plan: TPPlan;
  rank: number;
  world: number;
  backendUrl: string;
  backendOptions: Record<string, unknown>;
  communicator: CommunicatorInit;
  kvDtype: StorageDtype;
  /** Test hook: throw in this rank after this many forward passes. */
  fault?: { rank: number; afterForwards: number };
}

export type ToWorker =
  | { type: 'reset'; id: number; batch: number }
  | { type: 'forward'; id: number; step: StepInput }
  | { type: 'stats'; id: number }
  | { type: 'dispose'; id: number };

/** An error as it crosses the worker boundary: the code and the fields a caller acts on survive. */
export interface WorkerError {
  message: string;
  name?: string;
  code?: string;
  /** Own enumerable fields of a TpError (file, tensor, argument, rank, op, …). */
  fields?: Record<string, unknown>;
  stack?: string;
}

export type FromWorker =
  | { type: 'progress'; rank: number; bytesRead: number; bytesTotal: number }
  | { type: 'ready'; rank: number; bytesRead: number; loadMs: number }
  | { type: 'done'; id: number; rank: number; result?: StepResult; stats?: WorkerStats }
  | { type: 'error'; id: number | null; rank: number; error: WorkerError };

export interface WorkerStats {
  /** Resident memory of the whole process (ranks are threads of one process). */
  rssBytes: number;
  peakRssBytes: number;
  /** Memory this rank's device holds (weights, KV cache, working buffers). */
  deviceBytes: number;
  /** Timeline slots (KV cache positions per sequence) the rank holds now. */
  cachedSlots: number;
}
