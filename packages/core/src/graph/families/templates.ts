/**
 * Shared pieces of family descriptors. Most families are a few lines on top of one of these: the
 * Llama layout, the GPT-2 style, the BERT encoder, the BART and T5 encoder–decoders.
 */
import type { ConfigReader, FamilyDescriptor, KeySpec, WeightRule } from '../descriptor.js';
import type { ActivationName, DecoderSpec, RopeScaling } from '../decoder-spec.js';
import type { EncoderSpec } from '../encoder-spec.js';
import type { Seq2SeqSpec } from '../seq2seq-spec.js';
import { UnsupportedModelError } from '../../errors/index.js';

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
  { match: 'self_attn.q_norm', role: 'attn.head_norm', slot: 'q_norm' },
  { match: 'self_attn.k_norm', role: 'attn.head_norm', slot: 'k_norm' },
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
  { match: 'input_layernorm', role: 'norm', slot: 'attn_norm' },
  { match: 'post_attention_layernorm', role: 'norm', slot: 'mlp_norm' },
  { match: 'pre_feedforward_layernorm', role: 'norm' },
  { match: 'post_feedforward_layernorm', role: 'norm' },
  { match: 'model.norm', role: 'norm', slot: 'final_norm' },
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
  { match: 'embeddings.LayerNorm', role: 'norm', slot: 'embed_norm' },
  { match: 'embeddings.position_ids', role: 'buffer' },
  { match: 'embeddings.token_type_ids', role: 'buffer' },
];

export const bertLayer: readonly WeightRule[] = [
  { match: 'attention.self.query', role: 'attn.q' },
  { match: 'attention.self.key', role: 'attn.k' },
  { match: 'attention.self.value', role: 'attn.v' },
  { match: 'attention.output.dense', role: 'attn.out' },
  { match: 'attention.output.LayerNorm', role: 'norm', slot: 'attn_norm' },
  { match: 'intermediate.dense', role: 'mlp.up' },
  { match: 'output.dense', role: 'mlp.down' },
  { match: 'output.LayerNorm', role: 'norm', slot: 'mlp_norm' },
];

