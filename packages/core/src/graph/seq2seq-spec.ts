/**
 * How an encoder–decoder family computes, as data: the switches of each stack (the same ones a
 * decoder-only stack reads, from `DecoderSpec`), where each stack's layers live, the cross-attention
 * group, T5's relative position bias and logit scale, and the decoder's start token.
 */
import type { DecoderSpec } from './decoder-spec.js';

export interface Seq2SeqSpec {
  /** The encoder stack (its attention is bidirectional whatever the spec says). */
  encoder: DecoderSpec;
  /** The decoder stack (causal self-attention, then cross-attention to the encoder output). */
  decoder: DecoderSpec;
  /** A path segment naming each stack's module (`encoder` in `model.encoder.layers`, `encoder.block`). */
  stacks: { encoder: string; decoder: string };
  /** The attention group of the decoder's cross-attention weights (the descriptor's `attention: 'cross'`). */
  crossGroup: string;
  /**
   * T5: relative position buckets (transformers' T5Attention._relative_position_bucket): half the
   * buckets for each direction in the encoder, one direction in the decoder; exact below
   * buckets / 2 (per direction), logarithmic up to maxDistance.
   */
  relativeBias?: { buckets: number; maxDistance: number };
  /**
   * LongT5's encoder self-attention instead of full attention (transformers' LongT5LocalAttention and
   * LongT5TransientGlobalAttention): each token sees the tokens at most `radius` away (local_radius),
   * with the stack's relative bias; `transient-global` adds one global token per `globalBlockSize`
   * tokens (global_block_size), the normed sum of its block, with a bias of its own.
   */
  encoderAttention?: LongT5EncoderAttention;
  /**
   * The longest encoder input (in tokens) the engine runs, and why: longer inputs are refused before
   * they reach a rank (BigBird-Pegasus's block-sparse attention, which transformers replaces by full
   * attention only up to a length).
   */
  encoderLimit?: { tokens: number; reason: string };
  /** Multiply the decoder output by this before the LM head (T5 with tied embeddings: d_model^-0.5). */
  logitScale?: number;
  /** The decoder's first input token. */
  decoderStartTokenId: number;
}

/** See `Seq2SeqSpec.encoderAttention`. */
export type LongT5EncoderAttention = { kind: 'local'; radius: number } | { kind: 'transient-global'; radius: number; globalBlockSize: number };
