/**
 * GPT-style decoders: each family's own module names and fused layouts, as save_pretrained writes
 * them in transformers 4.57.6 (buffers such as `attn.bias` and rotary tables are not saved).
 */
import { float, type PyObject } from '../json.js';
import { conv1d, embedding, lmHead, linear, norm, perLayer, type Dims, type FamilySpec } from './types.js';

/** The GPT-2 style geometry keys (gpt2, openai-gpt, gptj, codegen, gpt_bigcode). */
const gptKeys = (d: Dims): PyObject => ({
  initializer_range: float(0.02),
  layer_norm_epsilon: float(1e-5),
  n_embd: d.hidden,
  n_head: d.heads,
  n_layer: d.layers,
  n_positions: d.maxPositions,
  vocab_size: d.vocab,
});

/** The sequence-summary head settings GPT-2 and OpenAI GPT configs carry (unused by the LM head). */
const summaryKeys: PyObject = {
  summary_activation: null,
  summary_first_dropout: float(0.1),
  summary_proj_to_labels: true,
  summary_type: 'cls_index',
  summary_use_proj: true,
};

const bosEos = () => ({ bos: 1, eos: 2 });
const evenRotary = (what: string, dims: number) => (dims % 2 === 0 && dims > 0 ? undefined : `${what} = ${dims} must be a positive even number of rotary dimensions`);

