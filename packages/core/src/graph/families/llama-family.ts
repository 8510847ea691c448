/** Llama-layout decoders: separate or fused q/k/v, gated MLP, RMSNorm, RoPE. families.md §4.1. */
import type { FamilyDescriptor } from '../descriptor.js';
import { activationOf, expertRules, keys, llamaDecoder, llamaLike, qwenWindow, slidingWindow } from './templates.js';

export const llama = llamaLike({
  modelType: 'llama',
  aliases: ['codellama', 'llama2', 'llama3'],
  title: 'Llama',
  decoder: (c) => llamaDecoder(c),
});

export const mistral = llamaLike({ modelType: 'mistral', title: 'Mistral', decoder: (c) => llamaDecoder(c, slidingWindow(c)) });

export const mixtral = llamaLike({
  modelType: 'mixtral',
  title: 'Mixtral',
  config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: keys.intermediate, experts: ['num_local_experts'], expertsPerToken: ['num_experts_per_tok'] },
  extra: [
    { match: 'block_sparse_moe.gate', role: 'moe.router', note: 'replicated so every rank routes identically' },
    ...expertRules('block_sparse_moe', { gate: 'w1', up: 'w3', down: 'w2' }),
  ],
  // Mixtral always renormalises the top-k routing weights.
  decoder: (c) => llamaDecoder(c, { ...slidingWindow(c), moe: { topK: c.number(['num_experts_per_tok']) ?? 2, normalize: true } }),
});

export const qwen2 = llamaLike({ modelType: 'qwen2', title: 'Qwen2', decoder: (c) => llamaDecoder(c, qwenWindow(c)) });

const qwenMoeExperts = [
  { match: 'mlp.gate', role: 'moe.router', note: 'replicated so every rank routes identically' },
  { match: 'mlp.shared_expert_gate', role: 'moe.shared_gate', note: 'a [1, hidden] sigmoid gate: replicated' },
  { match: 'mlp.shared_expert.gate_proj', role: 'mlp.gate', group: 'mlp:shared' },
  { match: 'mlp.shared_expert.up_proj', role: 'mlp.up', group: 'mlp:shared' },
  { match: 'mlp.shared_expert.down_proj', role: 'mlp.down', group: 'mlp:shared' },
  ...expertRules('mlp', { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }),
] as const;

export const qwen2Moe = llamaLike({
  modelType: 'qwen2_moe',
  title: 'Qwen2-MoE',
  config: {
    hidden: keys.hidden,
    layers: keys.layers,
    vocab: keys.vocab,
    intermediate: keys.intermediate,
    experts: ['num_experts'],
    expertsPerToken: ['num_experts_per_tok'],
  },
  extra: qwenMoeExperts,
  decoder: (c) => llamaDecoder(c, { ...qwenWindow(c), moe: { topK: c.number(['num_experts_per_tok']) ?? 2, normalize: c.bool('norm_topk_prob') ?? false } }),
});

export const qwen3 = llamaLike({ modelType: 'qwen3', title: 'Qwen3', decoder: (c) => llamaDecoder(c, qwenWindow(c)) });

export const qwen3Moe = llamaLike({
  modelType: 'qwen3_moe',
  title: 'Qwen3-MoE',
  config: qwen2Moe.config,
  extra: qwenMoeExperts,
  decoder: (c) => llamaDecoder(c, { moe: { topK: c.number(['num_experts_per_tok']) ?? 2, normalize: c.bool('norm_topk_prob') ?? false } }),
});

export const gemma = llamaLike({
  modelType: 'gemma',
  title: 'Gemma',
  tieDefault: true,
  // RMSNorm scales by (1 + weight); embeddings are multiplied by sqrt(hidden) rounded to the dtype.
  decoder: (c) => {
    const base = llamaDecoder(c);
    return {
      ...base,
      norm: { ...base.norm, plusOne: true },
      mlp: { activation: activationOf(c, ['hidden_activation', 'hidden_act'], 'gelu_pytorch_tanh'), gated: true },
      embedScale: Math.fround(Math.sqrt(c.number(['hidden_size'])!)),
    };
  },
});
export const gemma2 = llamaLike({ modelType: 'gemma2', title: 'Gemma 2', tieDefault: true });

export const phi3 = llamaLike({
  modelType: 'phi3',
  title: 'Phi-3',
  notes: ['qkv_proj is [Q; K; V] and gate_up_proj is [gate; up]: each rank gathers its slice of every part'],
  decoder: (c) => llamaDecoder(c, slidingWindow(c)),
});

export const glm = llamaLike({ modelType: 'glm', aliases: ['glm4'], title: 'GLM' });

export const starcoder2 = llamaLike({
  modelType: 'starcoder2',
  title: 'StarCoder2',
  tieDefault: true,
  extra: [
    { match: 'mlp.c_fc', role: 'mlp.up' },
    { match: 'mlp.c_proj', role: 'mlp.down' },
  ],
});

export const llamaFamily: readonly FamilyDescriptor[] = [llama, mistral, mixtral, qwen2, qwen2Moe, qwen3, qwen3Moe, gemma, gemma2, phi3, glm, starcoder2];
