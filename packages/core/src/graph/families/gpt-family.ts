/** GPT-style decoders with fused or legacy layouts. families.md §4.2. */
import type { ConfigReader, FamilyDescriptor, WeightRule } from '../descriptor.js';
import type { DecoderSpec } from '../decoder-spec.js';
import { activationOf, gpt2Config, keys, multiQuery, ropeScalingOf, tokenIds } from './templates.js';

const gptEdges: readonly WeightRule[] = [
  { match: 'wte', role: 'embed' },
  { match: 'wpe', role: 'pos_embed' },
  { match: 'ln_1', role: 'norm', slot: 'attn_norm' },
  { match: 'ln_2', role: 'norm', slot: 'mlp_norm' },
  { match: 'ln_f', role: 'norm', slot: 'final_norm' },
  { match: 'lm_head', role: 'lm_head' },
  { match: 'attn.bias', role: 'buffer' },
  { match: 'attn.masked_bias', role: 'buffer' },
  { match: 'attn.causal_mask', role: 'buffer' },
];

/** LayerNorm decoders: the common part of the GPT-style specs. */
function gptDecoder(c: ConfigReader, fields: Omit<DecoderSpec, 'norm' | 'normPlacement' | 'residual'> & Partial<DecoderSpec>, epsKeys: string[] = ['layer_norm_epsilon']): DecoderSpec {
  return { norm: { kind: 'layer', eps: c.number(epsKeys) ?? 1e-5 }, normPlacement: 'pre', residual: 'sequential', ...tokenIds(c), ...fields };
}

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
  decoder: (c) =>
    gptDecoder(c, {
      positions: 'learned',
      mlp: { activation: activationOf(c, ['activation_function'], 'gelu_new'), gated: false },
      ...(c.bool('scale_attn_weights') === false ? { attentionScale: 'none' as const } : {}),
      ...(c.bool('scale_attn_by_inverse_layer_idx') === true ? { scaleByLayer: true } : {}),
    }),
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
  // post-norm: x = ln_1(x + attn(x)); x = ln_2(x + mlp(x)); no final norm. Its "gelu" is the tanh form.
  decoder: (c) =>
    gptDecoder(c, { normPlacement: 'post', positions: 'learned', mlp: { activation: activationOf(c, ['afn'], 'gelu', { gelu: 'gelu_tanh' }), gated: false } }),
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
  decoder: (c) =>
    gptDecoder(c, {
      positions: 'learned',
      mlp: { activation: activationOf(c, ['activation_function'], 'gelu_pytorch_tanh'), gated: false },
      ...(c.bool('scale_attn_weights') === false ? { attentionScale: 'none' as const } : {}),
    }),
};

/** GPT-J and CodeGen: one norm, attention and MLP in parallel, rotary on even/odd pairs of rotary_dim. */
const gptjDecoder = (c: ConfigReader): DecoderSpec =>
  gptDecoder(c, {
    residual: 'parallel',
    positions: 'rope',
    rope: { theta: 10000, rotaryDim: c.number(['rotary_dim']) ?? { fraction: 1 }, style: 'interleaved' },
    mlp: { activation: activationOf(c, ['activation_function'], 'gelu_new'), gated: false },
  });

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
  decoder: gptjDecoder,
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
  decoder: gptjDecoder,
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
  // GPT-Neo does not scale q·k; its "local" layers see only the last window_size positions.
  decoder: (c) => {
    const layers = (c.value('attention_layers') as string[] | undefined) ?? [];
    const window = c.number(['window_size']) ?? 256;
    return gptDecoder(c, {
      positions: 'learned',
      attentionScale: 'none',
      window: (layer: number) => (layers[layer] === 'local' ? window : undefined),
      mlp: { activation: activationOf(c, ['activation_function'], 'gelu_new'), gated: false },
    });
  },
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
    { match: 'input_layernorm', role: 'norm', slot: 'attn_norm' },
    { match: 'post_attention_layernorm', role: 'norm', slot: 'mlp_norm' },
    { match: 'final_layer_norm', role: 'norm', slot: 'final_norm' },
    { match: 'embed_in', role: 'embed' },
    { match: 'embed_out', role: 'lm_head' },
    { match: 'rotary_emb', role: 'buffer' },
  ],
  decoder: (c) =>
    gptDecoder(
      c,
      {
        residual: c.bool('use_parallel_residual') === false ? 'sequential' : 'parallel',
        positions: 'rope',
        rope: {
          theta: c.number(['rope_theta', 'rotary_emb_base']) ?? 10000,
          rotaryDim: { fraction: c.number(['partial_rotary_factor', 'rotary_pct']) ?? 0.25 },
          style: 'half',
          ...(ropeScalingOf(c) ? { scaling: ropeScalingOf(c)! } : {}),
        },
        mlp: { activation: activationOf(c, ['hidden_act'], 'gelu'), gated: false },
      },
      ['layer_norm_eps'],
    ),
};

