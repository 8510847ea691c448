/**
 * Shared pieces of family descriptors. Most families are a few lines on top of one of these: the
 * Llama layout, the GPT-2 style, the BERT encoder, the BART and T5 encoder–decoders.
 */
import type { ConfigReader, FamilyDescriptor, KeySpec, WeightRule } from '../descriptor.js';

export const keys = {
  hidden: ['hidden_size'],
  layers: ['num_hidden_layers'],
  vocab: ['vocab_size'],
  intermediate: ['intermediate_size'],
  heads: ['num_attention_heads'],
  kvHeads: ['num_key_value_heads'],
  headDim: ['head_dim'],
} satisfies Record<string, KeySpec>;

/** `multi_query: true` means one shared key/value head. */
export const multiQuery = (c: ConfigReader) => (c.bool('multi_query') === true ? 1 : undefined);

// ---- Llama-style decoders (model.layers.{i}.self_attn / mlp) ----------------------------------

export const llamaAttention: readonly WeightRule[] = [
  { match: 'self_attn.q_proj', role: 'attn.q' },
  { match: 'self_attn.k_proj', role: 'attn.k' },
  { match: 'self_attn.v_proj', role: 'attn.v' },
  { match: 'self_attn.o_proj', role: 'attn.out' },
  { match: 'self_attn.qkv_proj', role: 'attn.qkv', layout: 'qkv-concat' },
  { match: 'self_attn.q_norm', role: 'attn.head_norm' },
  { match: 'self_attn.k_norm', role: 'attn.head_norm' },
  { match: 'self_attn.rotary_emb', role: 'buffer' },
];

export const llamaMlp: readonly WeightRule[] = [
  { match: 'mlp.gate_proj', role: 'mlp.gate' },
  { match: 'mlp.up_proj', role: 'mlp.up' },
  { match: 'mlp.down_proj', role: 'mlp.down' },
  { match: 'mlp.gate_up_proj', role: 'mlp.gate_up', layout: 'gate-up' },
];

/** Routed experts stored either per expert (2-D) or stacked (3-D, transformers 5 runtime layout). */
export function expertRules(prefix: string, names: { gate: string; up: string; down: string }): WeightRule[] {
  return [
    { match: `${prefix}.experts.#.${names.gate}`, role: 'moe.expert.gate' },
    { match: `${prefix}.experts.#.${names.up}`, role: 'moe.expert.up' },
    { match: `${prefix}.experts.#.${names.down}`, role: 'moe.expert.down' },
    { match: `${prefix}.experts.gate_up_proj`, role: 'moe.expert.gate_up', layout: 'gate-up', group: 'mlp:experts' },
    { match: `${prefix}.experts.down_proj`, role: 'moe.expert.down', group: 'mlp:experts' },
  ];
}

export const llamaEdges: readonly WeightRule[] = [
  { match: 'embed_tokens', role: 'embed' },
  { match: 'lm_head', role: 'lm_head' },
  { match: 'rotary_emb', role: 'buffer' },
  { match: 'input_layernorm', role: 'norm' },
  { match: 'post_attention_layernorm', role: 'norm' },
  { match: 'pre_feedforward_layernorm', role: 'norm' },
  { match: 'post_feedforward_layernorm', role: 'norm' },
  { match: 'model.norm', role: 'norm' },
];

export function llamaLike(
  fields: Pick<FamilyDescriptor, 'modelType' | 'title'> &
    Partial<Omit<FamilyDescriptor, 'modelType' | 'title' | 'weights'>> & { extra?: readonly WeightRule[] },
): FamilyDescriptor {
  const { extra = [], ...rest } = fields;
  return {
    kind: 'causal',
    tieDefault: false,
    config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: keys.intermediate },
    attention: { self: { heads: keys.heads, kvHeads: keys.kvHeads, headDim: keys.headDim } },
    ...rest,
    weights: [...extra, ...llamaAttention, ...llamaMlp, ...llamaEdges],
  };
}

// ---- BERT-style encoders ({prefix}.encoder.layer.{i}.attention.self.query ...) ----------------

export const bertEmbeddings: readonly WeightRule[] = [
  { match: 'embeddings.word_embeddings', role: 'embed' },
  { match: 'embeddings.position_embeddings', role: 'pos_embed' },
  { match: 'embeddings.token_type_embeddings', role: 'type_embed' },
  { match: 'embeddings.LayerNorm', role: 'norm' },
  { match: 'embeddings.position_ids', role: 'buffer' },
  { match: 'embeddings.token_type_ids', role: 'buffer' },
];

export const bertLayer: readonly WeightRule[] = [
  { match: 'attention.self.query', role: 'attn.q' },
  { match: 'attention.self.key', role: 'attn.k' },
  { match: 'attention.self.value', role: 'attn.v' },
  { match: 'attention.output.dense', role: 'attn.out' },
  { match: 'attention.output.LayerNorm', role: 'norm' },
  { match: 'intermediate.dense', role: 'mlp.up' },
  { match: 'output.dense', role: 'mlp.down' },
  { match: 'output.LayerNorm', role: 'norm' },
];

/** MLM heads: BERT's `cls.predictions.*` and RoBERTa's `lm_head.*` (decoder weight tied, bias stored). */
export const mlmHeads: readonly WeightRule[] = [
  { match: 'cls.predictions.transform.dense', role: 'other' },
  { match: 'cls.predictions.transform.LayerNorm', role: 'norm' },
  { match: 'cls.predictions.decoder', role: 'lm_head' },
  { match: 'cls.predictions', role: 'vocab_bias' },
  { match: 'cls.seq_relationship', role: 'other' },
  { match: 'lm_head.dense', role: 'other' },
  { match: 'lm_head.layer_norm', role: 'norm' },
  { match: 'lm_head.decoder', role: 'lm_head' },
  { match: 'lm_head', role: 'lm_head' },
  { match: 'pooler.dense', role: 'other' },
];

