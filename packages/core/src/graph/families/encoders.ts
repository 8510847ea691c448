/** BERT-style encoders and relatives. families.md §4.3. */
import type { ConfigReader, FamilyDescriptor } from '../descriptor.js';
import { UnsupportedModelError } from '../../errors/index.js';
import { bertEncoder, bertLike, robertaEncoder } from './templates.js';

export const bert = bertLike({ modelType: 'bert', title: 'BERT', encoder: (c) => bertEncoder(c) });
export const roberta = bertLike({ modelType: 'roberta', title: 'RoBERTa', encoder: (c) => robertaEncoder(c) });
export const camembert = bertLike({ modelType: 'camembert', title: 'CamemBERT', encoder: (c) => robertaEncoder(c) });
export const xlmRoberta = bertLike({ modelType: 'xlm-roberta', aliases: ['xlm_roberta'], title: 'XLM-RoBERTa', encoder: (c) => robertaEncoder(c) });

/** A config switch the engine does not implement, refused by name rather than ignored. */
const refuseSwitch = (c: ConfigReader, key: string, why: string) => {
  if (c.bool(key) === true) throw new UnsupportedModelError({ modelType: String(c.value('model_type')), reason: `"${key}": true (${why}) is not implemented` });
};

export const ernie = bertLike({
  modelType: 'ernie',
  title: 'ERNIE',
  extra: [{ match: 'embeddings.task_type_embeddings', role: 'type_embed' }],
  encoder: (c) => {
    refuseSwitch(c, 'use_task_id', 'task-type embeddings');
    return bertEncoder(c);
  },
});
export const nezha = bertLike({
  modelType: 'nezha',
  title: 'NEZHA',
  extra: [{ match: 'relative_positions_encoding', role: 'buffer' }],
  engineGap: "NEZHA's functional relative positions (sinusoidal distance embeddings added to keys and values inside attention) are not implemented",
});
export const splinter = bertLike({
  modelType: 'splinter',
  title: 'Splinter',
  hasLmHead: false,
  extra: [{ match: 'splinter_qass.*', role: 'other' }, { match: 'splinter_qass.*.*', role: 'other' }],
  encoder: (c) => bertEncoder(c),
});
export const yoso = bertLike({
  modelType: 'yoso',
  title: 'YOSO',
  extra: [{ match: 'attention.self.conv', role: 'other' }],
  engineGap: "YOSO's attention (LSH-based Bernoulli sampling estimate of softmax attention) is not implemented",
});
export const roformer = bertLike({
  modelType: 'roformer',
  title: 'RoFormer',
  // Rotary positions in interleaved pairs, frequencies 10000^(-2i/d): transformers'
  // RoFormerSinusoidalPositionalEmbedding puts sin(pos·f_i) in column i and cos in column d/2 + i, and
  // apply_rotary_position_embeddings repeats each twice ([s0, s0, s1, s1, …]) against
  // [-x1, x0, -x3, x2, …] — GPT-J's pairing.
  encoder: (c) => {
    refuseSwitch(c, 'rotary_value', 'rotary positions applied to values');
    return bertEncoder(c, { positions: 'rope', rope: { theta: 10000, rotaryDim: { fraction: 1 }, style: 'interleaved' } });
  },
  extra: [
    { match: 'encoder.embed_positions', role: 'buffer', note: 'sinusoidal table, recomputed' },
    { match: 'embeddings_project', role: 'other', slot: 'project_in' },
  ],
});

export const electra = bertLike({
  modelType: 'electra',
  title: 'ELECTRA',
  extra: [
    { match: 'embeddings_project', role: 'other', slot: 'project_in' },
    { match: 'generator_predictions.dense', role: 'other', slot: 'mlm_dense' },
    { match: 'generator_predictions.LayerNorm', role: 'norm', slot: 'mlm_norm' },
    { match: 'generator_lm_head', role: 'lm_head' },
    { match: 'discriminator_predictions.dense', role: 'other' },
    { match: 'discriminator_predictions.dense_prediction', role: 'other' },
  ],
  // ElectraGeneratorPredictions applies get_activation("gelu") whatever hidden_act says.
  encoder: (c) => bertEncoder(c, { mlm: { activation: 'gelu' } }),
});

