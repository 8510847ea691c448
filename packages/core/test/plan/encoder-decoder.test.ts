/**
 * Exact plans of what encoders and encoder–decoders add (the issue's planner checks): cross-attention
 * k/v column-split by heads and its output row-split, T5's relative-bias tables split by heads, the
 * MLM decoder and its bias split by vocabulary with --vocab-parallel (else by hidden, bias whole),
 * BART's final_logits_bias following the head, and the per-rank attention numbers the engine reads.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel, openCheckpoint, planTensorParallel, type PlanOptions, type TPPlan } from '../../src/index.js';
import { planViolations } from '../helpers/invariants.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

async function goldenPlan(folder: string, tp: number, options: Omit<PlanOptions, 'tpSize'> = {}): Promise<TPPlan> {
  const ckpt = await openCheckpoint(path.join(GOLDEN_DIR, folder));
  try {
    return planTensorParallel(analyzeModel(ckpt), { tpSize: tp, ...options });
  } finally {
    ckpt.close();
  }
}

type R = Array<[number, number]>;
function expectSplit(plan: TPPlan, name: string, split: string, dim: number, ranks: R[]) {
  const t = plan.tensors.find((x) => x.name === name);
  expect(t, name).toBeDefined();
  expect({ name, split: t!.split, dim: t!.dim, ranks: t!.ranks.map((r) => r.ranges) }).toEqual({ name, split, dim, ranks });
}

describe.skipIf(!hasShared)(`exact plans of golden encoders and encoder–decoders${needsShared}`, () => {
  it('bart at tp 3: cross-attention k/v split by heads (2, 1, 1), out_proj row-split with its bias whole; every group has per-rank numbers', async () => {
    const p = await goldenPlan('bart', 3);
    const L = 'model.decoder.layers.0.encoder_attn.';
    expectSplit(p, `${L}k_proj.weight`, 'column', 0, [[[0, 32]], [[32, 48]], [[48, 64]]]);
    expectSplit(p, `${L}v_proj.bias`, 'column', 0, [[[0, 32]], [[32, 48]], [[48, 64]]]);
    expectSplit(p, `${L}out_proj.weight`, 'row', 1, [[[0, 32]], [[32, 48]], [[48, 64]]]);
    expectSplit(p, `${L}out_proj.bias`, 'replicate', 0, [[[0, 64]], [[0, 64]], [[0, 64]]]);
    expect(p.attention.map((a) => a.group).sort()).toEqual(['cross', 'dec', 'enc']);
    for (const a of p.attention) {
      expect(a.ranks.map((r) => [r.heads, r.kvHeads, r.headDim, r.valueDim])).toEqual([[2, 2, 16, 16], [1, 1, 16, 16], [1, 1, 16, 16]]);
    }
    expect(p.allReduces.find((r) => r.block === 'model.decoder.layers.*')?.after).toContain('encoder_attn.out_proj (all-reduce)');
    expect(planViolations(p)).toEqual([]);
  });

  it('t5 at tp 4: each stack\'s relative-bias table split by heads on dim 1; the cross-attention of T5 likewise', async () => {
    const p = await goldenPlan('t5', 4);
    for (const stack of ['encoder', 'decoder']) {
      expectSplit(p, `${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, 'column', 1, [[[0, 1]], [[1, 2]], [[2, 3]], [[3, 4]]]);
    }
    expectSplit(p, 'decoder.block.1.layer.1.EncDecAttention.k.weight', 'column', 0, [[[0, 16]], [[16, 32]], [[32, 48]], [[48, 64]]]);
    expectSplit(p, 'decoder.block.1.layer.1.EncDecAttention.o.weight', 'row', 1, [[[0, 16]], [[16, 32]], [[32, 48]], [[48, 64]]]);
  });

  it('bert: the tied MLM decoder is split by hidden with its bias whole, or by vocabulary with the bias following it; bart\'s final_logits_bias follows its head', async () => {
    const byHidden = await goldenPlan('bert', 2);
    expect(byHidden.lmHead).toEqual({ weight: 'bert.embeddings.word_embeddings.weight', tied: true, split: 'row', ranks: [{ ranges: [[0, 32]] }, { ranges: [[32, 64]] }], after: 'all-reduce' });
    expectSplit(byHidden, 'cls.predictions.bias', 'replicate', 0, [[[0, 256]], [[0, 256]]]);
    expectSplit(byHidden, 'cls.predictions.transform.dense.weight', 'replicate', 0, [[[0, 64]], [[0, 64]]]);
    const byVocab = await goldenPlan('bert', 2, { vocabParallel: true });
    expect(byVocab.lmHead?.split).toBe('vocab');
    expectSplit(byVocab, 'bert.embeddings.word_embeddings.weight', 'vocab', 0, [[[0, 128]], [[128, 256]]]);
    expectSplit(byVocab, 'cls.predictions.bias', 'vocab', 0, [[[0, 128]], [[128, 256]]]);
    const bart = await goldenPlan('bart', 2, { vocabParallel: true });
    const bias = bart.tensors.find((t) => t.name === 'final_logits_bias')!;
    expect(bias.split).toBe('vocab');
    expect(bias.ranks.map((r) => r.shape)).toEqual([[1, 128], [1, 128]]);
  });
});
