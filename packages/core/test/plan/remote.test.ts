/**
 * Families whose modeling code lives on the Hub (no transformers fixture): headers built from the
 * tensor names in families.md §4.1, planned, and their special layouts checked by hand.
 */
import { describe, expect, it } from 'vitest';
import { analyzeModel, planTensorParallel, type PlanError } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { planViolations } from '../helpers/invariants.js';

const H = 64;
const layer = (prefix: string, shapes: Record<string, number[]>) => Object.fromEntries(Object.entries(shapes).map(([k, v]) => [`${prefix}.${k}`, v]));

describe('remote-code families plan from their published names', () => {
  it('yuan: q/k rows contiguous, v and o_proj on the heads paired by the shared-QK re-split', () => {
    // 8 heads of 8: at tp 2 rank 0 takes heads {0, 1} ∪ {4, 5} for v and o
    const graph = analyzeModel(
      fakeCheckpoint(
        { model_type: 'yuan', hidden_size: H, num_attention_heads: 8, num_hidden_layers: 1, vocab_size: 100, intermediate_size: 128 },
        {
          'model.embed_tokens.weight': [100, H],
          ...layer('model.layers.0', {
            'self_attn.q_proj.weight': [H, H],
            'self_attn.k_proj.weight': [H, H],
            'self_attn.v_proj.weight': [H, H],
            'self_attn.o_proj.weight': [H, H],
            'self_attn.lf_gate.conv1.weight': [32, H, 2, 1],
            'mlp.up_proj.weight': [128, H],
            'mlp.gate_proj.weight': [128, H],
            'mlp.down_proj.weight': [H, 128],
          }),
          'lm_head.weight': [100, H],
        },
      ),
    );
    const plan = planTensorParallel(graph, { tpSize: 2 });
    const ranges = (n: string) => plan.tensors.find((t) => t.name === `model.layers.0.self_attn.${n}.weight`)!.ranks.map((r) => r.ranges);
    expect(ranges('q_proj')).toEqual([[[0, 32]], [[32, 64]]]);
    expect(ranges('k_proj')).toEqual([[[0, 32]], [[32, 64]]]);
    expect(ranges('v_proj')).toEqual([[[0, 16], [32, 48]], [[16, 32], [48, 64]]]);
    expect(ranges('o_proj')).toEqual([[[0, 16], [32, 48]], [[16, 32], [48, 64]]]);
    expect(plan.tensors.find((t) => t.name.includes('lf_gate'))!.split).toBe('replicate');
    // 8 heads: tp must satisfy heads % (2·tp) = 0
    let error: PlanError | undefined;
    try {
      planTensorParallel(graph, { tpSize: 3 });
    } catch (e) {
      error = e as PlanError;
    }
    expect(error?.code).toBe('indivisible');
    expect(error?.validTp).toEqual([1, 2, 4]);
  });

  it('chatglm: [Q; K; V] with 2 kv groups and [gate; up] dense_h_to_4h, output_layer as the LM head', () => {
    const graph = analyzeModel(
      fakeCheckpoint(
        { model_type: 'chatglm', hidden_size: H, num_attention_heads: 4, multi_query_attention: true, multi_query_group_num: 2, kv_channels: 16, num_layers: 1, padded_vocab_size: 128, ffn_hidden_size: 128 },
        {
          'transformer.embedding.word_embeddings.weight': [128, H],
          ...layer('transformer.encoder.layers.0', {
            'input_layernorm.weight': [H],
            'self_attention.query_key_value.weight': [128, H],
            'self_attention.query_key_value.bias': [128],
            'self_attention.dense.weight': [H, H],
            'post_attention_layernorm.weight': [H],
            'mlp.dense_h_to_4h.weight': [256, H],
            'mlp.dense_4h_to_h.weight': [H, 128],
          }),
          'transformer.encoder.final_layernorm.weight': [H],
          'transformer.output_layer.weight': [128, H],
          'transformer.rotary_pos_emb.inv_freq': [8],
        },
      ),
    );
    const plan = planTensorParallel(graph, { tpSize: 2 });
    expect(plan.tensors.find((t) => t.name.endsWith('query_key_value.bias'))!.ranks.map((r) => r.ranges)).toEqual([
      [[0, 32], [64, 80], [96, 112]],
      [[32, 64], [80, 96], [112, 128]],
    ]);
    expect(plan.lmHead).toMatchObject({ weight: 'transformer.output_layer.weight', tied: false, split: 'row' });
    expect(plan.tensors.find((t) => t.name.endsWith('inv_freq'))!.read).toBe(false);
    expect(planViolations(plan)).toEqual([]);
  });

  it('baichuan (W_pack [Q; K; V]), qwen v1 (c_attn, w2 is the gate) and arctic (experts + residual MLP) plan at tp 2 and 4', () => {
    const cases = [
      {
        config: { model_type: 'baichuan', hidden_size: H, num_attention_heads: 4, num_hidden_layers: 1, vocab_size: 100, intermediate_size: 128 },
        tensors: {
          'model.embed_tokens.weight': [100, H],
          ...layer('model.layers.0', { 'self_attn.W_pack.weight': [3 * H, H], 'self_attn.o_proj.weight': [H, H], 'mlp.gate_proj.weight': [128, H], 'mlp.up_proj.weight': [128, H], 'mlp.down_proj.weight': [H, 128] }),
          'lm_head.weight': [100, H],
        },
      },
      {
        config: { model_type: 'qwen', hidden_size: H, num_attention_heads: 4, num_hidden_layers: 1, vocab_size: 100, intermediate_size: 256 },
        tensors: {
          'transformer.wte.weight': [100, H],
          ...layer('transformer.h.0', { 'ln_1.weight': [H], 'attn.c_attn.weight': [3 * H, H], 'attn.c_attn.bias': [3 * H], 'attn.c_proj.weight': [H, H], 'ln_2.weight': [H], 'mlp.w1.weight': [128, H], 'mlp.w2.weight': [128, H], 'mlp.c_proj.weight': [H, 128] }),
          'lm_head.weight': [100, H],
        },
      },
      {
        config: { model_type: 'arctic', hidden_size: H, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 1, vocab_size: 100, intermediate_size: 128, num_local_experts: 2, num_experts_per_tok: 1 },
        tensors: {
          'model.embed_tokens.weight': [100, H],
          ...layer('model.layers.0', {
            'self_attn.q_proj.weight': [H, H],
            'self_attn.k_proj.weight': [32, H],
            'self_attn.v_proj.weight': [32, H],
            'self_attn.o_proj.weight': [H, H],
            'block_sparse_moe.gate.weight': [2, H],
            'block_sparse_moe.experts.0.w1.weight': [128, H],
            'block_sparse_moe.experts.0.w3.weight': [128, H],
            'block_sparse_moe.experts.0.w2.weight': [H, 128],
            'block_sparse_moe.experts.1.w1.weight': [128, H],
            'block_sparse_moe.experts.1.w3.weight': [128, H],
            'block_sparse_moe.experts.1.w2.weight': [H, 128],
            'residual_mlp.w1.weight': [H, H],
            'residual_mlp.w3.weight': [H, H],
            'residual_mlp.w2.weight': [H, H],
            'residual_layernorm.weight': [H],
          }),
          'lm_head.weight': [100, H],
        },
      },
    ];
    for (const c of cases) {
      const graph = analyzeModel(fakeCheckpoint(c.config, c.tensors));
      expect(graph.weights.filter((w) => w.rule.startsWith('generic:')).map((w) => w.name)).toEqual([]);
      for (const tp of [2, 4]) expect(planViolations(planTensorParallel(graph, { tpSize: tp })), `${c.config.model_type} tp ${tp}`).toEqual([]);
    }
    const qwen = planTensorParallel(analyzeModel(fakeCheckpoint(cases[1]!.config, cases[1]!.tensors)), { tpSize: 2 });
    expect(qwen.tensors.find((t) => t.name.endsWith('mlp.w2.weight'))).toMatchObject({ role: 'mlp.gate', split: 'column' });
    expect(qwen.tensors.find((t) => t.name.endsWith('c_attn.weight'))!.ranks[0]!.ranges).toEqual([[0, 32], [64, 96], [128, 160]]);
    const arctic = planTensorParallel(analyzeModel(fakeCheckpoint(cases[2]!.config, cases[2]!.tensors)), { tpSize: 2 });
    expect(arctic.tensors.find((t) => t.name.endsWith('residual_mlp.w2.weight'))).toMatchObject({ split: 'row', dim: 1 });
    expect(arctic.tensors.find((t) => t.name.endsWith('block_sparse_moe.gate.weight'))!.split).toBe('replicate');
  });
});