/** MLM heads: BERT's `cls.predictions.*` and RoBERTa's `lm_head.*` (decoder weight tied, bias stored). */
export const mlmHeads: readonly WeightRule[] = [
  { match: 'cls.predictions.transform.dense', role: 'other', slot: 'mlm_dense' },
  { match: 'cls.predictions.transform.LayerNorm', role: 'norm', slot: 'mlm_norm' },
  { match: 'cls.predictions.decoder', role: 'lm_head' },
  { match: 'cls.predictions', role: 'vocab_bias' },
  { match: 'cls.seq_relationship', role: 'other' },
  { match: 'lm_head.dense', role: 'other', slot: 'mlm_dense' },
  { match: 'lm_head.layer_norm', role: 'norm', slot: 'mlm_norm' },
  { match: 'lm_head.decoder', role: 'lm_head' },
  { match: 'lm_head', role: 'lm_head' },
  { match: 'pooler.dense', role: 'other', slot: 'pooler' },
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
  { match: 'self_attn_layer_norm', role: 'norm', slot: 'attn_norm' },
  { match: 'encoder_attn_layer_norm', role: 'norm', slot: 'cross_norm' },
  { match: 'final_layer_norm', role: 'norm', slot: 'mlp_norm' },
  { match: 'layernorm_embedding', role: 'norm', slot: 'embed_norm' },
  // mBART, Pegasus, M2M100: the pre-norm stacks end with a norm of their own
  { match: 'layer_norm', role: 'norm', slot: 'final_norm' },
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

export const bartConfig = {
  hidden: ['d_model'],
  layers: ['decoder_layers', 'num_hidden_layers'],
  vocab: keys.vocab,
  intermediate: ['decoder_ffn_dim'],
  encoderLayers: ['encoder_layers'],
  encoderIntermediate: ['encoder_ffn_dim'],
} satisfies FamilyDescriptor['config'];

export function bartLike(
  fields: Pick<FamilyDescriptor, 'modelType' | 'title'> &
    Partial<Omit<FamilyDescriptor, 'modelType' | 'title' | 'weights'>> & { extra?: readonly WeightRule[] },
): FamilyDescriptor {
  const { extra = [], ...rest } = fields;
  return {
    kind: 'seq2seq',
    tieDefault: true,
    config: bartConfig,
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
  // LongT5's transient-global attention: a second per-head table (token block → global token) and the
  // norm of the global aggregates. Slots, not `rel_bias`, so the local table stays the stack's one bias.
  { match: `${module}.global_relative_attention_bias`, role: 'attn.head_param', attention, headAxis: 1, slot: 'global_rel_bias', note: 'side bias [buckets, heads]: each rank keeps the columns of its heads' },
  { match: `${module}.global_input_layer_norm`, role: 'norm', slot: 'global_norm' },
];

export const t5Rules: readonly WeightRule[] = [
  ...t5Attention('SelfAttention', 'self'),
  ...t5Attention('EncDecAttention', 'cross'),
  { match: 'DenseReluDense.wi', role: 'mlp.up' },
  { match: 'DenseReluDense.wi_0', role: 'mlp.gate' },
  { match: 'DenseReluDense.wi_1', role: 'mlp.up' },
  { match: 'DenseReluDense.wo', role: 'mlp.down' },
  // T5 blocks hold sub-layers layer.0 (self-attention), [layer.1 (cross-attention),] then the MLP,
  // each with its own norm in front
  { match: 'encoder.block.#.layer.0.layer_norm', role: 'norm', slot: 'attn_norm' },
  { match: 'encoder.block.#.layer.1.layer_norm', role: 'norm', slot: 'mlp_norm' },
  { match: 'decoder.block.#.layer.0.layer_norm', role: 'norm', slot: 'attn_norm' },
  { match: 'decoder.block.#.layer.1.layer_norm', role: 'norm', slot: 'cross_norm' },
  { match: 'decoder.block.#.layer.2.layer_norm', role: 'norm', slot: 'mlp_norm' },
  { match: 'layer_norm', role: 'norm' },
  { match: 'final_layer_norm', role: 'norm', slot: 'final_norm' },
  { match: 'shared', role: 'embed' },
  { match: 'embed_tokens', role: 'embed' },
  { match: 'lm_head', role: 'lm_head' },
];

export const t5Config = {
  hidden: ['d_model'],
  layers: ['num_decoder_layers', 'num_layers'],
  vocab: keys.vocab,
  intermediate: ['d_ff'],
  encoderLayers: ['num_layers'],
  encoderIntermediate: ['d_ff'],
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

// ---- runtime helpers shared by decoder specs ---------------------------------------------------

const ACTIVATIONS: Readonly<Record<string, ActivationName>> = {
  silu: 'silu',
  swish: 'silu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_python: 'gelu',
  relu: 'relu',
  quick_gelu: 'gelu_quick',
};

/** transformers' ACT2FN names → the engine's activations. */
export function activationOf(c: ConfigReader, keys: readonly string[], fallback: string, overrides: Readonly<Record<string, ActivationName>> = {}): ActivationName {
  const name = keys.map((k) => c.value(k)).find((v): v is string => typeof v === 'string') ?? fallback;
  const act = overrides[name] ?? ACTIVATIONS[name];
  if (act === undefined) {
    throw new UnsupportedModelError({ modelType: String(c.value('model_type')), reason: `activation "${name}" is not implemented (known: ${Object.keys(ACTIVATIONS).join(', ')})` });
  }
  return act;
}

/** `rope_scaling` as the engine understands it; unknown kinds are refused rather than ignored. */
export function ropeScalingOf(c: ConfigReader): RopeScaling | undefined {
  const raw = c.value('rope_scaling') as Record<string, unknown> | undefined;
  if (raw === undefined || raw === null || typeof raw !== 'object') return undefined;
  const type = String(raw['rope_type'] ?? raw['type'] ?? 'default');
  if (type === 'default') return undefined;
  const factor = Number(raw['factor'] ?? 1);
  if (type === 'linear' || type === 'dynamic') return { type, factor };
  if (type === 'llama3') {
    return {
      type,
      factor,
      lowFreqFactor: Number(raw['low_freq_factor'] ?? 1),
      highFreqFactor: Number(raw['high_freq_factor'] ?? 4),
      originalMaxPositions: Number(raw['original_max_position_embeddings'] ?? 8192),
    };
  }
  throw new UnsupportedModelError({ modelType: String(c.value('model_type')), reason: `rope_scaling type "${type}" is not implemented (linear, dynamic and llama3 are)` });
}

/** bos / eos / pad ids and max positions, common to every decoder. */
export function tokenIds(c: ConfigReader): Pick<DecoderSpec, 'bosTokenId' | 'eosTokenId' | 'padTokenId' | 'maxPositions'> {
  const eos = c.value('eos_token_id');
  const out: Pick<DecoderSpec, 'bosTokenId' | 'eosTokenId' | 'padTokenId' | 'maxPositions'> = {};
  const bos = c.number(['bos_token_id']);
  const pad = c.number(['pad_token_id']);
  const max = c.number(['max_position_embeddings', 'n_positions', 'max_seq_len', 'seq_length']);
  if (bos !== undefined) out.bosTokenId = bos;
  if (typeof eos === 'number' || Array.isArray(eos)) out.eosTokenId = eos as number | number[];
  if (pad !== undefined) out.padTokenId = pad;
  if (max !== undefined) out.maxPositions = max;
  return out;
}

/** The Llama forward: RMSNorm, rotary (half rotation), gated MLP, sequential residual. */
export function llamaDecoder(c: ConfigReader, extra: Partial<DecoderSpec> = {}): DecoderSpec {
  const maxPositions = c.number(['max_position_embeddings']);
  return {
    norm: { kind: 'rms', eps: c.number(['rms_norm_eps']) ?? 1e-6 },
    normPlacement: 'pre',
    residual: 'sequential',
    positions: 'rope',
    rope: {
      theta: c.number(['rope_theta']) ?? 10000,
      rotaryDim: { fraction: c.number(['partial_rotary_factor']) ?? 1 },
      style: 'half',
      ...(ropeScalingOf(c) ? { scaling: ropeScalingOf(c)! } : {}),
      ...(maxPositions !== undefined ? { maxPositions } : {}),
    },
    mlp: { activation: activationOf(c, ['hidden_act'], 'silu'), gated: true },
    ...tokenIds(c),
    ...extra,
  };
}

/** Mistral-style sliding window: every layer, when the config sets one. */
export const slidingWindow = (c: ConfigReader): Partial<DecoderSpec> => {
  const w = c.number(['sliding_window']);
  return w === undefined ? {} : { window: w };
};

/** Qwen2-style: a window only with use_sliding_window, and only from layer max_window_layers on. */
export const qwenWindow = (c: ConfigReader): Partial<DecoderSpec> => {
  const w = c.number(['sliding_window']);
  if (c.bool('use_sliding_window') !== true || w === undefined) return {};
  const from = c.number(['max_window_layers']) ?? 0;
  return { window: (layer: number) => (layer >= from ? w : undefined) };
};

// ---- encoder specs (BERT family) ----------------------------------------------------------------

/**
 * The BERT encoder as transformers' BertModel computes it: word + position + token-type embeddings,
 * LayerNorm, then post-norm layers (x = LN(x + attn(x)); x = LN(x + mlp(x))) with a plain MLP, and
 * the MLM head `transform.dense → act → LayerNorm → decoder (tied) + bias`. Only absolute positions
 * run: `relative_key` / `relative_key_query` add learned distance embeddings inside attention.
 */
export function bertEncoder(c: ConfigReader, extra: Partial<EncoderSpec> = {}): EncoderSpec {
  const kind = c.value('position_embedding_type');
  if (kind !== undefined && kind !== 'absolute' && extra.positions === undefined) {
    throw new UnsupportedModelError({
      modelType: String(c.value('model_type')),
      reason: `position_embedding_type "${String(kind)}" (learned relative distances inside attention) is not implemented; "absolute" is`,
    });
  }
  const act = activationOf(c, ['hidden_act'], 'gelu');
  const mask = c.number(['mask_token_id']);
  return {
    norm: { kind: 'layer', eps: c.number(['layer_norm_eps']) ?? 1e-12 },
    normPlacement: 'post',
    residual: 'sequential',
    positions: 'learned',
    mlp: { activation: act, gated: false },
    mlm: { activation: act },
    ...tokenIds(c),
    ...(mask !== undefined ? { maskTokenId: mask } : {}),
    ...extra,
  };
}

/**
 * RoBERTa's positions count real tokens from padding_idx + 1 (transformers'
 * create_position_ids_from_input_ids), and its LM head always uses GELU whatever hidden_act says.
 */
export function robertaEncoder(c: ConfigReader, extra: Partial<EncoderSpec> = {}): EncoderSpec {
  const pad = c.number(['pad_token_id']) ?? 1;
  return bertEncoder(c, { positionOffset: pad + 1, padPosition: -1, mlm: { activation: 'gelu' }, ...extra });
}

// ---- encoder–decoder specs -----------------------------------------------------------------------

/**
 * T5 as transformers' T5ForConditionalGeneration computes it: no embedding scale and no absolute
 * positions, pre-norm sub-layers with T5LayerNorm (RMS without mean or bias), unscaled attention
 * (the 1/sqrt(d) is folded into the weights at training), a relative position bias computed by the
 * first layer of each stack and shared by all of its layers, a ReLU (v1.0: `feed_forward_proj:
 * relu`) or gated-GELU (v1.1: `gated-gelu`, gelu_new) MLP, final norms, and with tied embeddings
 * the decoder output scaled by d_model^-0.5 before the LM head.
 */
export function t5Seq2Seq(c: ConfigReader): Seq2SeqSpec {
  const proj = String(c.value('feed_forward_proj') ?? 'relu');
  const gated = proj.startsWith('gated-');
  const act = gated ? proj.slice('gated-'.length) : proj;
  // T5Config writes dense_act_fn; for "gated-gelu" it is gelu_new (the tanh approximation)
  const activation = activationOf(c, ['dense_act_fn'], act === 'gelu' && gated ? 'gelu_new' : act);
  const stack: DecoderSpec = {
    norm: { kind: 'rms', eps: c.number(['layer_norm_epsilon']) ?? 1e-6 },
    normPlacement: 'pre',
    residual: 'sequential',
    positions: 'relative',
    attentionScale: 'none',
    mlp: { activation, gated },
    ...tokenIds(c),
  };
  const tied = c.bool('tie_word_embeddings') ?? true;
  const d = c.number(['d_model']) ?? 512;
  return {
    encoder: stack,
    decoder: stack,
    stacks: { encoder: 'encoder', decoder: 'decoder' },
    crossGroup: 'cross',
    relativeBias: { buckets: c.number(['relative_attention_num_buckets']) ?? 32, maxDistance: c.number(['relative_attention_max_distance']) ?? 128 },
    ...(tied ? { logitScale: d ** -0.5 } : {}),
    decoderStartTokenId: c.number(['decoder_start_token_id']) ?? c.number(['pad_token_id']) ?? 0,
  };
}

/**
 * The BART family (transformers' BartForConditionalGeneration and its copies): token embeddings
 * times sqrt(d_model) when `scale_embedding`, positions (learned with an offset of 2, or sinusoidal
 * in fairseq's or Marian's layout), `layernorm_embedding` where stored, post-norm layers (pre-norm
 * with a final `layer_norm` for mBART-style families: `normalize_before`), attention scaled by
 * head_dim^-0.5, a plain MLP of `activation_function`, and `final_logits_bias` added to the logits.
 */
export function bartSeq2Seq(c: ConfigReader, extra: { positions: 'learned' | 'sinusoidal'; sinusoidal?: 'fairseq' | 'marian'; positionOffset?: number; normPlacement?: 'pre' | 'post' }): Seq2SeqSpec {
  const d = c.number(['d_model']) ?? 1024;
  const stack: DecoderSpec = {
    norm: { kind: 'layer', eps: 1e-5 },
    normPlacement: extra.normPlacement ?? 'post',
    residual: 'sequential',
    positions: extra.positions,
    ...(extra.sinusoidal ? { sinusoidal: extra.sinusoidal } : {}),
    ...(extra.positionOffset !== undefined ? { positionOffset: extra.positionOffset } : {}),
    ...(c.bool('scale_embedding') === true ? { embedScale: Math.sqrt(d) } : {}),
    mlp: { activation: activationOf(c, ['activation_function'], 'gelu'), gated: false },
    ...tokenIds(c),
  };
  return {
    encoder: stack,
    decoder: stack,
    stacks: { encoder: 'encoder', decoder: 'decoder' },
    crossGroup: 'cross',
    decoderStartTokenId: c.number(['decoder_start_token_id']) ?? c.number(['eos_token_id']) ?? 2,
  };
}
