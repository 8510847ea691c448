/**
 * How a decoder family computes, as data: the switches the engine's single decoder forward reads.
 * Each runnable family's descriptor derives one of these from its config.
 */
import type { ReformerSpec } from './reformer-spec.js';

export type ActivationName = 'silu' | 'gelu' | 'gelu_tanh' | 'relu' | 'gelu_quick';

export interface RopeScaling {
  type: 'linear' | 'dynamic' | 'llama3';
  factor: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

export interface DecoderSpec {
  /** Normalisation: RMSNorm or LayerNorm, its epsilon, and Gemma's (1 + weight). */
  norm: { kind: 'rms' | 'layer'; eps: number; plusOne?: boolean };
  /** `pre`: norm before each sub-layer (most); `post`: after the residual add (OpenAI GPT, OPT-350m). */
  normPlacement: 'pre' | 'post';
  /** `sequential`: x += attn(n1(x)); x += mlp(n2(x)). `parallel`: x += attn(n1(x)) + mlp(n2(x) or n1(x)). */
  residual: 'sequential' | 'parallel';
  /** `relative`: T5's bucketed relative position bias, added to the attention scores (Seq2SeqSpec.relativeBias). */
  positions: 'rope' | 'alibi' | 'learned' | 'sinusoidal' | 'relative' | 'none';
  /**
   * Sinusoidal rows: `fairseq` (XGLM, M2M100: frequencies exp(-ln(10000)·i/(half-1))) or `marian`
   * (Marian, Pegasus: 10000^(-2i/d)); both [sin | cos] halves. Default fairseq.
   */
  sinusoidal?: 'fairseq' | 'marian';
  /** Added to position ids before a learned/sinusoidal lookup (OPT and XGLM start at 2). */
  positionOffset?: number;
  rope?: {
    theta: number;
    /** Leading dims of each head that rotate. */
    rotaryDim: number | { fraction: number };
    style: 'half' | 'interleaved';
    scaling?: RopeScaling;
    maxPositions?: number;
  };
  alibi?: {
    /** `bloom`: slopes 2^(-8i/n) with the power-of-two interleave; `mpt`: 2^(-maxBias·i/n). */
    kind: 'bloom' | 'mpt';
    maxBias?: number;
    /** Falcon scales (q·k + alibi) together by 1/sqrt(d); BLOOM and MPT scale q·k only. */
    scaled?: boolean;
  };
  mlp: { activation: ActivationName; gated: boolean };
  /** q·k is multiplied by headDim^-0.5 unless `none` (GPT-Neo) or a number. */
  attentionScale?: 'none' | number;
  /** GPT-2's scale_attn_by_inverse_layer_idx: divide layer i's scores by (i + 1). */
  scaleByLayer?: boolean;
  /** Multiply token embeddings (Gemma: sqrt(hidden); XGLM/BART-like: sqrt(d_model) when scale_embedding). */
  embedScale?: number;
  /** Sliding window (mistral) or per-layer local window (GPT-Neo); undefined = full attention. */
  window?: number | ((layer: number) => number | undefined);
  /** Mixture of experts: router top-k and whether the k weights are renormalised to sum to 1. */
  moe?: { topK: number; normalize: boolean; sparseLayer?: (layer: number) => boolean };
  /** Clamp q, k, v to ±clip (MPT clip_qkv). */
  clipQkv?: number;
  /** Tokens the tokenizer adds (bos) and the id to stop at. */
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
  maxPositions?: number;
  /** Reformer: reversible layers of chunked local and LSH attention, run by the cache-free Reformer engine. */
  reformer?: ReformerSpec;
}
