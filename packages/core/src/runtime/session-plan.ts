/**
 * How a session (Node's InferenceSession, a page's WebModel) checks its options and plans a model for
 * its backend before any rank starts: the same plan in both, so a browser's ranks read the same bytes
 * as Node's. Browser-safe.
 */
import type { Backend, StorageDtype } from '../backend/index.js';
import { ArgumentError, TpError } from '../errors/index.js';
import type { ModelGraph } from '../graph/index.js';
import { planTensorParallel, type TPPlan } from '../plan/index.js';

/** The options that decide the plan. */
export interface ModelPlanOptions {
  /** Number of ranks (default 1). */
  tpSize?: number;
  /**
   * How weights are stored on the device: `auto` (default) keeps the checkpoint's own precision where
   * the backend supports it; `f32`, `f16`, `bf16` convert. Activations and accumulation are f32.
   */
  dtype?: 'auto' | StorageDtype;
  /** KV cache dtype (default f32). */
  kvDtype?: StorageDtype;
  /** A DeepSpeed injection policy or HF tp_plan overriding the automatic plan. */
  policy?: unknown;
  vocabParallel?: boolean;
  grain?: number;
  backendOptions?: Record<string, unknown>;
}

/** tpSize and dtype checked, and kvDtype against the backend when it is given; defaults applied. */
export function checkPlanOptions(options: ModelPlanOptions, backend?: Pick<Backend, 'name' | 'kvDtypes'>): { tpSize: number; dtype: 'auto' | StorageDtype; kvDtype: StorageDtype } {
  const tpSize = options.tpSize ?? 1;
  if (!Number.isInteger(tpSize) || tpSize < 1) throw new ArgumentError({ argument: 'tpSize', detail: `must be a positive integer, got ${tpSize}` });
  const dtype = options.dtype ?? 'auto';
  if (!['auto', 'f32', 'f16', 'bf16'].includes(dtype)) throw new ArgumentError({ argument: 'dtype', detail: `must be auto, f32, f16 or bf16, got ${String(dtype)}` });
  const kvDtype = options.kvDtype ?? 'f32';
  if (backend !== undefined && !backend.kvDtypes.includes(kvDtype)) {
    throw new ArgumentError({ argument: 'kvDtype', detail: `the ${backend.name} backend keeps its KV cache in ${backend.kvDtypes.join(' or ')}, not ${String(kvDtype)}` });
  }
  return { tpSize, dtype, kvDtype };
}

/** The plan a session runs: f32 compute, storage and KV cache as the backend supports them. */
export function planModel(graph: ModelGraph, backend: Backend, options: ModelPlanOptions): TPPlan {
  const { tpSize, dtype, kvDtype } = checkPlanOptions(options, backend);
  return planTensorParallel(graph, {
    tpSize,
    vocabParallel: options.vocabParallel ?? false,
    computeDtype: 'F32',
    storageDtype: dtype,
    kvDtype,
    supportedStorage: backend.storageDtypes,
    ...(backend.autoStorage ? { autoStorage: backend.autoStorage } : {}),
    supportedKv: backend.kvDtypes,
    ...(options.policy !== undefined ? { policy: options.policy } : {}),
    ...(options.grain !== undefined ? { grain: options.grain } : {}),
  });
}

/** Refuse, before any rank loads, a plan whose share of the weights does not fit a rank. */
export async function checkRankMemory(backend: Backend, plan: TPPlan, options: Record<string, unknown>): Promise<void> {
  const limit = await backend.rankMemoryLimit(options);
  if (limit === undefined) return;
  const worst = [...plan.ranks].sort((a, b) => b.paramBytes - a.paramBytes)[0]!;
  if (worst.paramBytes > limit) {
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    throw new TpError(
      'out-of-memory',
      `rank ${worst.rank} would hold ${gib(worst.paramBytes)} of weights (${plan.options.storageDtype ?? 'f32'}), but a ${backend.name} rank holds at most ${gib(limit)}; use more ranks (a larger --tp) or half-precision storage (--dtype bf16)`,
    );
  }
}
