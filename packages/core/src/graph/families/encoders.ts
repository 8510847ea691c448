/** BERT-style encoders and relatives. families.md §4.3. */
import type { ConfigReader, FamilyDescriptor, WeightRule } from '../descriptor.js';
import type { EncoderSpec } from '../encoder-spec.js';
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
  extra: [{ match: 'relative_positions_encoding', role: 'buffer', note: 'sinusoidal distance table, recomputed' }],
  // NezhaModel: word + token-type embeddings (no absolute positions), BERT's post-norm layers and MLM
  // head, and functional relative positions in every attention: the sinusoidal distance table of
  // NezhaRelativePositionsEncoding added to the keys and to the values, clipped at max_relative_position.
  // NezhaRelativePositionsEncoding is built for max_position_embeddings positions: longer inputs fail there.
  encoder: (c) => {
    const inputLimit = c.number(['max_position_embeddings']);
    return bertEncoder(c, { positions: 'none', relative: { kind: 'functional', maxDistance: c.number(['max_relative_position']) ?? 64 }, ...(inputLimit !== undefined ? { inputLimit } : {}) });
  },
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
  // YosoModel at inference with use_expectation (its default): q and k L2-normalized per head, weights
  // (1 − acos(q̂·k̂)/π)^hash_code_len instead of a softmax, the context normalized per head
  // (YosoCumulation, then F.normalize). Positions start at 2 whatever the padding (position_ids =
  // arange + 2), and the attention mask never masks anything (see `paddingVisible`).
  encoder: (c) => {
    if (c.value('conv_window') !== undefined && c.value('conv_window') !== null) {
      throw new UnsupportedModelError({ modelType: 'yoso', reason: `"conv_window": ${String(c.value('conv_window'))} (a depthwise convolution of the values added to the attention output) is not implemented: tp runs YOSO configs with conv_window null` });
    }
    if (c.bool('use_expectation') === false) {
      throw new UnsupportedModelError({ modelType: 'yoso', reason: '"use_expectation": false (attention estimated by random LSH sampling, a CUDA kernel in transformers) is not implemented: tp runs the expectation form (use_expectation: true) only' });
    }
    return bertEncoder(c, { positionOffset: 2, scoring: { kind: 'expectation', bits: c.number(['hash_code_len']) ?? 9 }, paddingVisible: true });
  },
  notes: [
    "YOSO's attention mask hides nothing in transformers (int(1 + mask/10000) is 1 for padding too), so padding tokens are keys of every query; tp does the same, so a padded sequence's outputs depend on its padding exactly as transformers' do",
  ],
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
  // The entity-aware query projections get their own attention group: in the `self` group they would
  // take the place of the word-to-word `query`, the only one used without entity inputs.
  attention: { self: { heads: ['num_attention_heads'] }, entity: { heads: ['num_attention_heads'] } },
  extra: [
    { match: 'attention.self.w2e_query', role: 'attn.q', attention: 'entity', note: 'word-to-entity query (entity inputs only)' },
    { match: 'attention.self.e2w_query', role: 'attn.q', attention: 'entity', note: 'entity-to-word query (entity inputs only)' },
    { match: 'attention.self.e2e_query', role: 'attn.q', attention: 'entity', note: 'entity-to-entity query (entity inputs only)' },
    { match: 'entity_embeddings.entity_embeddings', role: 'other' },
    { match: 'entity_embeddings.entity_embedding_dense', role: 'other' },
    { match: 'entity_embeddings.position_embeddings', role: 'other' },
    { match: 'entity_embeddings.token_type_embeddings', role: 'other' },
    { match: 'entity_embeddings.LayerNorm', role: 'norm' },
    { match: 'entity_predictions.transform.dense', role: 'other' },
    { match: 'entity_predictions.transform.LayerNorm', role: 'norm' },
    { match: 'entity_predictions', role: 'other' },
  ],
  // LukeForMaskedLM on word inputs alone (tp's inputs carry no entities): LukeSelfAttention then uses
  // `query` for every pair (the w2e/e2w/e2e queries only meet entity tokens), LukeEmbeddings counts
  // positions from padding_idx + 1 as RoBERTa does, and LukeLMHead is RoBERTa's (dense → erf-GELU →
  // layer_norm → tied decoder + lm_head.bias) — the RoBERTa encoder exactly.
  encoder: (c) => robertaEncoder(c),
  notes: ['LUKE runs on word tokens only: entity ids, their positions and the entity-prediction head are not inputs or outputs of tp'],
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

/** pos_att_type as DebertaConfig reads it: a list, or the old "c2p|p2c" string. */
function positionTerms(c: ConfigReader): string[] {
  const raw = c.value('pos_att_type');
  if (raw === undefined || raw === null) return [];
  const list = typeof raw === 'string' ? raw.toLowerCase().split('|') : Array.isArray(raw) ? raw.map(String) : [];
  return list.map((x) => x.trim()).filter((x) => x.length > 0);
}

/**
 * DeBERTa v1 and v2 as transformers' DebertaForMaskedLM / DebertaV2ForMaskedLM compute them: word
 * (+ absolute positions when position_biased_input, + token types when type_vocab_size > 0)
 * embeddings, LayerNorm, post-norm BERT layers with disentangled self-attention (EncoderSpec
 * `DisentangledRelative`), and the MLM head (legacy `cls.predictions`, or `lm_predictions.lm_head`:
 * the same dense → act → LayerNorm → tied decoder + bias). DebertaEmbeddings multiplies its output
 * by the attention mask: that zeroes padding rows only, which no real row reads (their keys are
 * masked), so it is left out. Switches tp does not implement are refused by name.
 */
