/**
 * How an encoder family computes, as data: the switches of its layer stack (the same ones a decoder
 * stack reads, from `DecoderSpec`) plus what only an encoder has — token-type embeddings, an
 * embedding projection, shared layers, ESM's token dropout and the masked-LM head. Each runnable
 * encoder family's descriptor derives one from its config.
 */
import type { ActivationName, DecoderSpec } from './decoder-spec.js';
import type { PerceiverSpec } from './perceiver-spec.js';

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
  /** Perceiver IO's latent array and decoder queries (runtime/perceiver.ts runs it instead of the encoder stack). */
  perceiver?: PerceiverSpec;
  /** Relative positions inside attention (the backend's `AttentionSpec.relative`); see each kind. */
  relative?: FunctionalRelative | DisentangledRelative;
  /**
   * The longest input the family's transformers model takes where no position table says so: NEZHA
   * builds its relative-position table for max_position_embeddings positions and fails past it, so a
   * longer input is refused before any rank runs rather than answered where transformers has none.
   */
  inputLimit?: number;
  /**
   * How scores become weights, when not softmax: YOSO's expected LSH collision weight
   * (`AttentionSpec.scoring`, transformers' YosoCumulation).
   */
  scoring?: { kind: 'expectation'; bits: number };
  /**
   * Padding is not masked out of the keys: transformers' YosoSelfAttention turns the 0/1 attention
   * mask into `int(1 + mask / 10000)`, which is 1 for padding too, so every query sees the padding
   * tokens (pad ids at their positions) as keys. Set to reproduce that.
   */
  paddingVisible?: boolean;
}

/**
 * NEZHA's functional relative positions (transformers' NezhaRelativePositionsEncoding): one sinusoidal
 * table [2·maxDistance + 1, headDim] shared by every head and layer, row r = [sin(r·f₀), cos(r·f₀),
 * sin(r·f₁), …] with f_k = 10000^(−2k/headDim); the pair (query i, key j) reads row
 * clamp(j − i, −maxDistance, maxDistance) + maxDistance, added to the keys (q·row inside the scores)
 * and to the values (Σ p·row in the context).
 */
export interface FunctionalRelative {
  kind: 'functional';
  maxDistance: number;
}

/**
 * DeBERTa's disentangled attention (transformers' DisentangledSelfAttention, v1 and v2): with the
 * relative position δ(i, j) = clamp(bucket(i − j) + span, 0, 2·span − 1) into the first 2·span rows
 * of the shared relative embeddings E (layer-normed first with `normEmbeddings`),
 *   score = (q_i·k_j + [c2p] q_i·Kr[δ] + [p2c] k_j·Qr[δ]) / sqrt(headDim · scaleFactor)
 * where Kr and Qr are E through the layer's position projections (the `rel` attention group: v1
 * pos_proj / pos_q_proj, v2 pos_key_proj / pos_query_proj) or, with `sharedKeys`, through its own key
 * and query projections (biases included). The p2c term is gathered with −(j − i) and transposed in
 * transformers, which lands on the same δ(i, j) because bucket() is odd.
 */
export interface DisentangledRelative {
  kind: 'disentangled';
  c2p: boolean;
  p2c: boolean;
  /** 1 + the number of position terms in pos_att_type: the scores are divided by sqrt(headDim · this). */
  scaleFactor: number;
  /** Half the rows of E that are used (v2: position_buckets when set, else max_relative_positions). */
  span: number;
  /** v2's make_log_bucket_position: distances past bucketSize / 2 share logarithmic buckets up to maxPosition. */
  buckets?: { size: number; maxPosition: number };
  /** v2 norm_rel_ebd "layer_norm": E goes through the encoder's LayerNorm (slot `rel_norm`) first. */
  normEmbeddings: boolean;
  /** v2 share_att_key: Kr and Qr come from the layer's key_proj and query_proj. */
  sharedKeys: boolean;
}
