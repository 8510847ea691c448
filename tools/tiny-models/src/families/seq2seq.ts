/**
 * Encoder–decoders as save_pretrained writes them in transformers 4.57.6: T5 (v1.1 style by default:
 * gated-GELU MLP and an untied LM head, like google/t5-v1_1-small; `--variant v1_0` for ReLU) and BART
 * (learned positions with their offset of 2, layernorm_embedding, final_logits_bias, tied LM head).
 * Tied weights (T5's encoder/decoder embed_tokens, BART's) are not on disk.
 */
import { float } from '../json.js';
import { embedding, linear, norm, perLayer, type Dims, type FamilySpec, type TensorSpec } from './types.js';

/** One T5 attention sub-layer (no biases); block 0 also holds the relative-bias table [buckets, heads]. */
function t5Attention(p: string, d: Dims, bias: boolean): TensorSpec[] {
  const inner = d.heads * d.headDim;
  return [
    ...linear(`${p}.q`, inner, d.hidden),
    ...linear(`${p}.k`, inner, d.hidden),
    ...linear(`${p}.v`, inner, d.hidden),
    ...linear(`${p}.o`, d.hidden, inner),
    ...(bias ? [{ name: `${p}.relative_attention_bias.weight`, shape: [32, d.heads], mean: 0, std: 1 }] : []),
  ];
}

function t5Mlp(p: string, d: Dims): TensorSpec[] {
  const gated = d.flags['gated'] === true;
  return [
    ...(gated ? [...linear(`${p}.DenseReluDense.wi_0`, d.intermediate, d.hidden), ...linear(`${p}.DenseReluDense.wi_1`, d.intermediate, d.hidden)] : linear(`${p}.DenseReluDense.wi`, d.intermediate, d.hidden)),
    ...linear(`${p}.DenseReluDense.wo`, d.hidden, d.intermediate),
    ...norm(`${p}.layer_norm`, d.hidden, false),
  ];
}

function bartAttention(p: string, d: Dims): TensorSpec[] {
  return ['q_proj', 'k_proj', 'v_proj', 'out_proj'].flatMap((m) => linear(`${p}.${m}`, d.hidden, d.hidden, true));
}

export const seq2seqFamilies: readonly FamilySpec[] = [
  {
    modelType: 't5',
    architecture: 'T5ForConditionalGeneration',
    summary: 'T5 encoder–decoder: relative position bias, RMS norms, unscaled attention',
    attention: 'mha',
    headDim: 'free',
    defaultVariant: 'v1_1',
    variants: {
      v1_1: { summary: 'T5 v1.1 / FLAN style: gated-GELU MLP (wi_0, wi_1)', attention: 'mha', flags: { gated: true } },
      v1_0: { summary: 'original T5: ReLU MLP (wi)', attention: 'mha', flags: { gated: false } },
    },
    // T5ForConditionalGeneration ties by default; v1.1 checkpoints write tie_word_embeddings: false
    tieDefault: false,
    tieKey: true,
    special: () => ({ pad: 0, eos: 1, decoderStart: 0 }),
    tokenNames: { pad: '<pad>', eos: '</s>', unk: '<unk>' },
    config: (d) => ({
      classifier_dropout: float(0),
      d_ff: d.intermediate,
      d_kv: d.headDim,
      d_model: d.hidden,
      dense_act_fn: d.flags['gated'] === true ? 'gelu_new' : 'relu',
      dropout_rate: float(0.1),
      feed_forward_proj: d.flags['gated'] === true ? 'gated-gelu' : 'relu',
      initializer_factor: float(1),
      is_encoder_decoder: true,
      is_gated_act: d.flags['gated'] === true,
      layer_norm_epsilon: float(1e-6),
      num_decoder_layers: d.layers,
      num_heads: d.heads,
      num_layers: d.layers,
      relative_attention_max_distance: 128,
      relative_attention_num_buckets: 32,
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => [
      ...embedding('shared', d.vocab, d.hidden),
      ...perLayer(d, (i) => [
        ...t5Attention(`encoder.block.${i}.layer.0.SelfAttention`, d, i === 0),
        ...norm(`encoder.block.${i}.layer.0.layer_norm`, d.hidden, false),
        ...t5Mlp(`encoder.block.${i}.layer.1`, d),
      ]),
      ...norm('encoder.final_layer_norm', d.hidden, false),
      ...perLayer(d, (i) => [
        ...t5Attention(`decoder.block.${i}.layer.0.SelfAttention`, d, i === 0),
        ...norm(`decoder.block.${i}.layer.0.layer_norm`, d.hidden, false),
        ...t5Attention(`decoder.block.${i}.layer.1.EncDecAttention`, d, false),
        ...norm(`decoder.block.${i}.layer.1.layer_norm`, d.hidden, false),
        ...t5Mlp(`decoder.block.${i}.layer.2`, d),
      ]),
      ...norm('decoder.final_layer_norm', d.hidden, false),
      ...(d.tie ? [] : linear('lm_head', d.vocab, d.hidden)),
    ],
  },
  {
    modelType: 'bart',
    architecture: 'BartForConditionalGeneration',
    summary: 'BART encoder–decoder: learned positions (offset 2), post-norm, final_logits_bias',
    attention: 'mha',
    tieDefault: true,
    tieKey: false,
    special: () => ({ bos: 0, pad: 1, eos: 2, decoderStart: 2 }),
    check: (d) => (d.tie ? undefined : 'BART ties its LM head to the shared embedding; drop --no-tie'),
    config: (d) => ({
      activation_dropout: float(0),
      activation_function: 'gelu',
      attention_dropout: float(0),
      classifier_dropout: float(0),
      d_model: d.hidden,
      decoder_attention_heads: d.heads,
      decoder_ffn_dim: d.intermediate,
      decoder_layerdrop: float(0),
      decoder_layers: d.layers,
      dropout: float(0.1),
      encoder_attention_heads: d.heads,
      encoder_ffn_dim: d.intermediate,
      encoder_layerdrop: float(0),
      encoder_layers: d.layers,
      forced_eos_token_id: 2,
      init_std: float(0.02),
      is_encoder_decoder: true,
      max_position_embeddings: d.maxPositions,
      num_hidden_layers: d.layers,
      scale_embedding: false,
      use_cache: true,
      vocab_size: d.vocab,
    }),
    tensors: (d) => {
      const stack = (name: 'encoder' | 'decoder'): TensorSpec[] => [
        ...embedding(`model.${name}.embed_positions`, d.maxPositions + 2, d.hidden),
        ...perLayer(d, (i) => {
          const p = `model.${name}.layers.${i}`;
          return [
            ...bartAttention(`${p}.self_attn`, d),
            ...norm(`${p}.self_attn_layer_norm`, d.hidden, true),
            ...(name === 'decoder' ? [...bartAttention(`${p}.encoder_attn`, d), ...norm(`${p}.encoder_attn_layer_norm`, d.hidden, true)] : []),
            ...linear(`${p}.fc1`, d.intermediate, d.hidden, true),
            ...linear(`${p}.fc2`, d.hidden, d.intermediate, true),
            ...norm(`${p}.final_layer_norm`, d.hidden, true),
          ];
        }),
        ...norm(`model.${name}.layernorm_embedding`, d.hidden, true),
      ];
      return [
        { name: 'final_logits_bias', shape: [1, d.vocab], mean: 0, std: 0.1 },
        ...embedding('model.shared', d.vocab, d.hidden),
        ...stack('encoder'),
        ...stack('decoder'),
      ];
    },
  },
];
