/** `tp bench`'s formulas on real plans of tiny checkpoints: memory per rank, parameters per token, MoE. */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { analyzeModel, openCheckpoint, planTensorParallel, type TPPlan } from '@tp/core';
import { writeTinyModel } from '@tp/tiny-models';
import { beforeAll, describe, expect, it } from 'vitest';
import { moeOf, rankWeightBytes, workload } from '../src/bench/metrics.js';

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

async function planOf(options: Parameters<typeof writeTinyModel>[1], tpSize: number, storageDtype: 'auto' | 'f32' | 'bf16' = 'auto'): Promise<TPPlan> {
  const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-bench-plan-')), options.family);
  await writeTinyModel(dir, options);
  const ckpt = await openCheckpoint(dir);
  try {
    return planTensorParallel(analyzeModel(ckpt), { tpSize, storageDtype });
  } finally {
    ckpt.close();
  }
}

const LLAMA = { family: 'llama', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 320, maxPositions: 128, seed: 3 } as const;
const MIXTRAL = { family: 'mixtral', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 320, maxPositions: 128, seed: 3, experts: 4, expertsPerToken: 2 } as const;

describe('memory per rank from the plan', () => {
  let f32: TPPlan;
  let bf16: TPPlan;
  beforeAll(async () => {
    f32 = await planOf(LLAMA, 2, 'f32');
    bf16 = await planOf(LLAMA, 2, 'bf16');
  });

  const WIDTH = { f32: 4, f16: 2, bf16: 2 } as const;
  /** Bytes of a rank's slices of the tensors `keep` selects, each in its own storage dtype. */
  const held = (plan: TPPlan, r: number, keep: (t: TPPlan['tensors'][number]) => boolean) =>
    plan.tensors.filter((t) => t.read && keep(t)).reduce((n, t) => n + product(t.ranks[r]!.shape) * WIDTH[t.storage!], 0);

  it('weights per rank = the sum of the tensors the rank holds, = plan.ranks[r].paramBytes', () => {
    for (const plan of [f32, bf16]) {
      for (let r = 0; r < 2; r++) {
        expect(rankWeightBytes(plan, r)).toBe(held(plan, r, () => true));
        expect(rankWeightBytes(plan, r)).toBe(plan.ranks[r]!.paramBytes);
      }
    }
  });

  it('bf16 matrices are exactly half of f32 (2 bytes per parameter); the parameters per token do not change', () => {
    const matrix = (t: TPPlan['tensors'][number]) => t.shape.length >= 2;
    for (let r = 0; r < 2; r++) {
      expect(bf16.tensors.filter((t) => t.read && matrix(t)).every((t) => t.storage === 'bf16')).toBe(true);
      expect(held(bf16, r, matrix) * 2).toBe(held(f32, r, matrix));
      // Per step: the same weights, the matrices at half the bytes (vectors as the plan stores them).
      const vectors = (plan: TPPlan) => held(plan, r, (t) => !matrix(t) && t.role !== 'embed');
      expect((workload(bf16, r, 1).weightBytesPerStep - vectors(bf16)) * 2).toBe(workload(f32, r, 1).weightBytesPerStep - vectors(f32));
      expect(workload(bf16, r, 1).parametersPerToken).toBe(workload(f32, r, 1).parametersPerToken);
    }
  });

  it('dense llama: parameters per token = every matrix but the embedding; split matrices add up over the ranks', () => {
    const matrices = f32.tensors.filter((t) => t.read && t.shape.length >= 2 && t.role !== 'embed');
    const model = matrices.reduce((n, t) => n + product(t.shape), 0);
    expect(workload(f32, undefined, 1).parametersPerToken).toBe(model);
    // Nothing 2-D but the embedding is replicated in this plan, so the ranks' shares add up to the model's.
    expect(matrices.every((t) => t.split !== 'replicate')).toBe(true);
    expect(workload(f32, 0, 1).parametersPerToken + workload(f32, 1, 1).parametersPerToken).toBe(model);
  });
});

describe('MoE (mixtral, 4 experts, 2 per token)', () => {
  let plan: TPPlan;
  beforeAll(async () => {
    plan = await planOf(MIXTRAL, 2, 'f32');
  });

  it('active parameters: the experts count k/E = 1/2, everything else in full', () => {
    expect(moeOf(plan)).toEqual({ experts: 4, expertsPerToken: 2 });
    const matrices = plan.tensors.filter((t) => t.read && t.shape.length >= 2 && t.role !== 'embed');
    const experts = matrices.filter((t) => t.role.startsWith('moe.expert.')).reduce((n, t) => n + product(t.shape), 0);
    const dense = matrices.filter((t) => !t.role.startsWith('moe.expert.')).reduce((n, t) => n + product(t.shape), 0);
    expect(experts).toBeGreaterThan(0);
    expect(workload(plan, undefined, 1).parametersPerToken).toBe(dense + experts / 2);
    // Each rank holds a slice of every expert (no expert parallelism): the same share of its slices.
    const rankExperts = plan.tensors.filter((t) => t.read && t.role.startsWith('moe.expert.')).reduce((n, t) => n + product(t.ranks[0]!.shape), 0);
    const rankDense = plan.tensors.filter((t) => t.read && t.shape.length >= 2 && t.role !== 'embed' && !t.role.startsWith('moe.expert.')).reduce((n, t) => n + product(t.ranks[0]!.shape), 0);
    expect(workload(plan, 0, 1).parametersPerToken).toBe(rankDense + rankExperts / 2);
  });

  it('weights read per step grow with the batch as more experts are touched, up to all of them', () => {
    const one = workload(plan, 0, 1).weightBytesPerStep;
    const two = workload(plan, 0, 2).weightBytesPerStep;
    const many = workload(plan, 0, 64).weightBytesPerStep;
    expect(two).toBeGreaterThan(one);
    expect(many).toBeGreaterThan(two);
    // All experts (share → 1) plus every non-lookup weight: at most what the rank holds minus the embedding.
    const embed = plan.tensors.filter((t) => t.read && t.role === 'embed').reduce((n, t) => n + product(t.ranks[0]!.shape) * 4, 0);
    expect(many).toBeLessThanOrEqual(rankWeightBytes(plan, 0) - embed + 1e-6);
    expect(many).toBeGreaterThan((rankWeightBytes(plan, 0) - embed) * 0.999);
  });
});