export const esm = bertLike({
  modelType: 'esm',
  title: 'ESM',
  extra: [
    { match: 'attention.self.rotary_embeddings', role: 'buffer' },
    { match: 'attention.LayerNorm', role: 'norm', slot: 'attn_norm' },
    { match: 'emb_layer_norm_after', role: 'norm', slot: 'final_norm' },
    { match: 'layer.#.LayerNorm', role: 'norm', slot: 'mlp_norm' },
    { match: 'LayerNorm', role: 'norm' },
    { match: 'contact_head.regression', role: 'other' },
    { match: 'embeddings.layer_norm', role: 'norm', slot: 'embed_norm' },
  ],
  // ESM-2 (transformers' EsmModel): pre-norm layers and a final emb_layer_norm_after, rotary q/k
  // (rotate_half, inv_freq 10000^(-2i/d), stored but recomputed), an erf-GELU MLP and LM head, and
  // token dropout: mask-token rows zeroed, every row scaled by (1 − 0.15·0.8) / (1 − masked share).
  encoder: (c) => {
    const spec = bertEncoder(c, {
      normPlacement: 'pre',
      positions: c.value('position_embedding_type') === 'rotary' ? 'rope' : 'learned',
      rope: { theta: 10000, rotaryDim: { fraction: 1 }, style: 'half' },
      mlp: { activation: 'gelu', gated: false },
      mlm: { activation: 'gelu' },
    });
    if (spec.positions === 'learned') spec.positionOffset = (c.number(['pad_token_id']) ?? 1) + 1;
    const mask = c.number(['mask_token_id']);
    if (c.bool('token_dropout') === true && mask !== undefined) spec.tokenDropout = { maskTokenId: mask, trainRatio: 0.15 * 0.8 };
    return spec;
  },
});

export const luke = bertLike({
  modelType: 'luke',
  title: 'LUKE',
  extra: [
    { match: 'attention.self.w2e_query', role: 'attn.q' },
    { match: 'attention.self.e2w_query', role: 'attn.q' },
    { match: 'attention.self.e2e_query', role: 'attn.q' },
    { match: 'entity_embeddings.entity_embeddings', role: 'other' },
    { match: 'entity_embeddings.entity_embedding_dense', role: 'other' },
    { match: 'entity_embeddings.position_embeddings', role: 'other' },
    { match: 'entity_embeddings.token_type_embeddings', role: 'other' },
    { match: 'entity_embeddings.LayerNorm', role: 'norm' },
    { match: 'entity_predictions.transform.dense', role: 'other' },
    { match: 'entity_predictions.transform.LayerNorm', role: 'norm' },
    { match: 'entity_predictions', role: 'other' },
  ],
  engineGap: "LUKE's entity-aware self-attention (separate word/entity query projections) and entity inputs are not implemented",
});

export const albert = bertLike({
  modelType: 'albert',
  title: 'ALBERT',
  config: { hidden: ['hidden_size'], layers: ['num_hidden_layers'], vocab: ['vocab_size'], intermediate: ['intermediate_size'] },
  extra: [
    { match: 'attention.query', role: 'attn.q' },
    { match: 'attention.key', role: 'attn.k' },
    { match: 'attention.value', role: 'attn.v' },
    { match: 'attention.dense', role: 'attn.out' },
    { match: 'attention.LayerNorm', role: 'norm', slot: 'attn_norm' },
    { match: 'ffn', role: 'mlp.up' },
    { match: 'ffn_output', role: 'mlp.down' },
    { match: 'full_layer_layer_norm', role: 'norm', slot: 'mlp_norm' },
    { match: 'embedding_hidden_mapping_in', role: 'other', slot: 'project_in' },
    { match: 'predictions.dense', role: 'other', slot: 'mlm_dense' },
    { match: 'predictions.LayerNorm', role: 'norm', slot: 'mlm_norm' },
    { match: 'predictions.decoder', role: 'lm_head' },
    { match: 'predictions', role: 'vocab_bias' },
  ],
  sharedLayers: true,
  notes: ['ALBERT shares one set of layer weights across all layers (albert_layer_groups)'],
  encoder: (c) => {
    const layers = c.number(['num_hidden_layers']) ?? 12;
    return bertEncoder(c, { sharedLayers: { layers, groups: c.number(['num_hidden_groups']) ?? 1, inner: c.number(['inner_group_num']) ?? 1 } });
  },
});

