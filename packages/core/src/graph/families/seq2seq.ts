/** Encoder–decoders: T5 and the BART family. families.md §4.4. */
import type { ConfigReader, FamilyDescriptor } from '../descriptor.js';
import type { Seq2SeqSpec } from '../seq2seq-spec.js';
import { UnsupportedModelError } from '../../errors/index.js';
import { bartAttention, bartConfig, bartLike, bartSeq2Seq, t5Attention, t5AttentionGroups, t5Config, t5Rules, t5Seq2Seq } from './templates.js';

export const t5: FamilyDescriptor = {
  modelType: 't5',
  aliases: ['mt5', 'umt5'],
  title: 'T5',
  kind: 'seq2seq',
  tieDefault: true,
  config: t5Config,
  attention: t5AttentionGroups,
  weights: t5Rules,
  notes: ['relative_attention_bias is [buckets, heads]: each rank keeps the columns of its own heads'],
  seq2seq: t5Seq2Seq,
};

export const longt5: FamilyDescriptor = {
  ...t5,
  modelType: 'longt5',
  aliases: [],
  title: 'LongT5',
  weights: [...t5Attention('LocalSelfAttention', 'self'), ...t5Attention('TransientGlobalSelfAttention', 'self'), ...t5Rules],
  notes: [
    'relative_attention_bias and global_relative_attention_bias are [buckets, heads]: each rank keeps the columns of its own heads',
    "the encoder's global tokens are sums of the replicated hidden state, projected by each rank's own k/v heads: no extra communication",
  ],
  seq2seq: longT5Seq2Seq,
};

/**
 * LongT5 (transformers' LongT5ForConditionalGeneration): T5's stacks, except that the encoder's
 * self-attention is local — each token sees those at most local_radius away — or transient-global,
 * which adds one global token per global_block_size tokens (LongT5Block picks the class from
 * encoder_attention_type). The decoder is T5's.
 */
function longT5Seq2Seq(c: ConfigReader): Seq2SeqSpec {
  const kind = c.value('encoder_attention_type') ?? 'local';
  const radius = c.number(['local_radius']) ?? 127;
  const globalBlockSize = c.number(['global_block_size']) ?? 16;
  const refuse = (reason: string) => new UnsupportedModelError({ modelType: 'longt5', reason });
  if (kind !== 'local' && kind !== 'transient-global') throw refuse(`encoder_attention_type ${JSON.stringify(kind)} is not one of LongT5's ("local", "transient-global")`);
  if (!Number.isInteger(radius) || radius < 0) throw refuse(`local_radius ${radius} is not a whole number of tokens`);
  if (!Number.isInteger(globalBlockSize) || globalBlockSize < 1) throw refuse(`global_block_size ${globalBlockSize} is not a positive whole number of tokens`);
  return { ...t5Seq2Seq(c), encoderAttention: kind === 'local' ? { kind, radius } : { kind, radius, globalBlockSize } };
}

/** Learned positions start at row 2 (transformers' BartLearnedPositionalEmbedding.offset). */
const bartPositions = { positions: 'learned', positionOffset: 2 } as const;

