/** GPT-style decoders with fused or legacy layouts. families.md §4.2. */
import type { ConfigReader, FamilyDescriptor, WeightRule } from '../descriptor.js';
import { gpt2Config, keys, multiQuery } from './templates.js';

const gptEdges: readonly WeightRule[] = [
  { match: 'wte', role: 'embed' },
  { match: 'wpe', role: 'pos_embed' },
  { match: 'ln_1', role: 'norm' },
  { match: 'ln_2', role: 'norm' },
  { match: 'ln_f', role: 'norm' },
  { match: 'lm_head', role: 'lm_head' },
  { match: 'attn.bias', role: 'buffer' },
  { match: 'attn.masked_bias', role: 'buffer' },
  { match: 'attn.causal_mask', role: 'buffer' },
];

/** GPT-2 and OpenAI-GPT store Conv1D weights as [in, out]: column splits dim 1, row splits dim 0. */
const conv1dRules: readonly WeightRule[] = [
  { match: 'attn.c_attn', role: 'attn.qkv', layout: 'qkv-concat', transposed: true },
  { match: 'attn.c_proj', role: 'attn.out', transposed: true },
  { match: 'mlp.c_fc', role: 'mlp.up', transposed: true },
  { match: 'mlp.c_proj', role: 'mlp.down', transposed: true },
];

const gpt2Attention = { self: { heads: ['n_head', 'num_attention_heads'] } } as const;

export const gpt2: FamilyDescriptor = {
  modelType: 'gpt2',
  title: 'GPT-2',
  kind: 'causal',
  tieDefault: true,
  config: gpt2Config,
  attention: gpt2Attention,
  weights: [...conv1dRules, ...gptEdges],
  notes: [
    'DeepSpeed AutoTP refuses gpt2 because its Conv1D weights are stored [in, out]; tp transposes the split instead (column = dim 1, row = dim 0)',
  ],
};

export const openaiGpt: FamilyDescriptor = {
  modelType: 'openai-gpt',
  title: 'OpenAI GPT',
  kind: 'causal',
  tieDefault: true,
  config: gpt2Config,
  attention: gpt2Attention,
  weights: [
    ...conv1dRules,
    { match: 'tokens_embed', role: 'embed' },
    { match: 'positions_embed', role: 'pos_embed' },
    ...gptEdges,
  ],
};

export const gptBigcode: FamilyDescriptor = {
  modelType: 'gpt_bigcode',
  aliases: ['starcoder'],
  title: 'GPT-BigCode (StarCoder)',
  kind: 'causal',
  tieDefault: true,
  config: gpt2Config,
  attention: { self: { heads: ['n_head'], kvHeads: [multiQuery, 'n_head'] } },
  weights: [
    {
      match: 'attn.c_attn',
      role: 'attn.qkv',
      // multi_query: [Q; K(1 head); V(1 head)]; otherwise heads interleave [q, k, v] (families.md §4.2)
      layout: (c: ConfigReader) => (c.bool('multi_query') === false ? 'qkv-interleaved' : 'qkv-concat'),
    },
    { match: 'attn.c_proj', role: 'attn.out' },
    { match: 'mlp.c_fc', role: 'mlp.up' },
    { match: 'mlp.c_proj', role: 'mlp.down' },
    ...gptEdges,
  ],
};

export const gptj: FamilyDescriptor = {
  modelType: 'gptj',
  aliases: ['gpt-j'],
  title: 'GPT-J',
  kind: 'causal',
  tieDefault: false,
  config: gpt2Config,
  attention: { self: { heads: ['n_head'] } },
  weights: [
    { match: 'attn.q_proj', role: 'attn.q' },
    { match: 'attn.k_proj', role: 'attn.k' },
    { match: 'attn.v_proj', role: 'attn.v' },
    { match: 'attn.out_proj', role: 'attn.out' },
    { match: 'mlp.fc_in', role: 'mlp.up' },
    { match: 'mlp.fc_out', role: 'mlp.down' },
    ...gptEdges,
  ],
};

export const codegen: FamilyDescriptor = {
  modelType: 'codegen',
  title: 'CodeGen',
  kind: 'causal',
  tieDefault: false,
  config: gpt2Config,
  attention: { self: { heads: ['n_head'] } },
  weights: [
    { match: 'attn.qkv_proj', role: 'attn.qkv', layout: 'qkv-codegen' },
    { match: 'attn.out_proj', role: 'attn.out' },
    { match: 'mlp.fc_in', role: 'mlp.up' },
    { match: 'mlp.fc_out', role: 'mlp.down' },
    ...gptEdges,
  ],
  notes: ["qkv_proj holds 4 blocks of [q; v; k] (CodeGen's mp_num = 4): a rank's heads must fill whole blocks or split every block evenly"],
};

