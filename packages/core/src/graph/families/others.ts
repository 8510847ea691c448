/** Architectures with their own layouts: Reformer, Perceiver, XLNet, XLM/FlauBERT. */
import type { FamilyDescriptor, WeightRule } from '../descriptor.js';
import { keys } from './templates.js';

export const reformer: FamilyDescriptor = {
  modelType: 'reformer',
  title: 'Reformer',
  kind: 'causal',
  tieDefault: false,
  config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: ['feed_forward_size'] },
  attention: { self: { heads: keys.heads, headDim: ['attention_head_size'] } },
  weights: [
    { match: 'attention.self_attention.query_key', role: 'attn.qk', note: 'LSH attention shares one projection for queries and keys' },
    { match: 'attention.self_attention.query', role: 'attn.q' },
    { match: 'attention.self_attention.key', role: 'attn.k' },
    { match: 'attention.self_attention.value', role: 'attn.v' },
    { match: 'attention.output.dense', role: 'attn.out' },
    { match: 'attention.layer_norm', role: 'norm' },
    { match: 'feed_forward.dense.dense', role: 'mlp.up' },
    { match: 'feed_forward.output.dense', role: 'mlp.down' },
    { match: 'feed_forward.layer_norm', role: 'norm' },
    { match: 'encoder.layer_norm', role: 'norm' },
    { match: 'embeddings.word_embeddings', role: 'embed' },
    { match: 'embeddings.position_embeddings.weights', role: 'pos_embed', note: 'axial position embeddings' },
    { match: 'embeddings.position_embeddings', role: 'pos_embed' },
    { match: 'lm_head.decoder', role: 'lm_head' },
    { match: 'lm_head', role: 'lm_head' },
  ],
  notes: ['the reversible residual concatenates two streams before the head, so lm_head reads 2 × hidden features'],
  engineGap: "Reformer's LSH and local attention with reversible residual layers and axial positions is not implemented",
};

export const perceiver: FamilyDescriptor = {
  modelType: 'perceiver',
  title: 'Perceiver',
  kind: 'encoder',
  tieDefault: true,
  config: { hidden: ['d_latents'], layers: ['num_self_attends_per_block'], vocab: keys.vocab },
  attention: {
    self: { heads: ['num_self_attention_heads'] },
    cross: { heads: ['num_cross_attention_heads'] },
  },
  weights: [
    ...(['cross_attention', 'self_attends.#'] as const).flatMap((module): WeightRule[] => {
      const attention = module === 'cross_attention' ? 'cross' : 'self';
      return [
        { match: `encoder.${module}.attention.self.query`, role: 'attn.q', attention },
        { match: `encoder.${module}.attention.self.key`, role: 'attn.k', attention },
        { match: `encoder.${module}.attention.self.value`, role: 'attn.v', attention },
        { match: `encoder.${module}.attention.output.dense`, role: 'attn.out', attention },
        { match: `encoder.${module}.mlp.dense1`, role: 'mlp.up' },
        { match: `encoder.${module}.mlp.dense2`, role: 'mlp.down' },
      ];
    }),
    { match: 'decoder.decoding_cross_attention.*.*.*', role: 'other', note: 'single-head decoder cross-attention: replicated' },
    { match: 'decoder.decoding_cross_attention.*.*', role: 'other', note: 'single-head decoder cross-attention: replicated' },
    { match: 'decoder.decoding_cross_attention.*', role: 'other' },
    { match: 'decoder.output_position_encodings.position_embeddings', role: 'other' },
    { match: 'layernorm1', role: 'norm' },
    { match: 'layernorm2', role: 'norm' },
    { match: 'layernorm', role: 'norm' },
    { match: 'embeddings.latents', role: 'other', note: 'the learned latent array' },
    { match: 'input_preprocessor.embeddings', role: 'embed' },
    { match: 'input_preprocessor.position_embeddings', role: 'pos_embed' },
    { match: 'embedding_decoder', role: 'vocab_bias' },
  ],
  notes: ['query/key and value widths differ (qk_channels, v_channels): each projection is split by heads at its own width'],
  engineGap: "Perceiver's latent array (cross-attention from inputs to latents, then self-attention over latents, then decoder queries) is not implemented",
};

