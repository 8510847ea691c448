/** `tp bench`'s formulas on synthetic timings and synthetic plans: every expected number worked out by hand. */
import { describe, expect, it } from 'vitest';
import {
  bandwidthGBps,
  bytesPerParameter,
  cellTiming,
  expertShareRead,
  flopPerSecond,
  kvBytesReadPerSequence,
  kvCacheBytes,
  largestBatch,
  maxBatch,
  meanDecodeContext,
  median,
  moeOf,
  parseByteSize,
  quantile,
  rankBytesAt,
  rankWeightBytes,
  runTiming,
  seq2seqDecodeContext,
  workload,
  workspaceModel,
  type PlanLike,
  type TensorLike,
} from '../src/bench/metrics.js';
import { parseBatches, prompts } from '../src/commands/bench.js';

describe('timings', () => {
  it('per-token latency is the decode steps only: the prefill (time to the first token) is not in it', () => {
    // generate() at 100 ms; the first token at 150 (prefill 50 ms), then steps of 10, 15 and 10 ms.
    const t = runTiming({ startMs: 100, stepMs: [150, 160, 175, 185] });
    expect(t.prefillMs).toBe(50);
    expect(t.decodeStepsMs).toEqual([10, 15, 10]);
    expect(t.decodeMeanMs).toBeCloseTo(35 / 3, 12);
    expect(t.totalMs).toBe(85);
    // DeepSpeed's inference-test.py divides the whole generation by the new tokens: 85 / 4 = 21.25 ms,
    // twice the real per-token time here, because the 50 ms prefill is in it.
    expect(t.totalMs / 4).toBe(21.25);
    expect(() => runTiming({ startMs: 0, stepMs: [5] })).toThrow(/two steps/);
  });

  it('median and p90 pool every decode step of every run', () => {
    const a = runTiming({ startMs: 0, stepMs: [40, 50, 60, 70] }); // steps 10, 10, 10; prefill 40
    const b = runTiming({ startMs: 0, stepMs: [60, 70, 80, 130] }); // steps 10, 10, 50; prefill 60
    const c = cellTiming([a, b]);
    expect(c.decodeSteps).toBe(6);
    expect(c.decodeMedianMs).toBe(10);
    // Sorted steps [10, 10, 10, 10, 10, 50]: p90 at index 0.9 × 5 = 4.5 → 10 + 0.5 × 40 = 30.
    expect(c.decodeP90Ms).toBe(30);
    expect(c.decodeMeanMs).toBeCloseTo(100 / 6, 12);
    expect(c.prefillMs).toBe(50);
    expect(c.totalMs).toBe(100); // median of 70 and 130
  });

  it('quantile interpolates between sorted values', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(quantile([0, 10], 0.9)).toBe(9);
    expect(quantile([7], 0.9)).toBe(7);
    expect(Number.isNaN(quantile([], 0.5))).toBe(true);
  });
});

describe('bandwidth and FLOP/s', () => {
  it('effective bandwidth = bytes read per step ÷ step time, in 1e9 bytes/s', () => {
    expect(bandwidthGBps(2e9, 1000)).toBe(2);
    expect(bandwidthGBps(536e6, 14)).toBeCloseTo(38.2857, 4);
  });

  it('FLOP/s = 2 × parameters per token × tokens ÷ time, whatever the bytes per parameter', () => {
    expect(flopPerSecond(134e6, 4, 20)).toBe(5.36e10);
    expect(flopPerSecond(1e9, 1, 1000)).toBe(2e9);
  });

  it('bf16 and f16 are 2 bytes per parameter, f32 is 4 (DeepSpeed counts bf16 as 1)', () => {
    expect(bytesPerParameter('bf16')).toBe(2);
    expect(bytesPerParameter('f16')).toBe(2);
    expect(bytesPerParameter('f32')).toBe(4);
  });

  it('the mean context of a decode step is prompt + new/2', () => {
    // Decode step i (1 ≤ i < new) attends to prompt + i keys.
    const prompt = 16;
    const fresh = 64;
    const keys = Array.from({ length: fresh - 1 }, (_, k) => prompt + k + 1);
    expect(meanDecodeContext(prompt, fresh)).toBe(keys.reduce((a, b) => a + b, 0) / keys.length);
    expect(meanDecodeContext(prompt, fresh)).toBe(48);
    expect(kvCacheBytes(256, 80, 4)).toBe(81920);
  });
});