export const gptNeo: FamilyDescriptor = {
  modelType: 'gpt_neo',
  aliases: ['gpt-neo'],
  title: 'GPT-Neo',
  kind: 'causal',
  tieDefault: true,
  config: { hidden: ['hidden_size'], layers: ['num_layers'], vocab: keys.vocab, intermediate: ['intermediate_size'] },
  attention: { self: { heads: ['num_heads'] } },
  weights: [
    { match: 'attn.attention.q_proj', role: 'attn.q' },
    { match: 'attn.attention.k_proj', role: 'attn.k' },
    { match: 'attn.attention.v_proj', role: 'attn.v' },
    { match: 'attn.attention.out_proj', role: 'attn.out' },
    { match: 'attn.attention.bias', role: 'buffer' },
    { match: 'attn.attention.masked_bias', role: 'buffer' },
    { match: 'mlp.c_fc', role: 'mlp.up' },
    { match: 'mlp.c_proj', role: 'mlp.down' },
    ...gptEdges,
  ],
};

export const gptNeox: FamilyDescriptor = {
  modelType: 'gpt_neox',
  aliases: ['gpt-neox', 'pythia'],
  title: 'GPT-NeoX',
  kind: 'causal',
  tieDefault: false,
  config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: keys.intermediate },
  attention: { self: { heads: keys.heads } },
  weights: [
    { match: 'attention.query_key_value', role: 'attn.qkv', layout: 'qkv-interleaved' },
    { match: 'attention.dense', role: 'attn.out' },
    { match: 'attention.bias', role: 'buffer' },
    { match: 'attention.masked_bias', role: 'buffer' },
    { match: 'attention.rotary_emb', role: 'buffer' },
    { match: 'mlp.dense_h_to_4h', role: 'mlp.up' },
    { match: 'mlp.dense_4h_to_h', role: 'mlp.down' },
    { match: 'input_layernorm', role: 'norm' },
    { match: 'post_attention_layernorm', role: 'norm' },
    { match: 'final_layer_norm', role: 'norm' },
    { match: 'embed_in', role: 'embed' },
    { match: 'embed_out', role: 'lm_head' },
    { match: 'rotary_emb', role: 'buffer' },
  ],
};

const bloomLayer: readonly WeightRule[] = [
  { match: 'self_attention.dense', role: 'attn.out' },
  { match: 'mlp.dense_h_to_4h', role: 'mlp.up' },
  { match: 'mlp.dense_4h_to_h', role: 'mlp.down' },
  { match: 'input_layernorm', role: 'norm' },
  { match: 'post_attention_layernorm', role: 'norm' },
  { match: 'ln_attn', role: 'norm' },
  { match: 'ln_mlp', role: 'norm' },
  { match: 'ln_f', role: 'norm' },
  { match: 'word_embeddings', role: 'embed' },
  { match: 'word_embeddings_layernorm', role: 'norm' },
  { match: 'lm_head', role: 'lm_head' },
];

export const bloom: FamilyDescriptor = {
  modelType: 'bloom',
  title: 'BLOOM',
  kind: 'causal',
  tieDefault: true,
  config: {
    hidden: ['hidden_size', 'n_embed'],
    layers: ['n_layer', 'num_hidden_layers'],
    vocab: keys.vocab,
    intermediate: [(c) => 4 * (c.number(['hidden_size', 'n_embed']) ?? 0) || undefined],
  },
  attention: { self: { heads: ['n_head', 'num_attention_heads'] } },
  weights: [{ match: 'self_attention.query_key_value', role: 'attn.qkv', layout: 'qkv-interleaved' }, ...bloomLayer],
  notes: ['ALiBi slopes are computed, not stored: each rank uses the slopes of its own heads'],
};

export const falcon: FamilyDescriptor = {
  modelType: 'falcon',
  aliases: ['RefinedWeb', 'RefinedWebModel'],
  title: 'Falcon',
  kind: 'causal',
  tieDefault: true,
  config: {
    hidden: ['hidden_size'],
    layers: ['num_hidden_layers', 'n_layer'],
    vocab: keys.vocab,
    intermediate: ['ffn_hidden_size', (c) => 4 * (c.number(['hidden_size']) ?? 0) || undefined],
  },
  attention: {
    self: {
      heads: ['num_attention_heads', 'n_head'],
      // new_decoder_architecture: grouped kv heads; otherwise multi_query means one kv head, else MHA
      kvHeads: [
        (c) => (c.bool('new_decoder_architecture') === true ? c.number(['num_kv_heads', 'n_head_kv']) : undefined),
        (c) => (c.bool('new_decoder_architecture') !== true && c.bool('multi_query') === true ? 1 : undefined),
        (c) => (c.bool('new_decoder_architecture') !== true ? c.number(['num_attention_heads', 'n_head']) : undefined),
      ],
    },
  },
  // One formula covers all three falcon layouts: rows viewed as [nkv, nh/nkv + 2, head_dim].
  weights: [{ match: 'self_attention.query_key_value', role: 'attn.qkv', layout: 'qkv-grouped' }, ...bloomLayer],
};