export const xlnet: FamilyDescriptor = {
  modelType: 'xlnet',
  title: 'XLNet',
  kind: 'causal',
  tieDefault: true,
  config: { hidden: ['d_model'], layers: ['n_layer'], vocab: keys.vocab, intermediate: ['d_inner'] },
  attention: { self: { heads: ['n_head'], headDim: ['d_head'] } },
  weights: [
    { match: 'rel_attn.q', role: 'attn.q', headAxis: 1 },
    { match: 'rel_attn.k', role: 'attn.k', headAxis: 1 },
    { match: 'rel_attn.v', role: 'attn.v', headAxis: 1 },
    { match: 'rel_attn.r', role: 'attn.k', headAxis: 1, note: 'relative-position keys' },
    { match: 'rel_attn.o', role: 'attn.out', headAxis: 1, note: 'contracts over heads: partial sums, all-reduced' },
    { match: 'rel_attn.r_w_bias', role: 'attn.head_param', headAxis: 0 },
    { match: 'rel_attn.r_r_bias', role: 'attn.head_param', headAxis: 0 },
    { match: 'rel_attn.r_s_bias', role: 'attn.head_param', headAxis: 0 },
    { match: 'rel_attn.seg_embed', role: 'attn.head_param', headAxis: 1 },
    { match: 'rel_attn.layer_norm', role: 'norm' },
    { match: 'ff.layer_1', role: 'mlp.up' },
    { match: 'ff.layer_2', role: 'mlp.down' },
    { match: 'ff.layer_norm', role: 'norm' },
    { match: 'word_embedding', role: 'embed' },
    { match: 'mask_emb', role: 'other' },
    { match: 'lm_loss', role: 'lm_head' },
  ],
  notes: [
    'DeepSpeed AutoTP refuses xlnet: its attention weights are raw [d_model, heads, d_head] parameters with no nn.Linear to replace. tp splits them on the head axis directly',
  ],
};

const xlmRules: readonly WeightRule[] = [
  { match: 'attentions.#.q_lin', role: 'attn.q' },
  { match: 'attentions.#.k_lin', role: 'attn.k' },
  { match: 'attentions.#.v_lin', role: 'attn.v' },
  { match: 'attentions.#.out_lin', role: 'attn.out' },
  { match: 'ffns.#.lin1', role: 'mlp.up' },
  { match: 'ffns.#.lin2', role: 'mlp.down' },
  { match: 'layer_norm1.#', role: 'norm' },
  { match: 'layer_norm2.#', role: 'norm' },
  { match: 'layer_norm_emb', role: 'norm' },
  { match: 'embeddings', role: 'embed' },
  { match: 'position_embeddings', role: 'pos_embed' },
  { match: 'lang_embeddings', role: 'other' },
  { match: 'pred_layer.proj', role: 'lm_head' },
];

export const xlm: FamilyDescriptor = {
  modelType: 'xlm',
  title: 'XLM',
  kind: 'encoder',
  tieDefault: true,
  config: { hidden: ['emb_dim'], layers: ['n_layers'], vocab: ['vocab_size', 'n_words'] },
  attention: { self: { heads: ['n_heads'] } },
  weights: xlmRules,
  notes: [
    "DeepSpeed AutoTP refuses xlm: attention and FFN sit in parallel lists (attentions.{i}, ffns.{i}) with no block module, so its parser finds no layers. tp's rules name them directly",
  ],
};

export const flaubert: FamilyDescriptor = { ...xlm, modelType: 'flaubert', title: 'FlauBERT', notes: xlm.notes };

export const otherFamily: readonly FamilyDescriptor[] = [reformer, perceiver, xlnet, xlm, flaubert];