/** A synthetic one-layer MoE: hidden 8, vocab 100, 4 experts of width 16, k = 1. */
function moePlan(storage: 'f32' | 'bf16', tp = 1): PlanLike {
  const t = (name: string, role: string, shape: number[], rankShape = shape): TensorLike => ({
    name,
    role,
    shape,
    storage,
    read: true,
    ranks: Array.from({ length: tp }, () => ({ shape: rankShape, bytes: rankShape.reduce((a, b) => a * b, 1) * 4 })),
  });
  const tensors: TensorLike[] = [
    t('embed', 'embed', [100, 8]),
    t('router', 'moe.router', [4, 8]),
    ...[0, 1, 2, 3].flatMap((e) => [t(`e${e}.gate`, 'moe.expert.gate', [16, 8]), t(`e${e}.down`, 'moe.expert.down', [8, 16])]),
    t('norm', 'norm', [8]),
    t('lm_head', 'lm_head', [100, 8]),
    { name: 'inv_freq', role: 'buffer', shape: [4], storage, read: false, ranks: Array.from({ length: tp }, () => ({ shape: [4], bytes: 0 })) },
  ];
  return { tpSize: tp, tensors, lmHead: { weight: 'lm_head', split: 'replicate', ranks: Array.from({ length: tp }, () => ({ ranges: [[0, 8]] as [number, number][] })) }, ranks: [], geometry: { experts: 4, expertsPerToken: 1 }, storageDtypes: [storage] };
}

describe('what a rank multiplies and reads per token', () => {
  it('MoE: the active parameters are the router, k/E of the experts and the LM head (no embedding lookup, no vectors)', () => {
    const plan = moePlan('f32');
    expect(moeOf(plan)).toEqual({ experts: 4, expertsPerToken: 1 });
    // router 32 + experts (4 × 128 + 4 × 128) × 1/4 = 256 + LM head 800.
    expect(workload(plan, undefined, 1).parametersPerToken).toBe(1088);
    expect(workload(plan, 0, 1).parametersPerToken).toBe(1088);
    // More sequences use more experts per step, but each token still uses k of them.
    expect(workload(plan, 0, 7).parametersPerToken).toBe(1088);
  });

  it('MoE: a step of B tokens reads 1 − (1 − k/E)^B of the experts; weight bytes are in the storage dtype', () => {
    const f32 = moePlan('f32');
    expect(expertShareRead({ experts: 4, expertsPerToken: 1 }, 1)).toBe(0.25);
    expect(expertShareRead({ experts: 4, expertsPerToken: 1 }, 2)).toBe(7 / 16);
    // router 128 + experts 4096 × 1/4 + norm 32 + LM head 3200 (f32 bytes).
    expect(workload(f32, 0, 1).weightBytesPerStep).toBe(4384);
    // router 128 + experts 4096 × 7/16 = 1792 + norm 32 + LM head 3200.
    expect(workload(f32, 0, 2).weightBytesPerStep).toBe(5152);
    // bf16: 2 bytes per parameter — half of f32, the same parameters.
    const bf16 = moePlan('bf16');
    expect(workload(bf16, 0, 1).weightBytesPerStep).toBe(2192);
    expect(workload(bf16, 0, 1).parametersPerToken).toBe(1088);
  });

  it('a dense model (no expert tensors) uses every parameter', () => {
    const plan = { ...moePlan('f32'), geometry: {} };
    expect(moeOf(plan)).toBeUndefined();
    expect(workload(plan, 0, 1).parametersPerToken).toBe(32 + 1024 + 800);
  });

  it('a tied LM head counts the embedding as the LM head, with the LM head plan split', () => {
    const base = moePlan('f32', 2);
    const plan: PlanLike = {
      ...base,
      tensors: base.tensors.filter((t) => t.name !== 'lm_head'),
      lmHead: { weight: 'embed', split: 'row', ranks: [{ ranges: [[0, 3]] }, { ranges: [[3, 8]] }] },
    };
    // rank 0 multiplies 100 × 3 of the embedding, rank 1 100 × 5; the model all 800.
    expect(workload(plan, 0, 1).parametersPerToken).toBe(32 + 256 + 300);
    expect(workload(plan, 1, 1).parametersPerToken).toBe(32 + 256 + 500);
    expect(workload(plan, undefined, 1).parametersPerToken).toBe(32 + 256 + 800);
    expect(workload(plan, 1, 1).weightBytesPerStep).toBe(128 + 1024 + 32 + 2000);
  });

  it('weight memory is every tensor the rank holds (embedding included, unread buffers not)', () => {
    // embed 800 + router 32 + experts 1024 + norm 8 + LM head 800 = 2664 parameters.
    expect(rankWeightBytes(moePlan('f32'), 0)).toBe(2664 * 4);
    expect(rankWeightBytes(moePlan('bf16'), 0)).toBe(2664 * 2);
  });
});

