/** Architectures with their own layouts: Reformer, Perceiver, XLNet, XLM/FlauBERT. */
import type { ConfigReader, FamilyDescriptor, WeightRule } from '../descriptor.js';
import type { EncoderSpec } from '../encoder-spec.js';
import { perceiverSlots } from '../perceiver-spec.js';
import { isAttentionRole, type Role } from '../roles.js';
import { activationOf, keys, tokenIds } from './templates.js';
import type { DecoderSpec } from '../decoder-spec.js';
import { reformerMaxLength, reformerSpec } from '../reformer-spec.js';

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
    { match: 'attention.layer_norm', role: 'norm', slot: 'attn_norm' },
    { match: 'feed_forward.dense.dense', role: 'mlp.up' },
    { match: 'feed_forward.output.dense', role: 'mlp.down' },
    { match: 'feed_forward.layer_norm', role: 'norm', slot: 'mlp_norm' },
    { match: 'encoder.layer_norm', role: 'norm', slot: 'final_norm' },
    { match: 'embeddings.word_embeddings', role: 'embed' },
    { match: 'embeddings.position_embeddings.weights', role: 'pos_embed', note: 'axial position embeddings' },
    { match: 'embeddings.position_embeddings.embedding', role: 'pos_embed', note: 'learned positions (axial_pos_embds false)' },
    { match: 'lm_head.decoder', role: 'lm_head' },
    { match: 'lm_head', role: 'lm_head' },
  ],
  decoder: (c) => ({
    norm: { kind: 'layer', eps: c.number(['layer_norm_eps']) ?? 1e-12 },
    normPlacement: 'pre',
    residual: 'sequential',
    // Learned positions (axial, or a plain table), added by the Reformer engine itself; the session
    // reads this to refuse a prompt longer than maxPositions before any rank runs it.
    positions: 'learned',
    mlp: { activation: activationOf(c, ['hidden_act'], 'relu'), gated: false },
    ...tokenIds(c),
    ...reformerLimits(c),
  }),
  notes: [
    'the reversible residual concatenates two streams before the head, so lm_head reads 2 × hidden features',
    'LSH buckets depend on the whole sequence, so tp runs Reformer without a KV cache: every generated token re-runs the full sequence (as transformers does with use_cache=False)',
  ],
};

/** The Reformer spec and the longest sequence it takes (its padded length must fit the positions). */
function reformerLimits(c: ConfigReader): Pick<DecoderSpec, 'reformer' | 'maxPositions'> {
  const spec = reformerSpec(c);
  return { reformer: spec, maxPositions: reformerMaxLength(spec) };
}

/**
 * PerceiverForMaskedLM builds its decoder as PerceiverBasicDecoder(num_heads=8, qk_channels=8 * 32,
 * v_channels=d_model, use_query_residual=False, final_project=False): the class fixes these, not
 * the config.
 */
const PERCEIVER_DECODER_HEADS = 8;

/** The decoder's MLP: its own width group, apart from the encoder cross-attention's (also top-level) d_latents-wide MLP. */
const PERCEIVER_DECODER_MLP = 'decoder-mlp';

/**
 * One PerceiverLayer: attention.self.{query,key,value} and attention.output.dense, the norms of its
 * queries (layernorm1) and — cross-attention only — of its keys and values (layernorm2), then the MLP
 * input norm (layernorm) and mlp.dense1/dense2. The self-attention layers are numbered blocks; the
 * two cross-attention layers are not, so their weights carry the slots the engine finds them by.
 * The decoder's queries, output and MLP read and write d_model-wide rows where the hidden state (the
 * latents) is d_latents wide: those rules declare the d_model width, so they are split by heads and
 * MLP features like the encoder's and checked against d_model.
 */