export const gptFamilies: readonly FamilySpec[] = [
  {
    modelType: 'gpt_neox',
    rotary: true,
    architecture: 'GPTNeoXForCausalLM',
    summary: 'GPT-NeoX / Pythia: per-head interleaved query_key_value, parallel residual, rotary_pct 0.25',
    attention: 'mha',
    tieDefault: false,
    tieKey: true,
    special: () => ({ bos: 0, eos: 2 }),
    check: (d) => evenRotary('head_dim × rotary_pct (0.25)', Math.floor(d.headDim * 0.25)),
    config: (d) => ({
      attention_bias: true,
      attention_dropout: float(0),
      classifier_dropout: float(0.1),
      hidden_act: 'gelu',
      hidden_dropout: float(0),
      hidden_size: d.hidden,
      initializer_range: float(0.02),
      intermediate_size: d.intermediate,
      layer_norm_eps: float(1e-5),
      max_position_embeddings: d.maxPositions,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      partial_rotary_factor: float(0.25),
      rope_scaling: null,
      // GPTNeoXConfig stores the integer default here, unlike the other families' 10000.0
      rope_theta: 10000,
      rotary_emb_base: 10000,
      rotary_pct: float(0.25),
      use_cache: true,
      use_parallel_residual: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('gpt_neox.embed_in', d.vocab, d.hidden),
      ...perLayer(d, (i) => {
        const p = `gpt_neox.layers.${i}`;
        return [
          ...norm(`${p}.input_layernorm`, d.hidden, true),
          ...norm(`${p}.post_attention_layernorm`, d.hidden, true),
          ...linear(`${p}.attention.query_key_value`, 3 * d.hidden, d.hidden, true),
          ...linear(`${p}.attention.dense`, d.hidden, d.hidden, true),
          ...linear(`${p}.mlp.dense_h_to_4h`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.dense_4h_to_h`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('gpt_neox.final_layer_norm', d.hidden, true),
      ...lmHead(d, 'embed_out'),
    ],
  },
  {
    modelType: 'opt',
    architecture: 'OPTForCausalLM',
    summary: 'OPT: learned positions with offset 2 (max_positions + 2 rows), relu',
    attention: 'mha',
    tieDefault: true,
    tieKey: false,
    special: () => ({ pad: 1, bos: 2, eos: 2 }),
    addBos: true,
    config: (d) => ({
      _remove_final_layer_norm: false,
      activation_function: 'relu',
      attention_dropout: float(0),
      do_layer_norm_before: true,
      dropout: float(0.1),
      enable_bias: true,
      ffn_dim: d.intermediate,
      hidden_size: d.hidden,
      init_std: float(0.02),
      layer_norm_elementwise_affine: true,
      layerdrop: float(0),
      max_position_embeddings: d.maxPositions,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      use_cache: true,
      vocab_size: d.vocab,
      word_embed_proj_dim: d.hidden,
    }),
    tensors: (d) => [
      ...embedding('model.decoder.embed_tokens', d.vocab, d.hidden),
      ...embedding('model.decoder.embed_positions', d.maxPositions + 2, d.hidden),
      ...perLayer(d, (i) => {
        const p = `model.decoder.layers.${i}`;
        return [
          ...linear(`${p}.self_attn.k_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.v_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.q_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.out_proj`, d.hidden, d.hidden, true),
          ...norm(`${p}.self_attn_layer_norm`, d.hidden, true),
          ...linear(`${p}.fc1`, d.intermediate, d.hidden, true),
          ...linear(`${p}.fc2`, d.hidden, d.intermediate, true),
          ...norm(`${p}.final_layer_norm`, d.hidden, true),
        ];
      }),
      ...norm('model.decoder.final_layer_norm', d.hidden, true),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'bloom',
    architecture: 'BloomForCausalLM',
    summary: 'BLOOM: ALiBi, per-head interleaved query_key_value, MLP fixed at 4 × hidden',
    attention: 'mha',
    mlp: '4x',
    tieDefault: true,
    tieKey: false,
    special: () => ({ bos: 1, eos: 2, pad: 3 }),
    config: (d) => ({
      apply_residual_connection_post_layernorm: false,
      attention_dropout: float(0),
      hidden_dropout: float(0),
      hidden_size: d.hidden,
      initializer_range: float(0.02),
      layer_norm_epsilon: float(1e-5),
      n_head: d.heads,
      n_layer: d.layers,
      pretraining_tp: 1,
      slow_but_exact: false,
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('transformer.word_embeddings', d.vocab, d.hidden),
      ...norm('transformer.word_embeddings_layernorm', d.hidden, true),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.input_layernorm`, d.hidden, true),
          ...linear(`${p}.self_attention.query_key_value`, 3 * d.hidden, d.hidden, true),
          ...linear(`${p}.self_attention.dense`, d.hidden, d.hidden, true),
          ...norm(`${p}.post_attention_layernorm`, d.hidden, true),
          ...linear(`${p}.mlp.dense_h_to_4h`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.dense_4h_to_h`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'falcon',
    architecture: 'FalconForCausalLM',
    summary: 'Falcon: three query_key_value layouts, chosen by variant',
    attention: 'mqa',
    defaultVariant: 'multi_query',
    variants: {
      multi_query: {
        summary: 'Falcon-7B style: one kv head [Q; K; V], parallel attention, one input_layernorm, no biases',
        attention: 'mqa',
        rotary: true,
        flags: { alibi: false, bias: false, multiQuery: true, newArch: false, parallelAttn: true },
      },
      new_arch: {
        summary: 'Falcon-40B/180B style: grouped kv heads [q…, k, v] per group, ln_attn + ln_mlp',
        attention: 'gqa',
        rotary: true,
        flags: { alibi: false, bias: false, multiQuery: true, newArch: true, parallelAttn: true },
      },
      alibi_mha: {
        summary: 'Falcon-RW style: ALiBi, full multi-head per-head interleaved qkv, sequential block, biases',
        attention: 'mha',
        flags: { alibi: true, bias: true, multiQuery: false, newArch: false, parallelAttn: false },
      },
    },
    tieDefault: true,
    tieKey: false,
    defaults: (hidden) => ({ intermediate: 4 * hidden }),
    special: bosEos,
    config: (d) => ({
      activation: 'gelu',
      alibi: d.flags['alibi'] === true,
      attention_dropout: float(0),
      bias: d.flags['bias'] === true,
      ffn_hidden_size: d.intermediate,
      hidden_dropout: float(0),
      hidden_size: d.hidden,
      initializer_range: float(0.02),
      layer_norm_epsilon: float(1e-5),
      max_position_embeddings: d.maxPositions,
      multi_query: d.flags['multiQuery'] === true,
      new_decoder_architecture: d.flags['newArch'] === true,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      // read only by the new architecture; the others keep the default (= heads)
      num_kv_heads: d.flags['newArch'] === true ? d.kvHeads : d.heads,
      num_ln_in_parallel_attn: d.flags['newArch'] === true ? 2 : null,
      parallel_attn: d.flags['parallelAttn'] === true,
      rope_scaling: null,
      rope_theta: float(10000),
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => {
      const bias = d.flags['bias'] === true;
      const norms = (p: string) =>
        d.flags['newArch'] === true
          ? [...norm(`${p}.ln_attn`, d.hidden, true), ...norm(`${p}.ln_mlp`, d.hidden, true)]
          : d.flags['parallelAttn'] === true
            ? norm(`${p}.input_layernorm`, d.hidden, true)
            : [...norm(`${p}.input_layernorm`, d.hidden, true), ...norm(`${p}.post_attention_layernorm`, d.hidden, true)];
      return [
        ...embedding('transformer.word_embeddings', d.vocab, d.hidden),
        ...perLayer(d, (i) => {
          const p = `transformer.h.${i}`;
          return [
            ...norms(p),
            ...linear(`${p}.self_attention.query_key_value`, (d.heads + 2 * d.kvHeads) * d.headDim, d.hidden, bias),
            ...linear(`${p}.self_attention.dense`, d.hidden, d.hidden, bias),
            ...linear(`${p}.mlp.dense_h_to_4h`, d.intermediate, d.hidden, bias),
            ...linear(`${p}.mlp.dense_4h_to_h`, d.hidden, d.intermediate, bias),
          ];
        }),
        ...norm('transformer.ln_f', d.hidden, true),
        ...lmHead(d),
      ];
    },
  },
  {
    modelType: 'gptj',
    rotary: true,
    architecture: 'GPTJForCausalLM',
    summary: 'GPT-J: parallel block, partial rotary (rotary_dim = head_dim / 2), lm_head bias',
    attention: 'mha',
    tieDefault: false,
    tieKey: true,
    special: bosEos,
    check: (d) => evenRotary('rotary_dim (head_dim / 2)', d.headDim / 2),
    config: (d) => ({
      ...gptKeys(d),
      activation_function: 'gelu_new',
      attn_pdrop: float(0),
      embd_pdrop: float(0),
      n_inner: d.intermediate,
      resid_pdrop: float(0),
      rotary_dim: d.headDim / 2,
      use_cache: true,
    }),
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...linear(`${p}.attn.k_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.v_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.q_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.out_proj`, d.hidden, d.hidden),
          ...linear(`${p}.mlp.fc_in`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.fc_out`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d, 'lm_head', true),
    ],
  },
  {
    modelType: 'gpt_neo',
    architecture: 'GPTNeoForCausalLM',
    summary: 'GPT-Neo: alternating global/local attention (window 4), nn.Linear c_fc/c_proj',
    attention: 'mha',
    tieDefault: true,
    tieKey: false,
    special: bosEos,
    config: (d) => {
      const types = Array.from({ length: d.layers }, (_, i) => (i % 2 === 0 ? 'global' : 'local'));
      const pairs = Math.floor(d.layers / 2);
      return {
        activation_function: 'gelu_new',
        attention_dropout: float(0),
        attention_layers: types,
        attention_types: [...(pairs > 0 ? [[['global', 'local'], pairs]] : []), ...(d.layers % 2 === 1 ? [[['global'], 1]] : [])],
        classifier_dropout: float(0.1),
        embed_dropout: float(0),
        hidden_size: d.hidden,
        initializer_range: float(0.02),
        intermediate_size: d.intermediate,
        layer_norm_epsilon: float(1e-5),
        max_position_embeddings: d.maxPositions,
        num_heads: d.heads,
        num_layers: d.layers,
        resid_dropout: float(0),
        use_cache: true,
        vocab_size: d.vocab,
        window_size: 4,
      };
    },
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...embedding('transformer.wpe', d.maxPositions, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...linear(`${p}.attn.attention.k_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.attention.v_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.attention.q_proj`, d.hidden, d.hidden),
          ...linear(`${p}.attn.attention.out_proj`, d.hidden, d.hidden, true),
          ...norm(`${p}.ln_2`, d.hidden, true),
          ...linear(`${p}.mlp.c_fc`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.c_proj`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'gpt2',
    architecture: 'GPT2LMHeadModel',
    summary: 'GPT-2: Conv1D weights stored [in, out], learned positions, tied',
    attention: 'mha',
    tieDefault: true,
    tieKey: false,
    special: bosEos,
    config: (d) => ({
      ...gptKeys(d),
      ...summaryKeys,
      activation_function: 'gelu_new',
      attn_pdrop: float(0.1),
      embd_pdrop: float(0.1),
      n_inner: d.intermediate,
      reorder_and_upcast_attn: false,
      resid_pdrop: float(0.1),
      scale_attn_by_inverse_layer_idx: false,
      scale_attn_weights: true,
      use_cache: true,
    }),
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...embedding('transformer.wpe', d.maxPositions, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...conv1d(`${p}.attn.c_attn`, d.hidden, 3 * d.hidden),
          ...conv1d(`${p}.attn.c_proj`, d.hidden, d.hidden),
          ...norm(`${p}.ln_2`, d.hidden, true),
          ...conv1d(`${p}.mlp.c_fc`, d.hidden, d.intermediate),
          ...conv1d(`${p}.mlp.c_proj`, d.intermediate, d.hidden),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'openai-gpt',
    architecture: 'OpenAIGPTLMHeadModel',
    summary: 'OpenAI GPT: post-LN, Conv1D [in, out], MLP fixed at 4 × hidden, no bos/eos',
    attention: 'mha',
    mlp: '4x',
    tieDefault: true,
    tieKey: false,
    special: () => ({}),
    config: (d) => ({
      ...gptKeys(d),
      ...summaryKeys,
      afn: 'gelu',
      attn_pdrop: float(0.1),
      embd_pdrop: float(0.1),
      resid_pdrop: float(0.1),
    }),
    tensors: (d) => [
      ...embedding('transformer.tokens_embed', d.vocab, d.hidden),
      ...embedding('transformer.positions_embed', d.maxPositions, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...conv1d(`${p}.attn.c_attn`, d.hidden, 3 * d.hidden),
          ...conv1d(`${p}.attn.c_proj`, d.hidden, d.hidden),
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...conv1d(`${p}.mlp.c_fc`, d.hidden, d.intermediate),
          ...conv1d(`${p}.mlp.c_proj`, d.intermediate, d.hidden),
          ...norm(`${p}.ln_2`, d.hidden, true),
        ];
      }),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'gpt_bigcode',
    architecture: 'GPTBigCodeForCausalLM',
    summary: 'GPT-BigCode (StarCoder): nn.Linear c_attn, [Q; K; V] multi-query or per-head interleaved',
    attention: 'mqa',
    defaultVariant: 'mqa',
    variants: {
      mqa: { summary: 'multi_query: one kv head, c_attn [Q; K; V] of H + 2·head_dim rows', attention: 'mqa', flags: { multiQuery: true } },
      mha: { summary: 'multi_query false: full multi-head, c_attn per-head interleaved [q, k, v]', attention: 'mha', flags: { multiQuery: false } },
    },
    tieDefault: true,
    tieKey: false,
    special: bosEos,
    config: (d) => ({
      ...gptKeys(d),
      activation_function: 'gelu_pytorch_tanh',
      attention_softmax_in_fp32: true,
      attn_pdrop: float(0.1),
      embd_pdrop: float(0.1),
      multi_query: d.flags['multiQuery'] === true,
      n_inner: d.intermediate,
      num_key_value_heads: d.kvHeads,
      resid_pdrop: float(0.1),
      scale_attention_softmax_in_fp32: true,
      scale_attn_weights: true,
      use_cache: true,
    }),
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...embedding('transformer.wpe', d.maxPositions, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...linear(`${p}.attn.c_attn`, d.hidden + 2 * d.kvHeads * d.headDim, d.hidden, true),
          ...linear(`${p}.attn.c_proj`, d.hidden, d.hidden, true),
          ...norm(`${p}.ln_2`, d.hidden, true),
          ...linear(`${p}.mlp.c_fc`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.c_proj`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'mpt',
    architecture: 'MptForCausalLM',
    summary: 'MPT: ALiBi, Wqkv [Q; K; V], bias-free LayerNorm, MLP fixed at 4 × hidden',
    attention: 'mha',
    mlp: '4x',
    tieDefault: true,
    tieKey: false,
    special: bosEos,
    config: (d) => ({
      attn_config: {
        alibi: true,
        alibi_bias_max: 8,
        attn_impl: 'torch',
        attn_pdrop: 0,
        attn_type: 'multihead_attention',
        attn_uses_sequence_id: false,
        clip_qkv: null,
        model_type: '',
        prefix_lm: false,
        qk_ln: false,
        softmax_scale: null,
      },
      d_model: d.hidden,
      emb_pdrop: float(0),
      embedding_fraction: float(1),
      // HF's MptMLP is always 4 × d_model and ignores this key; 4 keeps the config honest
      expansion_ratio: 4,
      init_device: 'cpu',
      initializer_range: float(0.02),
      layer_norm_epsilon: float(1e-5),
      learned_pos_emb: true,
      logit_scale: null,
      max_seq_len: d.maxPositions,
      n_heads: d.heads,
      n_layers: d.layers,
      no_bias: true,
      norm_type: 'low_precision_layernorm',
      resid_pdrop: float(0),
      use_cache: false,
      verbose: 0,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.blocks.${i}`;
        return [
          ...norm(`${p}.norm_1`, d.hidden, false),
          ...linear(`${p}.attn.Wqkv`, 3 * d.hidden, d.hidden),
          ...linear(`${p}.attn.out_proj`, d.hidden, d.hidden),
          ...norm(`${p}.norm_2`, d.hidden, false),
          ...linear(`${p}.ffn.up_proj`, d.intermediate, d.hidden),
          ...linear(`${p}.ffn.down_proj`, d.hidden, d.intermediate),
        ];
      }),
      ...norm('transformer.norm_f', d.hidden, false),
      ...lmHead(d),
    ],
  },
  {
    modelType: 'phi',
    rotary: true,
    architecture: 'PhiForCausalLM',
    summary: 'Phi-1/1.5/2: parallel block, partial_rotary_factor 0.5, biases everywhere, lm_head bias',
    // PhiAttention reads num_key_value_heads, but real Phi checkpoints (and the golden one) are MHA
    attention: 'gqa',
    kvDefault: 'heads',
    tieDefault: false,
    tieKey: true,
    special: bosEos,
    check: (d) => evenRotary('head_dim × partial_rotary_factor (0.5)', Math.floor(d.headDim * 0.5)),
    config: (d) => ({
      attention_dropout: float(0),
      embd_pdrop: float(0),
      hidden_act: 'gelu_new',
      hidden_size: d.hidden,
      initializer_range: float(0.02),
      intermediate_size: d.intermediate,
      layer_norm_eps: float(1e-5),
      max_position_embeddings: d.maxPositions,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      num_key_value_heads: d.kvHeads,
      partial_rotary_factor: float(0.5),
      qk_layernorm: false,
      resid_pdrop: float(0),
      rope_scaling: null,
      rope_theta: float(10000),
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('model.embed_tokens', d.vocab, d.hidden),
      ...perLayer(d, (i) => {
        const p = `model.layers.${i}`;
        const kv = d.kvHeads * d.headDim;
        return [
          ...norm(`${p}.input_layernorm`, d.hidden, true),
          ...linear(`${p}.self_attn.q_proj`, d.heads * d.headDim, d.hidden, true),
          ...linear(`${p}.self_attn.k_proj`, kv, d.hidden, true),
          ...linear(`${p}.self_attn.v_proj`, kv, d.hidden, true),
          ...linear(`${p}.self_attn.dense`, d.hidden, d.heads * d.headDim, true),
          ...linear(`${p}.mlp.fc1`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.fc2`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('model.final_layernorm', d.hidden, true),
      ...lmHead(d, 'lm_head', true),
    ],
  },
  {
    modelType: 'codegen',
    rotary: true,
    architecture: 'CodeGenForCausalLM',
    summary: 'CodeGen: qkv_proj in 4 blocks of [q; v; k] (heads % 4 = 0), rotary_dim = head_dim / 2',
    attention: 'mha',
    tieDefault: false,
    tieKey: true,
    special: bosEos,
    check: (d) =>
      d.heads % 4 !== 0 ? `codegen needs heads divisible by 4 (its qkv_proj is 4 blocks, mp_num = 4), got ${d.heads}` : evenRotary('rotary_dim (head_dim / 2)', d.headDim / 2),
    config: (d) => ({
      ...gptKeys(d),
      activation_function: 'gelu_new',
      attn_pdrop: float(0),
      embd_pdrop: float(0),
      n_ctx: d.maxPositions,
      n_inner: d.intermediate,
      resid_pdrop: float(0),
      rotary_dim: d.headDim / 2,
      use_cache: true,
    }),
    tensors: (d) => [
      ...embedding('transformer.wte', d.vocab, d.hidden),
      ...perLayer(d, (i) => {
        const p = `transformer.h.${i}`;
        return [
          ...norm(`${p}.ln_1`, d.hidden, true),
          ...linear(`${p}.attn.qkv_proj`, 3 * d.hidden, d.hidden),
          ...linear(`${p}.attn.out_proj`, d.hidden, d.hidden),
          ...linear(`${p}.mlp.fc_in`, d.intermediate, d.hidden, true),
          ...linear(`${p}.mlp.fc_out`, d.hidden, d.intermediate, true),
        ];
      }),
      ...norm('transformer.ln_f', d.hidden, true),
      ...lmHead(d, 'lm_head', true),
    ],
  },
  {
    modelType: 'xglm',
    architecture: 'XGLMForCausalLM',
    summary: 'XGLM: sinusoidal positions (not stored), embeddings × sqrt(d_model)',
    attention: 'mha',
    tieDefault: true,
    tieKey: false,
    special: () => ({ bos: 0, pad: 1, eos: 2, decoderStart: 2 }),
    config: (d) => ({
      activation_dropout: float(0),
      activation_function: 'gelu',
      attention_dropout: float(0.1),
      attention_heads: d.heads,
      d_model: d.hidden,
      dropout: float(0.1),
      ffn_dim: d.intermediate,
      init_std: float(0.02),
      layerdrop: float(0),
      max_position_embeddings: d.maxPositions,
      num_layers: d.layers,
      scale_embedding: true,
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('model.embed_tokens', d.vocab, d.hidden, 1 / Math.sqrt(d.hidden)),
      ...perLayer(d, (i) => {
        const p = `model.layers.${i}`;
        return [
          ...linear(`${p}.self_attn.k_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.v_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.q_proj`, d.hidden, d.hidden, true),
          ...linear(`${p}.self_attn.out_proj`, d.hidden, d.hidden, true),
          ...norm(`${p}.self_attn_layer_norm`, d.hidden, true),
          ...linear(`${p}.fc1`, d.intermediate, d.hidden, true),
          ...linear(`${p}.fc2`, d.hidden, d.intermediate, true),
          ...norm(`${p}.final_layer_norm`, d.hidden, true),
        ];
      }),
      ...norm('model.layer_norm', d.hidden, true),
      ...lmHead(d),
    ],
  },
];