export const debertaV2 = bertLike({
  modelType: 'deberta-v2',
  aliases: ['deberta_v2'],
  title: 'DeBERTa-v2',
  extra: [
    { match: 'attention.self.query_proj', role: 'attn.q' },
    { match: 'attention.self.key_proj', role: 'attn.k' },
    { match: 'attention.self.value_proj', role: 'attn.v' },
    { match: 'attention.self.pos_key_proj', role: 'attn.k', note: 'relative-position keys, by head' },
    { match: 'attention.self.pos_query_proj', role: 'attn.q', note: 'relative-position queries, by head' },
    { match: 'encoder.rel_embeddings', role: 'other' },
    { match: 'encoder.LayerNorm', role: 'norm' },
    { match: 'encoder.conv.conv', role: 'other' },
    { match: 'encoder.conv.LayerNorm', role: 'norm' },
    { match: 'lm_predictions.lm_head.dense', role: 'other' },
    { match: 'lm_predictions.lm_head.LayerNorm', role: 'norm' },
    { match: 'lm_predictions.lm_head', role: 'vocab_bias' },
  ],
  engineGap: "DeBERTa-v2's disentangled attention (content-to-position and position-to-content scores over log-bucketed relative positions) is not implemented",
});

export const deberta = bertLike({
  modelType: 'deberta',
  title: 'DeBERTa (v1)',
  extra: [
    { match: 'attention.self.in_proj', role: 'attn.qkv', layout: 'qkv-interleaved' },
    { match: 'attention.self.q_bias', role: 'attn.head_param', note: 'query bias, by head' },
    { match: 'attention.self.v_bias', role: 'attn.head_param', note: 'value bias, by head' },
    { match: 'attention.self.pos_proj', role: 'attn.k', note: 'relative-position keys, by head' },
    { match: 'attention.self.pos_q_proj', role: 'attn.q', note: 'relative-position queries, by head' },
    { match: 'encoder.rel_embeddings', role: 'other' },
    { match: 'encoder.LayerNorm', role: 'norm' },
  ],
  engineGap: "DeBERTa's disentangled attention (content-to-position and position-to-content scores over relative positions) is not implemented",
  notes: [
    'DeepSpeed AutoTP refuses deberta (v1): its fused in_proj and the separate q_bias/v_bias parameters are never sliced together there. tp splits in_proj by whole heads and slices q_bias, v_bias, pos_proj and pos_q_proj with the same heads',
  ],
});

export const longformer = bertLike({
  modelType: 'longformer',
  title: 'Longformer',
  extra: [
    { match: 'attention.self.query_global', role: 'attn.q' },
    { match: 'attention.self.key_global', role: 'attn.k' },
    { match: 'attention.self.value_global', role: 'attn.v' },
  ],
  notes: [
    "DeepSpeed AutoTP refuses longformer because it halves embed_dim, which breaks LongformerSelfAttention's width check; tp plans by heads (including the *_global projections) and leaves widths to the engine",
  ],
});

export const encoderFamily: readonly FamilyDescriptor[] = [
  bert,
  roberta,
  camembert,
  xlmRoberta,
  ernie,
  nezha,
  splinter,
  yoso,
  roformer,
  electra,
  esm,
  luke,
  albert,
  debertaV2,
  deberta,
  longformer,
];