function perceiverLayer(module: string, kind: 'self' | 'cross' | 'decoder'): WeightRule[] {
  const s = perceiverSlots.layer(kind === 'decoder' ? 'decoder' : 'cross');
  const top = kind !== 'self';
  const decoder = kind === 'decoder';
  const as = (role: Role, slot: string, dModelWide = false): Pick<WeightRule, 'role' | 'attention' | 'group' | 'slot' | 'width'> => ({
    role,
    ...(isAttentionRole(role) ? { attention: kind } : decoder ? { group: PERCEIVER_DECODER_MLP } : {}),
    ...(top ? { slot } : {}),
    ...(decoder && dModelWide ? { width: ['d_model'] } : {}),
  });
  return [
    { match: `${module}.attention.self.query`, ...as('attn.q', s.q, true) },
    { match: `${module}.attention.self.key`, ...as('attn.k', s.k) },
    { match: `${module}.attention.self.value`, ...as('attn.v', s.v) },
    { match: `${module}.attention.output.dense`, ...as('attn.out', s.out, true) },
    { match: `${module}.attention.self.layernorm1`, role: 'norm', slot: top ? s.qNorm : 'attn_norm' },
    ...(top ? [{ match: `${module}.attention.self.layernorm2`, role: 'norm', slot: s.kvNorm } satisfies WeightRule] : []),
    { match: `${module}.layernorm`, role: 'norm', slot: top ? s.mlpNorm : 'mlp_norm' },
    { match: `${module}.mlp.dense1`, ...as('mlp.up', s.up, true) },
    { match: `${module}.mlp.dense2`, ...as('mlp.down', s.down, true) },
  ];
}

/**
 * transformers' PerceiverForMaskedLM. Every norm is nn.LayerNorm with its default eps 1e-5
 * (PerceiverSelfAttention and PerceiverLayer never read config.layer_norm_eps); the MLPs use
 * hidden_act; attention scales by the query/key width per head. Positions are the text
 * preprocessor's learned table (position i for input i, padding included), which also bounds the
 * input length.
 */
function perceiverEncoder(c: ConfigReader): EncoderSpec {
  const maxPositions = c.number(['max_position_embeddings']);
  return {
    norm: { kind: 'layer', eps: 1e-5 },
    normPlacement: 'pre',
    residual: 'sequential',
    positions: 'learned',
    mlp: { activation: activationOf(c, ['hidden_act'], 'gelu'), gated: false },
    ...(maxPositions !== undefined ? { maxPositions } : {}),
    perceiver: {
      blocks: c.number(['num_blocks']) ?? 1,
      cross: { group: 'cross', queryResidual: c.bool('use_query_residual') ?? true },
      decoder: { group: 'decoder', queryResidual: false },
    },
  };
}

export const perceiver: FamilyDescriptor = {
  modelType: 'perceiver',
  title: 'Perceiver',
  kind: 'encoder',
  tieDefault: true,
  config: { hidden: ['d_latents'], layers: ['num_self_attends_per_block'], vocab: keys.vocab },
  attention: {
    self: { heads: ['num_self_attention_heads'] },
    cross: { heads: ['num_cross_attention_heads'] },
    // Fixed by PerceiverForMaskedLM, not the config.
    decoder: { heads: [PERCEIVER_DECODER_HEADS] },
  },
  weights: [
    ...perceiverLayer('encoder.cross_attention', 'cross'),
    ...perceiverLayer('encoder.self_attends.#', 'self'),
    ...perceiverLayer('decoder.decoding_cross_attention', 'decoder'),
    { match: 'decoder.output_position_encodings.position_embeddings', role: 'other', slot: perceiverSlots.decoderQueries, note: 'the learned decoder queries' },
    { match: 'embeddings.latents', role: 'other', slot: perceiverSlots.latents, note: 'the learned latent array' },
    { match: 'input_preprocessor.embeddings', role: 'embed' },
    { match: 'input_preprocessor.position_embeddings', role: 'pos_embed' },
    { match: 'embedding_decoder', role: 'vocab_bias' },
  ],
  notes: [
    'query/key and value widths differ (qk_channels, v_channels): each projection is split by heads at its own width',
    `the decoder's cross-attention (${PERCEIVER_DECODER_HEADS} heads, fixed by PerceiverForMaskedLM) and its MLP read and write d_model-wide rows, not the d_latents-wide hidden state: they are split like the encoder's — q/k/v by the decoder's heads, the output projection and mlp.dense2 row-parallel (all-reduced), mlp.dense1 by its own width`,
  ],
  encoder: perceiverEncoder,
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
