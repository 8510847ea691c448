/**
 * Exact plans for known families, written out by hand from the layouts in families.md: which ranges
 * of which dimension each rank gathers. A change in any of these is a change in behaviour.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel, openCheckpoint, planTensorParallel, type PlanOptions, type TPPlan } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { planViolations } from '../helpers/invariants.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

type R = Array<[number, number]>;

async function goldenPlan(folder: string, tp: number, options: Omit<PlanOptions, 'tpSize'> = {}): Promise<TPPlan> {
  const ckpt = await openCheckpoint(path.join(GOLDEN_DIR, folder));
  try {
    return planTensorParallel(analyzeModel(ckpt), { tpSize: tp, ...options });
  } finally {
    ckpt.close();
  }
}

function expectSplit(plan: TPPlan, name: string, split: string, dim: number, ranks: R[]) {
  const t = plan.tensors.find((x) => x.name === name);
  expect(t, name).toBeDefined();
  expect({ name, split: t!.split, dim: t!.dim, ranks: t!.ranks.map((r) => r.ranges) }).toEqual({ name, split, dim, ranks });
}

const whole = (n: number, tp: number): R[] => Array.from({ length: tp }, () => [[0, n]]);

const count = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** Each rank's parameter bytes, from its tensors: matrices at `matrixBytes` per element, vectors (norms, biases) at f32. */
const rankParamBytes = (p: TPPlan, matrixBytes: number) =>
  p.ranks.map((_, r) => p.tensors.filter((t) => t.read).reduce((n, t) => n + count(t.ranks[r]!.shape) * (t.shape.length >= 2 ? matrixBytes : 4), 0));