function debertaEncoder(c: ConfigReader, version: 1 | 2): EncoderSpec {
  const modelType = String(c.value('model_type'));
  const refuse = (reason: string) => {
    throw new UnsupportedModelError({ modelType, reason });
  };
  const hidden = c.number(['hidden_size']);
  const embedding = c.number(['embedding_size']);
  if (embedding !== undefined && hidden !== undefined && embedding !== hidden) {
    refuse(`"embedding_size": ${embedding} ≠ hidden_size ${hidden} (embed_proj before the embedding LayerNorm) is not implemented`);
  }
  refuseSwitch(c, 'talking_head', 'head logits and weights mixed across heads');
  if (version === 2 && (c.number(['conv_kernel_size']) ?? 0) > 0) {
    refuse(`"conv_kernel_size": ${c.number(['conv_kernel_size'])} (the convolution layer after the first layer) is not implemented; configs without it (0 or absent) are`);
  }
  const terms = positionTerms(c);
  const unknown = terms.filter((t) => t !== 'c2p' && t !== 'p2c');
  if (unknown.length > 0) refuse(`pos_att_type ${JSON.stringify(unknown)} is not implemented (c2p and p2c are)`);
  const c2p = terms.includes('c2p');
  const p2c = terms.includes('p2c');
  // v1 divides by sqrt(d · (1 + len(pos_att_type))), v2 counts c2p and p2c: the same once unknown terms are refused.
  const scaleFactor = 1 + (c2p ? 1 : 0) + (p2c ? 1 : 0);
  const spec = bertEncoder(c, { positions: c.bool('position_biased_input') === false ? 'none' : 'learned' });
  if (c.bool('relative_attention') !== true) {
    // Plain attention, still scaled by sqrt(d · scaleFactor) (DisentangledSelfAttention scales before it looks at relative_attention).
    return { ...spec, relative: { kind: 'disentangled', c2p: false, p2c: false, scaleFactor, span: 0, normEmbeddings: false, sharedKeys: false } };
  }
  let maxRelative = c.number(['max_relative_positions']) ?? -1;
  if (maxRelative < 1) maxRelative = c.number(['max_position_embeddings']) ?? 512;
  const buckets = version === 2 ? (c.number(['position_buckets']) ?? -1) : -1;
  const norms = String(c.value('norm_rel_ebd') ?? 'none').toLowerCase().split('|').map((x) => x.trim());
  return {
    ...spec,
    relative: {
      kind: 'disentangled',
      c2p,
      p2c,
      scaleFactor,
      span: buckets > 0 ? buckets : maxRelative,
      ...(buckets > 0 ? { buckets: { size: buckets, maxPosition: maxRelative } } : {}),
      normEmbeddings: version === 2 && norms.includes('layer_norm'),
      sharedKeys: version === 2 && c.bool('share_att_key') === true,
    },
  };
}

/** Both DeBERTa MLM heads, the shared relative embeddings, and the classification pooler (GELU, not BERT's tanh: left unused). */
const debertaCommon: readonly WeightRule[] = [
  { match: 'encoder.rel_embeddings', role: 'other', slot: 'rel_embed', note: 'relative-position embeddings, shared by every layer' },
  { match: 'lm_predictions.lm_head.dense', role: 'other', slot: 'mlm_dense' },
  { match: 'lm_predictions.lm_head.LayerNorm', role: 'norm', slot: 'mlm_norm' },
  { match: 'lm_predictions.lm_head', role: 'vocab_bias' },
  { match: 'pooler.dense', role: 'other', note: "ContextPooler (sequence classification), not BERT's pooler" },
];

const debertaAttention = { self: { heads: ['num_attention_heads'] }, rel: { heads: ['num_attention_heads'] } };

export const debertaV2 = bertLike({
  modelType: 'deberta-v2',
  aliases: ['deberta_v2'],
  title: 'DeBERTa-v2',
  // The position projections form their own attention group (`rel`), split with the same heads: in
  // `self` they would take the place of the content query and key.
  attention: debertaAttention,
  extra: [
    { match: 'attention.self.query_proj', role: 'attn.q' },
    { match: 'attention.self.key_proj', role: 'attn.k' },
    { match: 'attention.self.value_proj', role: 'attn.v' },
    { match: 'attention.self.pos_key_proj', role: 'attn.k', attention: 'rel', note: 'relative-position keys, by head' },
    { match: 'attention.self.pos_query_proj', role: 'attn.q', attention: 'rel', note: 'relative-position queries, by head' },
    { match: 'encoder.LayerNorm', role: 'norm', slot: 'rel_norm', note: 'norm of the relative-position embeddings (norm_rel_ebd)' },
    { match: 'encoder.conv.conv', role: 'other' },
    { match: 'encoder.conv.LayerNorm', role: 'norm' },
    ...debertaCommon,
  ],
  encoder: (c) => debertaEncoder(c, 2),
});

export const deberta = bertLike({
  modelType: 'deberta',
  title: 'DeBERTa (v1)',
  attention: debertaAttention,
  extra: [
    { match: 'attention.self.in_proj', role: 'attn.qkv', layout: 'qkv-interleaved' },
    { match: 'attention.self.q_bias', role: 'attn.head_param', slot: 'q_bias', note: 'query bias, by head' },
    { match: 'attention.self.v_bias', role: 'attn.head_param', slot: 'v_bias', note: 'value bias, by head' },
    { match: 'attention.self.pos_proj', role: 'attn.k', attention: 'rel', note: 'relative-position keys, by head' },
    { match: 'attention.self.pos_q_proj', role: 'attn.q', attention: 'rel', note: 'relative-position queries, by head' },
    ...debertaCommon,
  ],
  encoder: (c) => debertaEncoder(c, 1),
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