describe('memory budget and the largest batch', () => {
  it('workspace: interpolated between measured batches, the smallest batch below, proportional beyond the largest', () => {
    const w = workspaceModel([
      { batch: 4, bytes: 400 },
      { batch: 1, bytes: 100 },
      { batch: 16, bytes: 800 },
    ]);
    expect(w(1)).toBe(100);
    expect(w(2)).toBe(200);
    expect(w(10)).toBe(600);
    expect(w(16)).toBe(800);
    expect(w(32)).toBe(1600);
    expect(workspaceModel([{ batch: 2, bytes: -5 }])(2)).toBe(0);
    expect(workspaceModel([])(9)).toBe(0);
  });

  it('max batch: weights + KV cache × tokens × batch + workspace ≤ budget, by hand', () => {
    // weights 1000, KV 10 bytes per position, 20 positions, workspace 100 at batch 2 → 50 per sequence beyond.
    const rank0 = { weightBytes: 1000, kvBytesPerToken: 10, workspace: workspaceModel([{ batch: 2, bytes: 100 }]) };
    // needs(B) = 1000 + 200·B + 50·B (B ≥ 2) = 1000 + 250·B ≤ 5000 ⇔ B ≤ 16.
    expect(rankBytesAt(rank0, 20, 16)).toBe(5000);
    expect(rankBytesAt(rank0, 20, 17)).toBe(5250);
    expect(largestBatch((b) => rankBytesAt(rank0, 20, b), 5000)).toBe(16);
    expect(largestBatch((b) => rankBytesAt(rank0, 20, b), 4999)).toBe(15);
    // A second rank holding 2000 bytes of weights: 2000 + 250·B ≤ 5000 ⇔ B ≤ 12; it limits the batch.
    const rank1 = { ...rank0, weightBytes: 2000 };
    expect(maxBatch([rank0, rank1], 20, 5000)).toEqual({ batch: 12, limitingRank: 1 });
    // Batch 1 needs 1000 + 200 + 100 (the workspace below the smallest measured batch is that batch's).
    expect(maxBatch([rank0], 20, 1299)).toEqual({ batch: 0, limitingRank: 0 });
    expect(maxBatch([rank0], 20, 1300)).toEqual({ batch: 1, limitingRank: 0 });
    // Nothing grows with the batch: the cap.
    expect(largestBatch(() => 0, 10, 1000)).toBe(1000);
    expect(largestBatch((b) => b, 1000, 1000)).toBe(1000);
    expect(largestBatch((b) => b, 999, 1000)).toBe(999);
  });

  it('--memory-budget sizes', () => {
    expect(parseByteSize('8GiB')).toBe(8 * 2 ** 30);
    expect(parseByteSize('8 gib')).toBe(8 * 2 ** 30);
    expect(parseByteSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseByteSize('1.5GB')).toBe(1.5e9);
    expect(parseByteSize('4096')).toBe(4096);
    expect(parseByteSize('2G')).toBe(2 * 2 ** 30);
    for (const bad of ['', 'x', '0', '-1GiB', '8 parsecs', 'GiB']) expect(parseByteSize(bad), bad).toBeUndefined();
  });
});

describe('arguments and prompts', () => {
  it('--batch: numbers ascending, and max', () => {
    expect(parseBatches(undefined)).toEqual({ batches: [1], max: false });
    expect(parseBatches('16,1,4')).toEqual({ batches: [1, 4, 16], max: false });
    expect(parseBatches('1,max')).toEqual({ batches: [1], max: true });
    expect(parseBatches('MAX')).toEqual({ batches: [], max: true });
    expect(() => parseBatches('1,1')).toThrow(/twice/);
    expect(() => parseBatches('max,max')).toThrow(/twice/);
    expect(() => parseBatches('0')).toThrow(/positive integer/);
  });

  it('sequence 0 of each run gets the prompt the one-sequence bench always used; the others differ', () => {
    const [first, second] = prompts(320, 8, 2, 0, 1);
    expect(prompts(320, 8, 1, 0, 1)[0]).toEqual(first);
    expect(second).not.toEqual(first);
    for (const id of [...first!, ...second!]) expect(id).toBeGreaterThanOrEqual(0);
    expect(prompts(320, 8, 3, 0, 2)).toHaveLength(3);
  });
});

describe('encoder–decoder and encoder steps', () => {
  it('a decode step of an encoder–decoder: 1 + new/2 decoder positions; KV read = self cache over them + cross cache over the source', () => {
    expect(seq2seqDecodeContext(8)).toBe(5);
    expect(seq2seqDecodeContext(2)).toBe(2);
    expect(kvBytesReadPerSequence(1024, 5)).toBe(5120);
    expect(kvBytesReadPerSequence(1024, 5, 512, 10)).toBe(5120 + 5120);
  });

  it('workload leaves out the tensors a step does not use (an encoder–decoder step skips the encoder)', () => {
    const t = (name: string, shape: number[], role = 'attn.q') => ({ name, shape, role, storage: 'f32' as const, read: true, ranks: [{ shape, bytes: shape.reduce((a, b) => a * b, 1) * 4 }] });
    const plan = {
      tpSize: 1,
      tensors: [t('encoder.block.0.q.weight', [8, 8]), t('decoder.block.0.q.weight', [8, 8]), t('decoder.block.0.norm.weight', [8], 'norm'), t('shared.weight', [32, 8], 'embed')],
      lmHead: null,
      ranks: [{ paramBytes: 0, kvCacheBytesPerToken: 0 }],
      geometry: {},
      storageDtypes: ['f32' as const],
    };
    expect(workload(plan, 0, 1)).toEqual({ parametersPerToken: 128, weightBytesPerStep: 128 * 4 + 32 });
    expect(workload(plan, 0, 1, (name) => !name.startsWith('encoder.'))).toEqual({ parametersPerToken: 64, weightBytesPerStep: 64 * 4 + 32 });
  });
});