describe.skipIf(!hasShared)(`exact plans of golden checkpoints${needsShared}`, () => {
  it('llama (4 heads, 2 kv heads, head dim 16, mlp 128) at tp 2', async () => {
    const p = await goldenPlan('llama', 2);
    const L = 'model.layers.1.';
    expectSplit(p, `${L}self_attn.q_proj.weight`, 'column', 0, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${L}self_attn.k_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]]]);
    expectSplit(p, `${L}self_attn.v_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]]]);
    expectSplit(p, `${L}self_attn.o_proj.weight`, 'row', 1, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${L}mlp.gate_proj.weight`, 'column', 0, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, `${L}mlp.up_proj.weight`, 'column', 0, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, `${L}mlp.down_proj.weight`, 'row', 1, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, `${L}input_layernorm.weight`, 'replicate', 0, whole(64, 2));
    expectSplit(p, 'model.embed_tokens.weight', 'replicate', 0, whole(256, 2));
    expectSplit(p, 'lm_head.weight', 'row', 1, [[[0, 32]], [[32, 64]]]);
    expect(p.lmHead).toMatchObject({ weight: 'lm_head.weight', tied: false, split: 'row', after: 'all-reduce' });
    expect(p.attention).toEqual([{ group: 'self', heads: 4, kvHeads: 2, headDim: 16, kvReplicated: false, sliceAfterNorm: false, ranks: [
        { q: [0, 2], kv: [0, 1], heads: 2, kvHeads: 1, headDim: 16, valueDim: 16 },
        { q: [2, 4], kv: [1, 2], heads: 2, kvHeads: 1, headDim: 16, valueDim: 16 },
      ] }]);
    // each rank reads embed (64 KiB) + its half of everything split; KV cache is halved
    expect(p.ranks.map((r) => r.kvCacheBytesPerToken)).toEqual([2 * 2 * 16 * 4, 2 * 2 * 16 * 4]);
    expect(p.totals.kvCacheBytesPerToken).toBe(2 * 2 * 2 * 16 * 4);
    expect(p.ranks[0]!.bytesToRead + p.ranks[1]!.bytesToRead).toBe(p.totals.bytes + 256 * 64 * 4 + 2 * (2 * 64 * 4) + 64 * 4);
    // F32 weights, stored as they are (auto): parameter memory equals the bytes read; compute is f32.
    expect(p.options).toMatchObject({ computeDtype: 'f32', storageDtype: 'auto', kvDtype: 'f32' });
    expect(p.storageDtypes).toEqual(['f32']);
    expect(p.tensors.every((t) => t.storage === 'f32')).toBe(true);
    expect(p.ranks.map((r) => r.paramBytes)).toEqual(p.ranks.map((r) => r.bytesToRead));
    expect(p.totals.paramBytes).toBe(p.totals.bytes);
  });

  it('llama with bf16 storage and a bf16 KV cache: matrices at half the bytes (vectors stay f32), half the KV bytes, the same bytes read', async () => {
    const f32 = await goldenPlan('llama', 2);
    const p = await goldenPlan('llama', 2, { storageDtype: 'bf16', kvDtype: 'bf16' });
    expect(p.options).toMatchObject({ computeDtype: 'f32', storageDtype: 'bf16', kvDtype: 'bf16' });
    expect(p.storageDtypes).toEqual(['bf16']);
    for (const t of p.tensors) expect(t.storage, t.name).toBe(t.shape.length >= 2 ? 'bf16' : 'f32');
    expect(f32.ranks.map((r) => r.paramBytes)).toEqual(rankParamBytes(f32, 4));
    expect(p.ranks.map((r) => r.paramBytes)).toEqual(rankParamBytes(p, 2));
    expect(p.ranks.map((r) => r.bytesToRead)).toEqual(f32.ranks.map((r) => r.bytesToRead));
    expect(p.ranks.map((r) => r.kvCacheBytesPerToken)).toEqual([2 * 2 * 16 * 2, 2 * 2 * 16 * 2]);
    const read = p.tensors.filter((t) => t.read);
    const matrices = read.filter((t) => t.shape.length >= 2).reduce((n, t) => n + count(t.shape), 0);
    const vectors = read.filter((t) => t.shape.length < 2).reduce((n, t) => n + count(t.shape), 0);
    expect(matrices * 4 + vectors * 4).toBe(f32.totals.paramBytes);
    expect(p.totals).toEqual({ bytes: f32.totals.bytes, paramBytes: matrices * 2 + vectors * 4, kvCacheBytesPerToken: 2 * 2 * 2 * 16 * 2 });
  });

  it('llama at tp 3 (uneven: kv heads 2 over 3 ranks) and tp 4 (kv heads replicated)', async () => {
    const p3 = await goldenPlan('llama', 3);
    const L = 'model.layers.0.';
    expectSplit(p3, `${L}self_attn.q_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]], [[32, 64]]]);
    expectSplit(p3, `${L}self_attn.k_proj.weight`, 'column', 0, [[[0, 16]], [[0, 16]], [[16, 32]]]);
    expectSplit(p3, `${L}self_attn.o_proj.weight`, 'row', 1, [[[0, 16]], [[16, 32]], [[32, 64]]]);
    expectSplit(p3, `${L}mlp.up_proj.weight`, 'column', 0, [[[0, 64]], [[64, 96]], [[96, 128]]]);
    expectSplit(p3, `${L}mlp.down_proj.weight`, 'row', 1, [[[0, 64]], [[64, 96]], [[96, 128]]]);
    const p4 = await goldenPlan('llama', 4);
    expectSplit(p4, `${L}self_attn.q_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]], [[32, 48]], [[48, 64]]]);
    expectSplit(p4, `${L}self_attn.v_proj.weight`, 'column', 0, [[[0, 16]], [[0, 16]], [[16, 32]], [[16, 32]]]);
    expectSplit(p4, `${L}mlp.up_proj.weight`, 'column', 0, [[[0, 32]], [[32, 64]], [[64, 96]], [[96, 128]]]);
    expect(p4.attention[0]!.kvReplicated).toBe(true);
  });

  it('llama with --vocab-parallel splits embedding and LM head by vocabulary', async () => {
    const p = await goldenPlan('llama', 2, { vocabParallel: true });
    expectSplit(p, 'model.embed_tokens.weight', 'vocab', 0, [[[0, 128]], [[128, 256]]]);
    expectSplit(p, 'lm_head.weight', 'vocab', 0, [[[0, 128]], [[128, 256]]]);
    expect(p.lmHead).toMatchObject({ split: 'vocab', after: 'all-gather' });
  });

  it('falcon multi-query: [Q; K; V] with K and V on every rank', async () => {
    const p = await goldenPlan('falcon', 2);
    expectSplit(p, 'transformer.h.0.self_attention.query_key_value.weight', 'column', 0, [[[0, 32], [64, 96]], [[32, 96]]]);
    expectSplit(p, 'transformer.h.0.self_attention.dense.weight', 'row', 1, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, 'transformer.h.0.mlp.dense_h_to_4h.weight', 'column', 0, [[[0, 128]], [[128, 256]]]);
    expect(p.lmHead).toMatchObject({ weight: 'transformer.word_embeddings.weight', tied: true, split: 'row' });
  });

  it('falcon new architecture: whole kv groups, then q heads of one group with its k, v', async () => {
    const p2 = await goldenPlan('falcon_new_arch', 2);
    expectSplit(p2, 'transformer.h.0.self_attention.query_key_value.weight', 'column', 0, [[[0, 64]], [[64, 128]]]);
    const p4 = await goldenPlan('falcon_new_arch', 4);
    expectSplit(p4, 'transformer.h.0.self_attention.query_key_value.weight', 'column', 0, [
      [[0, 16], [32, 64]],
      [[16, 64]],
      [[64, 80], [96, 128]],
      [[80, 128]],
    ]);
  });

  it('bloom: per-head interleaved [q, k, v], bias split with it', async () => {
    const p = await goldenPlan('bloom', 2);
    expectSplit(p, 'transformer.h.0.self_attention.query_key_value.weight', 'column', 0, [[[0, 96]], [[96, 192]]]);
    expectSplit(p, 'transformer.h.0.self_attention.query_key_value.bias', 'column', 0, [[[0, 96]], [[96, 192]]]);
    expectSplit(p, 'transformer.h.0.self_attention.dense.bias', 'replicate', 0, whole(64, 2));
  });

  it('phi3: [Q; K; V] with GQA sizes and [gate; up] halves', async () => {
    const p = await goldenPlan('phi3', 2);
    expectSplit(p, 'model.layers.0.self_attn.qkv_proj.weight', 'column', 0, [[[0, 32], [64, 80], [96, 112]], [[32, 64], [80, 96], [112, 128]]]);
    expectSplit(p, 'model.layers.0.mlp.gate_up_proj.weight', 'column', 0, [[[0, 64], [128, 192]], [[64, 128], [192, 256]]]);
    expectSplit(p, 'model.layers.0.mlp.down_proj.weight', 'row', 1, [[[0, 64]], [[64, 128]]]);
  });

  it('codegen: 4 blocks of [q; v; k], whole blocks per rank when tp divides 4', async () => {
    const p2 = await goldenPlan('codegen', 2);
    expectSplit(p2, 'transformer.h.0.attn.qkv_proj.weight', 'column', 0, [[[0, 96]], [[96, 192]]]);
    expectSplit(p2, 'transformer.h.0.attn.out_proj.weight', 'row', 1, [[[0, 32]], [[32, 64]]]);
    expect(p2.notes).toContain('qkv_proj is assembled as 2 local [q; v; k] blocks per rank');
    const p4 = await goldenPlan('codegen', 4);
    expectSplit(p4, 'transformer.h.0.attn.qkv_proj.weight', 'column', 0, [[[0, 48]], [[48, 96]], [[96, 144]], [[144, 192]]]);
  });

  it('gpt_bigcode multi-query: Q split, the single K and V replicated', async () => {
    const p = await goldenPlan('gpt_bigcode', 2);
    expectSplit(p, 'transformer.h.0.attn.c_attn.weight', 'column', 0, [[[0, 32], [64, 96]], [[32, 96]]]);
    expectSplit(p, 'transformer.h.0.attn.c_attn.bias', 'column', 0, [[[0, 32], [64, 96]], [[32, 96]]]);
    expectSplit(p, 'transformer.h.0.attn.c_proj.weight', 'row', 1, [[[0, 32]], [[32, 64]]]);
  });

  it('mixtral: router replicated, each expert split like an MLP', async () => {
    const p = await goldenPlan('mixtral', 2);
    const M = 'model.layers.0.block_sparse_moe.';
    expectSplit(p, `${M}gate.weight`, 'replicate', 0, whole(4, 2));
    for (const e of [0, 3]) {
      expectSplit(p, `${M}experts.${e}.w1.weight`, 'column', 0, [[[0, 64]], [[64, 128]]]);
      expectSplit(p, `${M}experts.${e}.w3.weight`, 'column', 0, [[[0, 64]], [[64, 128]]]);
      expectSplit(p, `${M}experts.${e}.w2.weight`, 'row', 1, [[[0, 64]], [[64, 128]]]);
    }
  });

  it('qwen2_moe: experts (width 32) and shared expert (width 64) split, both gates replicated', async () => {
    const p = await goldenPlan('qwen2_moe', 2);
    const M = 'model.layers.1.mlp.';
    expectSplit(p, `${M}gate.weight`, 'replicate', 0, whole(4, 2));
    expectSplit(p, `${M}shared_expert_gate.weight`, 'replicate', 0, whole(1, 2));
    expectSplit(p, `${M}experts.2.gate_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]]]);
    expectSplit(p, `${M}experts.2.down_proj.weight`, 'row', 1, [[[0, 16]], [[16, 32]]]);
    expectSplit(p, `${M}shared_expert.up_proj.weight`, 'column', 0, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${M}shared_expert.down_proj.weight`, 'row', 1, [[[0, 32]], [[32, 64]]]);
  });

  it('t5: relative attention bias split by head on dim 1, tied LM head split by hidden', async () => {
    const p = await goldenPlan('t5', 2);
    expectSplit(p, 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'column', 1, [[[0, 2]], [[2, 4]]]);
    expectSplit(p, 'decoder.block.0.layer.1.EncDecAttention.q.weight', 'column', 0, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, 'decoder.block.0.layer.2.DenseReluDense.wo.weight', 'row', 1, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, 'shared.weight', 'replicate', 0, whole(256, 2));
    expect(p.lmHead).toEqual({ weight: 'shared.weight', tied: true, split: 'row', ranks: [{ ranges: [[0, 32]] }, { ranges: [[32, 64]] }], after: 'all-reduce' });
  });

  it('bert: attention.output.dense and output.dense row-parallel, MLM bias replicated', async () => {
    const p = await goldenPlan('bert', 2);
    const L = 'bert.encoder.layer.0.';
    expectSplit(p, `${L}attention.self.query.bias`, 'column', 0, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${L}attention.output.dense.weight`, 'row', 1, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${L}intermediate.dense.weight`, 'column', 0, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, `${L}output.dense.weight`, 'row', 1, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, 'cls.predictions.bias', 'replicate', 0, whole(256, 2));
    expect(p.ranks.every((r) => r.kvCacheBytesPerToken === 0)).toBe(true);
  });

  it('gpt2: Conv1D [in, out] — column splits dim 1, row splits dim 0', async () => {
    const p = await goldenPlan('gpt2', 2);
    const L = 'transformer.h.0.';
    expectSplit(p, `${L}attn.c_attn.weight`, 'column', 1, [[[0, 32], [64, 96], [128, 160]], [[32, 64], [96, 128], [160, 192]]]);
    expectSplit(p, `${L}attn.c_attn.bias`, 'column', 0, [[[0, 32], [64, 96], [128, 160]], [[32, 64], [96, 128], [160, 192]]]);
    expectSplit(p, `${L}attn.c_proj.weight`, 'row', 0, [[[0, 32]], [[32, 64]]]);
    expectSplit(p, `${L}mlp.c_fc.weight`, 'column', 1, [[[0, 64]], [[64, 128]]]);
    expectSplit(p, `${L}mlp.c_proj.weight`, 'row', 0, [[[0, 64]], [[64, 128]]]);
  });
});