export const mpt: FamilyDescriptor = {
  modelType: 'mpt',
  title: 'MPT',
  kind: 'causal',
  tieDefault: true,
  config: {
    hidden: ['d_model'],
    layers: ['n_layers'],
    vocab: keys.vocab,
    // transformers' MptMLP is always 4 × d_model, whatever expansion_ratio says
    intermediate: [(c) => 4 * (c.number(['d_model']) ?? 0) || undefined],
  },
  attention: { self: { heads: ['n_heads'], kvHeads: ['attn_config.kv_n_heads'] } },
  weights: [
    { match: 'attn.Wqkv', role: 'attn.qkv', layout: 'qkv-concat' },
    { match: 'attn.out_proj', role: 'attn.out' },
    { match: 'attn.q_ln', role: 'attn.cross_head_norm' },
    { match: 'attn.k_ln', role: 'attn.cross_head_norm' },
    { match: 'ffn.up_proj', role: 'mlp.up' },
    { match: 'ffn.down_proj', role: 'mlp.down' },
    { match: 'norm_1', role: 'norm' },
    { match: 'norm_2', role: 'norm' },
    { match: 'norm_f', role: 'norm' },
    { match: 'wte', role: 'embed' },
    { match: 'wpe', role: 'pos_embed' },
  ],
  notes: ['ALiBi slopes are computed, not stored: each rank uses the slopes of its own heads'],
};

export const phi: FamilyDescriptor = {
  modelType: 'phi',
  title: 'Phi',
  kind: 'causal',
  tieDefault: false,
  config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: keys.intermediate },
  attention: { self: { heads: keys.heads, kvHeads: keys.kvHeads } },
  weights: [
    { match: 'self_attn.q_proj', role: 'attn.q' },
    { match: 'self_attn.k_proj', role: 'attn.k' },
    { match: 'self_attn.v_proj', role: 'attn.v' },
    { match: 'self_attn.dense', role: 'attn.out' },
    { match: 'self_attn.q_layernorm', role: 'attn.head_norm' },
    { match: 'self_attn.k_layernorm', role: 'attn.head_norm' },
    { match: 'mlp.fc1', role: 'mlp.up' },
    { match: 'mlp.fc2', role: 'mlp.down' },
    { match: 'input_layernorm', role: 'norm' },
    { match: 'final_layernorm', role: 'norm' },
    { match: 'embed_tokens', role: 'embed' },
    { match: 'lm_head', role: 'lm_head' },
    { match: 'rotary_emb', role: 'buffer' },
  ],
};

export const opt: FamilyDescriptor = {
  modelType: 'opt',
  title: 'OPT',
  kind: 'causal',
  tieDefault: true,
  config: { hidden: keys.hidden, layers: keys.layers, vocab: keys.vocab, intermediate: ['ffn_dim'] },
  attention: { self: { heads: keys.heads } },
  weights: [
    { match: 'self_attn.q_proj', role: 'attn.q' },
    { match: 'self_attn.k_proj', role: 'attn.k' },
    { match: 'self_attn.v_proj', role: 'attn.v' },
    { match: 'self_attn.out_proj', role: 'attn.out' },
    { match: 'fc1', role: 'mlp.up' },
    { match: 'fc2', role: 'mlp.down' },
    { match: 'self_attn_layer_norm', role: 'norm' },
    { match: 'final_layer_norm', role: 'norm' },
    { match: 'embed_tokens', role: 'embed' },
    { match: 'embed_positions', role: 'pos_embed' },
    { match: 'project_in', role: 'other' },
    { match: 'project_out', role: 'other' },
    { match: 'lm_head', role: 'lm_head' },
  ],
};

export const xglm: FamilyDescriptor = {
  modelType: 'xglm',
  title: 'XGLM',
  kind: 'causal',
  tieDefault: true,
  config: { hidden: ['d_model'], layers: ['num_layers'], vocab: keys.vocab, intermediate: ['ffn_dim'] },
  attention: { self: { heads: ['attention_heads'] } },
  weights: [...opt.weights.filter((r) => r.match !== 'embed_positions'), { match: 'layer_norm', role: 'norm' }, { match: 'embed_positions', role: 'buffer' }],
};

export const gptFamily: readonly FamilyDescriptor[] = [gpt2, openaiGpt, gptBigcode, gptj, codegen, gptNeo, gptNeox, bloom, falcon, mpt, phi, opt, xglm];
