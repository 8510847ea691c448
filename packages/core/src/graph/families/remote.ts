/**
 * Families whose modeling code lives on the Hub (trust_remote_code): planned from their published
 * tensor names (families.md §4.1; vLLM loaders), not checked against golden logits.
 */
import type { FamilyDescriptor, WeightRule } from '../descriptor.js';
import { expertRules, keys, llamaLike } from './templates.js';

export const chatglm: FamilyDescriptor = {
  modelType: 'chatglm',
  title: 'ChatGLM2/3',
  kind: 'causal',
  tieDefault: false,
  config: {
    hidden: ['hidden_size'],
    layers: ['num_layers'],
    vocab: ['padded_vocab_size', 'vocab_size'],
    paddedVocab: ['padded_vocab_size'],
    intermediate: ['ffn_hidden_size'],
  },
  attention: {
    self: {
      heads: ['num_attention_heads'],
      kvHeads: [(c) => (c.bool('multi_query_attention') === true ? c.number(['multi_query_group_num']) : undefined)],
      headDim: ['kv_channels'],
    },
  },
  weights: [
    { match: 'self_attention.query_key_value', role: 'attn.qkv', layout: 'qkv-concat' },
    { match: 'self_attention.dense', role: 'attn.out' },
    { match: 'mlp.dense_h_to_4h', role: 'mlp.gate_up', layout: 'gate-up' },
    { match: 'mlp.dense_4h_to_h', role: 'mlp.down' },
    { match: 'input_layernorm', role: 'norm' },
    { match: 'post_attention_layernorm', role: 'norm' },
    { match: 'final_layernorm', role: 'norm' },
    { match: 'embedding.word_embeddings', role: 'embed' },
    { match: 'output_layer', role: 'lm_head' },
    { match: 'rotary_pos_emb', role: 'buffer' },
  ],
};

export const baichuan = llamaLike({
  modelType: 'baichuan',
  title: 'Baichuan',
  attention: { self: { heads: keys.heads } },
  extra: [{ match: 'self_attn.W_pack', role: 'attn.qkv', layout: 'qkv-concat' }],
  notes: ['Baichuan-13B uses ALiBi (slopes by head); Baichuan2 normalises lm_head rows, which commutes with any split'],
});

export const qwen: FamilyDescriptor = {
  modelType: 'qwen',
  title: 'Qwen (v1)',
  kind: 'causal',
  tieDefault: false,
  config: {
    hidden: ['hidden_size', 'n_embd'],
    layers: ['num_hidden_layers', 'n_layer'],
    vocab: keys.vocab,
    intermediate: [(c) => {
      const i = c.number(['intermediate_size', 'ffn_hidden_size']);
      return i === undefined ? undefined : i / 2;
    }],
  },
  attention: { self: { heads: ['num_attention_heads', 'n_head'] } },
  weights: [
    { match: 'attn.c_attn', role: 'attn.qkv', layout: 'qkv-concat' },
    { match: 'attn.c_proj', role: 'attn.out' },
    { match: 'mlp.w2', role: 'mlp.gate', note: 'in Qwen v1, w2 is the gate (silu) and w1 the up projection' },
    { match: 'mlp.w1', role: 'mlp.up' },
    { match: 'mlp.c_proj', role: 'mlp.down' },
    { match: 'ln_1', role: 'norm' },
    { match: 'ln_2', role: 'norm' },
    { match: 'ln_f', role: 'norm' },
    { match: 'wte', role: 'embed' },
    { match: 'lm_head', role: 'lm_head' },
    { match: 'rotary_emb', role: 'buffer' },
  ],
};

export const arctic = llamaLike({
  modelType: 'arctic',
  title: 'Arctic',
  config: {
    hidden: keys.hidden,
    layers: keys.layers,
    vocab: keys.vocab,
    intermediate: keys.intermediate,
    experts: ['num_local_experts'],
    expertsPerToken: ['num_experts_per_tok'],
  },
  extra: [
    { match: 'block_sparse_moe.gate', role: 'moe.router', note: 'replicated so every rank routes identically' },
    ...expertRules('block_sparse_moe', { gate: 'w1', up: 'w3', down: 'w2' }),
    { match: 'block_sparse_moe.mlp.w1', role: 'mlp.gate' },
    { match: 'block_sparse_moe.mlp.w3', role: 'mlp.up' },
    { match: 'block_sparse_moe.mlp.w2', role: 'mlp.down' },
    { match: 'residual_mlp.w1', role: 'mlp.gate', group: 'mlp:residual' },
    { match: 'residual_mlp.w3', role: 'mlp.up', group: 'mlp:residual' },
    { match: 'residual_mlp.w2', role: 'mlp.down', group: 'mlp:residual' },
    { match: 'residual_layernorm', role: 'norm' },
  ] satisfies WeightRule[],
});

export const yuan = llamaLike({
  modelType: 'yuan',
  title: 'Yuan 2',
  attention: { self: { heads: keys.heads } },
  extra: [
    { match: 'self_attn.q_proj', role: 'attn.q', layout: 'yuan-qk', note: 'q and k are concatenated then re-split per head at run time' },
    { match: 'self_attn.k_proj', role: 'attn.k', layout: 'yuan-qk' },
    { match: 'self_attn.v_proj', role: 'attn.v', layout: 'yuan-v', note: 'value heads paired with the rank’s shared-QK heads' },
    { match: 'self_attn.o_proj', role: 'attn.out', layout: 'yuan-v' },
    { match: 'self_attn.lf_gate.*', role: 'other', note: 'localized filtering acts on the full hidden state: replicated' },
    { match: 'self_attn.lf_gate.*.*', role: 'other' },
  ],
});

export const remoteFamily: readonly FamilyDescriptor[] = [chatglm, baichuan, qwen, arctic, yuan];