describe('exact plans of synthetic layouts', () => {
  it('mpt with GQA (4 heads, kv_n_heads 2): [Q_r; K_r; V_r], kv replicated at tp 4', () => {
    const graph = analyzeModel(
      fakeCheckpoint(
        { model_type: 'mpt', d_model: 64, n_heads: 4, n_layers: 1, vocab_size: 100, expansion_ratio: 4, attn_config: { kv_n_heads: 2, alibi: true } },
        {
          'transformer.wte.weight': [100, 64],
          'transformer.blocks.0.norm_1.weight': [64],
          'transformer.blocks.0.attn.Wqkv.weight': [128, 64],
          'transformer.blocks.0.attn.out_proj.weight': [64, 64],
          'transformer.blocks.0.norm_2.weight': [64],
          'transformer.blocks.0.ffn.up_proj.weight': [256, 64],
          'transformer.blocks.0.ffn.down_proj.weight': [64, 256],
          'transformer.norm_f.weight': [64],
        },
      ),
    );
    const p2 = planTensorParallel(graph, { tpSize: 2 });
    expectSplit(p2, 'transformer.blocks.0.attn.Wqkv.weight', 'column', 0, [[[0, 32], [64, 80], [96, 112]], [[32, 64], [80, 96], [112, 128]]]);
    const p4 = planTensorParallel(graph, { tpSize: 4 });
    expectSplit(p4, 'transformer.blocks.0.attn.Wqkv.weight', 'column', 0, [
      [[0, 16], [64, 80], [96, 112]],
      [[16, 32], [64, 80], [96, 112]],
      [[32, 48], [80, 96], [112, 128]],
      [[48, 64], [80, 96], [112, 128]],
    ]);
    expect(planViolations(p4)).toEqual([]);
  });

  it('uneven heads: 6 heads, 3 kv heads at tp 4 — every rank has heads, kv heads shared', () => {
    const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [128, 96], 'model.norm.weight': [96], 'lm_head.weight': [128, 96] };
    const L = 'model.layers.0.';
    Object.assign(shapes, {
      [`${L}self_attn.q_proj.weight`]: [96, 96],
      [`${L}self_attn.k_proj.weight`]: [48, 96],
      [`${L}self_attn.v_proj.weight`]: [48, 96],
      [`${L}self_attn.o_proj.weight`]: [96, 96],
      [`${L}mlp.gate_proj.weight`]: [192, 96],
      [`${L}mlp.up_proj.weight`]: [192, 96],
      [`${L}mlp.down_proj.weight`]: [96, 192],
    });
    const graph = analyzeModel(
      fakeCheckpoint({ model_type: 'llama', hidden_size: 96, num_attention_heads: 6, num_key_value_heads: 3, num_hidden_layers: 1, vocab_size: 128, intermediate_size: 192 }, shapes),
    );
    const p = planTensorParallel(graph, { tpSize: 4 });
    // kv groups of 2 query heads; ranks over groups 2, 1, 1
    // each rank's local counts and head widths (96 / 6 = 16) are in the plan, for the engine
    expect(p.attention[0]!.ranks).toEqual([
      { q: [0, 1], kv: [0, 1], heads: 1, kvHeads: 1, headDim: 16, valueDim: 16 },
      { q: [1, 2], kv: [0, 1], heads: 1, kvHeads: 1, headDim: 16, valueDim: 16 },
      { q: [2, 4], kv: [1, 2], heads: 2, kvHeads: 1, headDim: 16, valueDim: 16 },
      { q: [4, 6], kv: [2, 3], heads: 2, kvHeads: 1, headDim: 16, valueDim: 16 },
    ]);
    expectSplit(p, `${L}self_attn.q_proj.weight`, 'column', 0, [[[0, 16]], [[16, 32]], [[32, 64]], [[64, 96]]]);
    expectSplit(p, `${L}self_attn.k_proj.weight`, 'column', 0, [[[0, 16]], [[0, 16]], [[16, 32]], [[32, 48]]]);
    expectSplit(p, `${L}self_attn.o_proj.weight`, 'row', 1, [[[0, 16]], [[16, 32]], [[32, 64]], [[64, 96]]]);
    // 192 = 3 × 64: grain 64 leaves a rank empty, so the grain halves to 32 (6 grains over 4 ranks)
    expectSplit(p, `${L}mlp.up_proj.weight`, 'column', 0, [[[0, 64]], [[64, 128]], [[128, 160]], [[160, 192]]]);
    expect(planViolations(p)).toEqual([]);
  });

  it('the invariant checker catches a plan whose row input differs from its producer', () => {
    const graph = analyzeModel(
      fakeCheckpoint({ model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 4, num_hidden_layers: 1, vocab_size: 100, intermediate_size: 128 }, {
        'model.layers.0.self_attn.q_proj.weight': [64, 64],
        'model.layers.0.self_attn.k_proj.weight': [64, 64],
        'model.layers.0.self_attn.v_proj.weight': [64, 64],
        'model.layers.0.self_attn.o_proj.weight': [64, 64],
        'model.layers.0.mlp.up_proj.weight': [128, 64],
        'model.layers.0.mlp.down_proj.weight': [64, 128],
      }),
    );
    const plan = planTensorParallel(graph, { tpSize: 2 });
    expect(planViolations(plan)).toEqual([]);
    const tampered = structuredClone(plan) as TPPlan;
    const down = tampered.tensors.find((t) => t.name.endsWith('down_proj.weight'))!;
    down.ranks.reverse();
    const o = tampered.tensors.find((t) => t.name.endsWith('o_proj.weight'))!;
    (o.ranks[0]!.ranges as R)[0] = [0, 16];
    const problems = planViolations(tampered);
    expect(problems.some((p) => p.includes('down_proj') && p.includes('up_proj'))).toBe(true);
    expect(problems.some((p) => p.includes('o_proj'))).toBe(true);
  });
});