export function bertLike(
  fields: Pick<FamilyDescriptor, 'modelType' | 'title'> &
    Partial<Omit<FamilyDescriptor, 'modelType' | 'title' | 'weights'>> & { extra?: readonly WeightRule[] },
): FamilyDescriptor {
  const { extra = [], ...rest } = fields;
  return {
    kind: 'encoder',
    tieDefault: true,
    config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: keys.intermediate },
    attention: { self: { heads: keys.heads } },
    ...rest,
    weights: [...extra, ...bertLayer, ...bertEmbeddings, ...mlmHeads],
  };
}

// ---- BART-style encoder–decoders (model.{encoder,decoder}.layers.{i}) -------------------------

export const bartAttention = (stack: 'encoder' | 'decoder', module: string, attention: string): WeightRule[] => [
  { match: `${stack}.layers.#.${module}.q_proj`, role: 'attn.q', attention },
  { match: `${stack}.layers.#.${module}.k_proj`, role: 'attn.k', attention },
  { match: `${stack}.layers.#.${module}.v_proj`, role: 'attn.v', attention },
  { match: `${stack}.layers.#.${module}.out_proj`, role: 'attn.out', attention },
];

export const bartRules: readonly WeightRule[] = [
  ...bartAttention('encoder', 'self_attn', 'enc'),
  ...bartAttention('decoder', 'self_attn', 'dec'),
  ...bartAttention('decoder', 'encoder_attn', 'cross'),
  { match: 'fc1', role: 'mlp.up' },
  { match: 'fc2', role: 'mlp.down' },
  { match: 'self_attn_layer_norm', role: 'norm' },
  { match: 'encoder_attn_layer_norm', role: 'norm' },
  { match: 'final_layer_norm', role: 'norm' },
  { match: 'layernorm_embedding', role: 'norm' },
  { match: 'layer_norm', role: 'norm' },
  { match: 'embed_positions', role: 'pos_embed' },
  { match: 'embed_tokens', role: 'embed' },
  { match: 'shared', role: 'embed' },
  { match: 'final_logits_bias', role: 'vocab_bias' },
  { match: 'lm_head', role: 'lm_head' },
];

export const bartAttentionGroups = {
  dec: { heads: ['decoder_attention_heads'] },
  enc: { heads: ['encoder_attention_heads'] },
  cross: { heads: ['decoder_attention_heads'] },
} as const;

export function bartLike(
  fields: Pick<FamilyDescriptor, 'modelType' | 'title'> &
    Partial<Omit<FamilyDescriptor, 'modelType' | 'title' | 'weights'>> & { extra?: readonly WeightRule[] },
): FamilyDescriptor {
  const { extra = [], ...rest } = fields;
  return {
    kind: 'seq2seq',
    tieDefault: true,
    config: { hidden: ['d_model'], layers: ['decoder_layers', 'num_hidden_layers'], vocab: keys.vocab, intermediate: ['decoder_ffn_dim'] },
    attention: bartAttentionGroups,
    ...rest,
    weights: [...extra, ...bartRules],
  };
}

// ---- T5-style encoder–decoders ({encoder,decoder}.block.{i}.layer.{j}) ------------------------

export const t5Attention = (module: string, attention: string): WeightRule[] => [
  { match: `${module}.q`, role: 'attn.q', attention },
  { match: `${module}.k`, role: 'attn.k', attention },
  { match: `${module}.v`, role: 'attn.v', attention },
  { match: `${module}.o`, role: 'attn.out', attention },
  { match: `${module}.relative_attention_bias`, role: 'rel_bias', attention, headAxis: 1 },
  { match: `${module}.global_relative_attention_bias`, role: 'rel_bias', attention, headAxis: 1 },
  { match: `${module}.global_input_layer_norm`, role: 'norm' },
];

export const t5Rules: readonly WeightRule[] = [
  ...t5Attention('SelfAttention', 'self'),
  ...t5Attention('EncDecAttention', 'cross'),
  { match: 'DenseReluDense.wi', role: 'mlp.up' },
  { match: 'DenseReluDense.wi_0', role: 'mlp.gate' },
  { match: 'DenseReluDense.wi_1', role: 'mlp.up' },
  { match: 'DenseReluDense.wo', role: 'mlp.down' },
  { match: 'layer_norm', role: 'norm' },
  { match: 'final_layer_norm', role: 'norm' },
  { match: 'shared', role: 'embed' },
  { match: 'embed_tokens', role: 'embed' },
  { match: 'lm_head', role: 'lm_head' },
];

export const t5Config = {
  hidden: ['d_model'],
  layers: ['num_decoder_layers', 'num_layers'],
  vocab: keys.vocab,
  intermediate: ['d_ff'],
} satisfies FamilyDescriptor['config'];

export const t5AttentionGroups = {
  self: { heads: ['num_heads'], headDim: ['d_kv'] },
  cross: { heads: ['num_heads'], headDim: ['d_kv'] },
} as const;

// ---- GPT-2 style (transformer.h.{i}.attn.c_attn ...) -------------------------------------------

export const gpt2Config = {
  hidden: ['n_embd', 'hidden_size'],
  layers: ['n_layer', 'num_hidden_layers'],
  vocab: keys.vocab,
  intermediate: ['n_inner', (c: ConfigReader) => {
    const h = c.number(['n_embd', 'hidden_size']);
    return h === undefined ? undefined : 4 * h;
  }],
} satisfies FamilyDescriptor['config'];