export const bart = bartLike({ modelType: 'bart', title: 'BART', seq2seq: (c) => bartSeq2Seq(c, bartPositions) });
export const mvp = bartLike({
  modelType: 'mvp',
  title: 'MVP',
  extra: [
    { match: 'self_attn_prompt.*', role: 'other' },
    { match: 'self_attn_prompt.prompt_trans.#', role: 'other' },
    { match: 'cross_attn_prompt.*', role: 'other' },
    { match: 'cross_attn_prompt.prompt_trans.#', role: 'other' },
  ],
  seq2seq: (c) => {
    if (c.bool('use_prompt') === true) throw new UnsupportedModelError({ modelType: 'mvp', reason: '"use_prompt": true (prompt tokens prepended to the keys and values of every layer) is not implemented' });
    return bartSeq2Seq(c, bartPositions);
  },
});
export const plbart = bartLike({ modelType: 'plbart', title: 'PLBart', seq2seq: (c) => bartSeq2Seq(c, bartPositions) });
// Pegasus: pre-norm with final layer norms, and Marian's sinusoidal layout (PegasusSinusoidalPositionalEmbedding).
export const pegasus = bartLike({
  modelType: 'pegasus',
  title: 'Pegasus',
  extra: [{ match: 'embed_positions', role: 'buffer', note: 'sinusoidal table, recomputed' }],
  seq2seq: (c) => bartSeq2Seq(c, { positions: 'sinusoidal', sinusoidal: 'marian', normPlacement: 'pre' }),
});
export const marian = bartLike({
  modelType: 'marian',
  title: 'Marian',
  // The decoder (and LM head) may have a vocabulary of its own (share_encoder_decoder_embeddings: false).
  config: { ...bartConfig, vocab: ['decoder_vocab_size', 'vocab_size'] },
  extra: [{ match: 'embed_positions', role: 'buffer', note: 'sinusoidal table, recomputed' }],
  // MarianSinusoidalPositionalEmbedding: sin(p·10000^(-2i/d)) in column i, cos in column d/2 + i; post-norm.
  seq2seq: (c) => {
    if (c.bool('share_encoder_decoder_embeddings') === false) {
      throw new UnsupportedModelError({ modelType: 'marian', reason: 'separate encoder and decoder vocabularies (share_encoder_decoder_embeddings: false) are not implemented' });
    }
    return bartSeq2Seq(c, { positions: 'sinusoidal', sinusoidal: 'marian' });
  },
});
// M2M100: pre-norm with final layer norms; fairseq's sinusoidal rows, positions counted from
// padding_idx + 1 (M2M100SinusoidalPositionalEmbedding with create_position_ids_from_input_ids).
export const m2m100 = bartLike({
  modelType: 'm2m_100',
  title: 'M2M100',
  extra: [{ match: 'embed_positions', role: 'buffer', note: 'sinusoidal table, recomputed' }],
  seq2seq: (c) => bartSeq2Seq(c, { positions: 'sinusoidal', sinusoidal: 'fairseq', positionOffset: (c.number(['pad_token_id']) ?? 1) + 1, normPlacement: 'pre' }),
});
export const bigbirdPegasus = bartLike({
  modelType: 'bigbird_pegasus',
  title: 'BigBird-Pegasus',
  extra: [
    { match: 'encoder.layers.#.self_attn.self.query', role: 'attn.q', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.self.key', role: 'attn.k', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.self.value', role: 'attn.v', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.output', role: 'attn.out', attention: 'enc' },
    { match: 'layernorm_embedding', role: 'norm', slot: 'final_norm', note: 'applied after the last layer, not to the embeddings' },
  ],
  seq2seq: bigbirdPegasusSeq2Seq,
});

/**
 * BigBird-Pegasus (transformers' BigBirdPegasusForConditionalGeneration): Pegasus-like pre-norm
 * stacks with token embeddings times sqrt(d_model) (scale_embedding, default true), learned positions
 * from 0, no norm before the layers and `layernorm_embedding` after them, gelu_new, and attention
 * projections without biases (use_bias: false). The encoder's attention is full (`attention_type:
 * "original_full"`) or block-sparse; BigBirdPegasusEncoder.forward falls back to full attention when
 * the input has at most (5 + 2·num_random_blocks)·block_size tokens, so block-sparse configs run
 * exactly there and longer inputs are refused.
 */
function bigbirdPegasusSeq2Seq(c: ConfigReader): Seq2SeqSpec {
  const spec = bartSeq2Seq(c, { positions: 'learned', normPlacement: 'pre' });
  const d = c.number(['d_model']) ?? 1024;
  const scaled = c.bool('scale_embedding') ?? true;
  const stack = { ...spec.decoder, ...(scaled ? { embedScale: Math.sqrt(d) } : {}) };
  const full = { ...spec, encoder: stack, decoder: stack };
  const type = c.value('attention_type') ?? 'block_sparse';
  if (type === 'original_full') return full;
  if (type !== 'block_sparse') throw new UnsupportedModelError({ modelType: 'bigbird_pegasus', reason: `attention_type ${JSON.stringify(type)} is not one of BigBird-Pegasus's ("original_full", "block_sparse")` });
  const blockSize = c.number(['block_size']) ?? 64;
  const randomBlocks = c.number(['num_random_blocks']) ?? 3;
  const tokens = (5 + 2 * randomBlocks) * blockSize;
  // A position table no longer than that: every input it takes runs with full attention.
  if ((c.number(['max_position_embeddings']) ?? 4096) <= tokens) return full;
  return {
    ...full,
    encoderLimit: {
      tokens,
      reason: `block-sparse attention is not implemented; inputs up to ${tokens} tokens ((5 + 2 × num_random_blocks ${randomBlocks}) × block_size ${blockSize}) run with full attention as transformers does`,
    },
  };
}

export const led = bartLike({
  modelType: 'led',
  title: 'LED',
  extra: [
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.query', role: 'attn.q', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.key', role: 'attn.k', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.value', role: 'attn.v', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.query_global', role: 'attn.q', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.key_global', role: 'attn.k', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.longformer_self_attn.value_global', role: 'attn.v', attention: 'enc' },
    { match: 'encoder.layers.#.self_attn.output', role: 'attn.out', attention: 'enc' },
  ],
  notes: [
    "DeepSpeed AutoTP refuses led because it halves embed_dim, which breaks the Longformer attention's width check; tp plans by heads (including the *_global projections)",
  ],
});

export const fsmt: FamilyDescriptor = bartLike({
  modelType: 'fsmt',
  title: 'FSMT',
  tieDefault: false,
  lmHeadIsEmbedding: true,
  config: {
    hidden: ['d_model'],
    layers: ['decoder_layers'],
    vocab: ['tgt_vocab_size'],
    intermediate: ['decoder_ffn_dim'],
    encoderLayers: ['encoder_layers'],
    encoderIntermediate: ['encoder_ffn_dim'],
  },
  extra: [
    ...bartAttention('encoder', 'self_attn', 'enc'),
    { match: 'decoder.output_projection', role: 'lm_head', note: 'also the decoder input embedding (tied)' },
    { match: 'embed_positions', role: 'buffer', note: 'sinusoidal table, recomputed' },
  ],
  notes: [
    'DeepSpeed AutoTP refuses fsmt (a hard-coded list, no reason given); its layers are plain BART-style linears and tp plans them by heads',
    'the decoder embedding is tied to output_projection, so that tensor is kept whole unless --vocab-parallel splits both by vocabulary',
  ],
});

export const seq2seqFamily: readonly FamilyDescriptor[] = [t5, longt5, bart, mvp, plbart, pegasus, marian, m2m100, bigbirdPegasus, led, fsmt];