const bloomLayer: readonly WeightRule[] = [
  { match: 'self_attention.dense', role: 'attn.out' },
  { match: 'mlp.dense_h_to_4h', role: 'mlp.up' },
  { match: 'mlp.dense_4h_to_h', role: 'mlp.down' },
  { match: 'input_layernorm', role: 'norm', slot: 'attn_norm' },
  { match: 'post_attention_layernorm', role: 'norm', slot: 'mlp_norm' },
  { match: 'ln_attn', role: 'norm', slot: 'attn_norm' },
  { match: 'ln_mlp', role: 'norm', slot: 'mlp_norm' },
  { match: 'ln_f', role: 'norm', slot: 'final_norm' },
  { match: 'word_embeddings', role: 'embed' },
  { match: 'word_embeddings_layernorm', role: 'norm', slot: 'embed_norm' },
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
  // ALiBi added to the scaled q·k; gelu is BLOOM's tanh approximation.
  decoder: (c) => gptDecoder(c, { positions: 'alibi', alibi: { kind: 'bloom' }, mlp: { activation: 'gelu_tanh', gated: false } }),
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
  // parallel_attn and the new architecture run attention and MLP side by side; Falcon scales q·k + ALiBi together.
  decoder: (c) =>
    gptDecoder(c, {
      residual: c.bool('parallel_attn') === true || c.bool('new_decoder_architecture') === true ? 'parallel' : 'sequential',
      ...(c.bool('alibi') === true
        ? { positions: 'alibi' as const, alibi: { kind: 'bloom' as const, scaled: true } }
        : {
            positions: 'rope' as const,
            rope: { theta: c.number(['rope_theta']) ?? 10000, rotaryDim: { fraction: 1 }, style: 'half' as const, ...(ropeScalingOf(c) ? { scaling: ropeScalingOf(c)! } : {}) },
          }),
      mlp: { activation: activationOf(c, ['activation'], 'gelu'), gated: false },
    }),
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
    { match: 'norm_1', role: 'norm', slot: 'attn_norm' },
    { match: 'norm_2', role: 'norm', slot: 'mlp_norm' },
    { match: 'norm_f', role: 'norm', slot: 'final_norm' },
    { match: 'wte', role: 'embed' },
    { match: 'wpe', role: 'pos_embed' },
  ],
  decoder: (c) => {
    const clip = c.number(['attn_config.clip_qkv']);
    const scale = c.number(['attn_config.softmax_scale']);
    return gptDecoder(c, {
      positions: 'alibi',
      alibi: { kind: 'mpt', maxBias: c.number(['attn_config.alibi_bias_max']) ?? 8 },
      mlp: { activation: 'gelu', gated: false },
      ...(clip !== undefined ? { clipQkv: clip } : {}),
      ...(scale !== undefined ? { attentionScale: scale } : {}),
    });
  },
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
    { match: 'self_attn.q_layernorm', role: 'attn.head_norm', slot: 'q_norm' },
    { match: 'self_attn.k_layernorm', role: 'attn.head_norm', slot: 'k_norm' },
    { match: 'mlp.fc1', role: 'mlp.up' },
    { match: 'mlp.fc2', role: 'mlp.down' },
    { match: 'input_layernorm', role: 'norm', slot: 'attn_norm' },
    { match: 'final_layernorm', role: 'norm', slot: 'final_norm' },
    { match: 'embed_tokens', role: 'embed' },
    { match: 'lm_head', role: 'lm_head' },
    { match: 'rotary_emb', role: 'buffer' },
  ],
  decoder: (c) =>
    gptDecoder(
      c,
      {
        residual: 'parallel',
        positions: 'rope',
        rope: {
          theta: c.number(['rope_theta']) ?? 10000,
          rotaryDim: { fraction: c.number(['partial_rotary_factor']) ?? 0.5 },
          style: 'half',
          ...(ropeScalingOf(c) ? { scaling: ropeScalingOf(c)! } : {}),
        },
        mlp: { activation: activationOf(c, ['hidden_act'], 'gelu_new'), gated: false },
      },
      ['layer_norm_eps'],
    ),
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
    { match: 'self_attn_layer_norm', role: 'norm', slot: 'attn_norm' },
    { match: 'layers.#.final_layer_norm', role: 'norm', slot: 'mlp_norm' },
    { match: 'final_layer_norm', role: 'norm', slot: 'final_norm' },
    { match: 'embed_tokens', role: 'embed' },
    { match: 'embed_positions', role: 'pos_embed' },
    { match: 'project_in', role: 'other', slot: 'project_in' },
    { match: 'project_out', role: 'other', slot: 'project_out' },
    { match: 'lm_head', role: 'lm_head' },
  ],
  // learned positions start at 2; do_layer_norm_before=false (OPT-350m) puts the norms after the residual
  decoder: (c) =>
    gptDecoder(c, {
      normPlacement: c.bool('do_layer_norm_before') === false ? 'post' : 'pre',
      positions: 'learned',
      positionOffset: 2,
      mlp: { activation: activationOf(c, ['activation_function'], 'relu'), gated: false },
    }),
};

export const xglm: FamilyDescriptor = {
  modelType: 'xglm',
  title: 'XGLM',
  kind: 'causal',
  tieDefault: true,
  config: { hidden: ['d_model'], layers: ['num_layers'], vocab: keys.vocab, intermediate: ['ffn_dim'] },
  attention: { self: { heads: ['attention_heads'] } },
  weights: [
    ...opt.weights.filter((r) => r.match !== 'embed_positions'),
    { match: 'model.layer_norm', role: 'norm', slot: 'final_norm' },
    { match: 'embed_positions', role: 'buffer' },
  ],
  // sinusoidal positions (fairseq style) from position 2; embeddings scaled by sqrt(d_model)
  decoder: (c) =>
    gptDecoder(c, {
      positions: 'sinusoidal',
      positionOffset: 2,
      embedScale: c.bool('scale_embedding') === false ? 1 : Math.sqrt(c.number(['d_model'])!),
      mlp: { activation: activationOf(c, ['activation_function'], 'gelu'), gated: false },
    }),
};

export const gptFamily: readonly FamilyDescriptor[] = [gpt2, openaiGpt, gptBigcode, gptj, codegen, gptNeo, gptNeox, bloom, falcon, mpt, phi, opt, xglm];
