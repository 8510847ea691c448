/**
 * How a Perceiver IO masked-LM computes beyond what an encoder stack reads (transformers'
 * PerceiverForMaskedLM): a learned latent array cross-attends to the embedded inputs, a block of
 * self-attention layers runs over the latents `blocks` times, and learned decoder queries
 * cross-attend to the latents before the tied embedding decoder. The descriptor derives it from the
 * config; the engine (runtime/perceiver.ts) reads it and finds the weights by the slots below.
 */

export interface PerceiverSpec {
  /** config.num_blocks: the stored self-attention layers (num_self_attends_per_block) run this many times, in order. */
  blocks: number;
  /** The encoder's cross-attention: its attention group (a key of the descriptor's `attention`) and whether the latents are added back (config.use_query_residual). */
  cross: { group: string; queryResidual: boolean };
  /**
   * The decoder's cross-attention: its attention group (whose 8 heads PerceiverForMaskedLM fixes, the
   * descriptor says so as a constant) and whether its queries are added back (never, for the
   * masked LM). It is split by heads like the encoder's, its MLP by features.
   */
  decoder: { group: string; queryResidual: boolean };
}

/**
 * The two cross-attention layers sit outside any numbered block, so the engine finds their weights
 * by slot (runtime/structure.ts keeps top-level weights by slot): `<prefix>.q`, `<prefix>.kv_norm`…
 * The latent array and the decoder queries have slots of their own.
 */
export const perceiverSlots = {
  latents: 'latents',
  decoderQueries: 'decoder_queries',
  /**
   * One PerceiverLayer with cross-attention: q/k/v/out projections, the norm of its queries
   * (layernorm1), of its keys and values (layernorm2), of its MLP input (layernorm), and the MLP.
   */
  layer: (prefix: 'cross' | 'decoder') => ({
    q: `${prefix}.q`,
    k: `${prefix}.k`,
    v: `${prefix}.v`,
    out: `${prefix}.out`,
    qNorm: `${prefix}.q_norm`,
    kvNorm: `${prefix}.kv_norm`,
    mlpNorm: `${prefix}.mlp_norm`,
    up: `${prefix}.mlp_up`,
    down: `${prefix}.mlp_down`,
  }),
} as const;
