/** BERT-style encoders and relatives. families.md §4.3. */
import type { FamilyDescriptor } from '../descriptor.js';
import { bertLike } from './templates.js';

export const bert = bertLike({ modelType: 'bert', title: 'BERT' });
export const roberta = bertLike({ modelType: 'roberta', title: 'RoBERTa' });
export const camembert = bertLike({ modelType: 'camembert', title: 'CamemBERT' });
export const xlmRoberta = bertLike({ modelType: 'xlm-roberta', aliases: ['xlm_roberta'], title: 'XLM-RoBERTa' });
export const ernie = bertLike({
  modelType: 'ernie',
  title: 'ERNIE',
  extra: [{ match: 'embeddings.task_type_embeddings', role: 'type_embed' }],
});
export const nezha = bertLike({ modelType: 'nezha', title: 'NEZHA', extra: [{ match: 'relative_positions_encoding', role: 'buffer' }] });
export const splinter = bertLike({
  modelType: 'splinter',
  title: 'Splinter',
  hasLmHead: false,
  extra: [{ match: 'splinter_qass.*', role: 'other' }, { match: 'splinter_qass.*.*', role: 'other' }],
});
export const yoso = bertLike({ modelType: 'yoso', title: 'YOSO', extra: [{ match: 'attention.self.conv', role: 'other' }] });
export const roformer = bertLike({
  modelType: 'roformer',
  title: 'RoFormer',
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
  ],
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
