/**
 * How an encoder family computes, as data: the switches of its layer stack (the same ones a decoder
 * stack reads, from `DecoderSpec`) plus what only an encoder has — token-type embeddings, an
 * embedding projection, shared layers, ESM's token dropout and the masked-LM head. Each runnable
 * encoder family's descriptor derives one from its config.
 */
import type { ActivationName, DecoderSpec } from './decoder-spec.js';

export interface EncoderSpec extends DecoderSpec {
  /**
   * ALBERT: `layers` layers run over `groups` stored groups of `inner` layers each; layer l runs
   * group floor(l / (layers / groups)) (transformers' AlbertTransformer).
   */
  sharedLayers?: { layers: number; groups: number; inner: number };
  /**
   * ESM's token dropout at inference: the embeddings of mask tokens are zeroed and every row of a
   * sequence is scaled by (1 − trainRatio) / (1 − the share of mask tokens in that sequence).
   */
  tokenDropout?: { maskTokenId: number; trainRatio: number };
  /** The masked-LM head: transform dense → activation → norm → tied decoder + vocabulary bias. */
  mlm?: { activation: ActivationName };
  /** The id a fill-mask pipeline looks for (`[MASK]`, `<mask>`), when the config says it. */
  maskTokenId?: number;
  /**
   * Positions from the count of real tokens before each one, plus `positionOffset` (RoBERTa's
   * padding_idx + 1); padding takes position `padPosition`. BERT counts from 0 the same way.
   */
  padPosition?: number;
}
