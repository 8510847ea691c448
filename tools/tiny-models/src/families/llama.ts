/**
 * Llama-layout decoders: `model.layers.{i}.self_attn.*` / `mlp.*`, RMSNorm, RoPE. One tensor builder
 * and one shared block of config keys cover all eight; each entry lists only what differs.
 * Key sets follow configs written by transformers 4.57.6.
 */
import { float, type PyObject } from '../json.js';
import { embedding, lmHead, linear, norm, perLayer, type Dims, type FamilySpec, type TensorSpec } from './types.js';

interface LlamaLayout {
  /** Biases on q/k/v (qwen2, qwen2_moe). */
  qkvBias?: boolean;
  /** Per-head RMSNorm on q and k (qwen3). */
  headNorm?: boolean;
  /** phi3: `qkv_proj` [Q; K; V] and `gate_up_proj` [gate; up]. */
  fused?: boolean;
  mlp?: 'dense' | 'mixtral' | 'qwen2_moe';
  /** Gemma's norms compute x·(1 + w): their weights sit around 0. */
  normBase?: number;
  /** Gemma multiplies embeddings by sqrt(hidden), so they are drawn with std 1/sqrt(hidden). */
  scaledEmbedding?: boolean;
}

/** qwen2_moe expert widths, from the intermediate size: experts I/4, shared expert I/2. */
export function qwenMoeWidths(d: Pick<Dims, 'intermediate'>): { expert: number; shared: number } {
  return { expert: Math.max(1, Math.floor(d.intermediate / 4)), shared: Math.max(1, Math.floor(d.intermediate / 2)) };
}

function llamaTensors(layout: LlamaLayout): (d: Dims) => TensorSpec[] {
  return (d) => {
    const { hidden: H, intermediate: I, headDim: hd } = d;
    const q = d.heads * hd;
    const kv = d.kvHeads * hd;
    const base = layout.normBase ?? 1;
    const mlp = (p: string): TensorSpec[] => {
      switch (layout.mlp ?? 'dense') {
        case 'dense':
          return layout.fused
            ? [...linear(`${p}.mlp.gate_up_proj`, 2 * I, H), ...linear(`${p}.mlp.down_proj`, H, I)]
            : [...linear(`${p}.mlp.gate_proj`, I, H), ...linear(`${p}.mlp.up_proj`, I, H), ...linear(`${p}.mlp.down_proj`, H, I)];
        case 'mixtral':
          return [
            ...linear(`${p}.block_sparse_moe.gate`, d.experts, H),
            ...Array.from({ length: d.experts }, (_, e) => [
              ...linear(`${p}.block_sparse_moe.experts.${e}.w1`, I, H),
              ...linear(`${p}.block_sparse_moe.experts.${e}.w2`, H, I),
              ...linear(`${p}.block_sparse_moe.experts.${e}.w3`, I, H),
            ]).flat(),
          ];
        case 'qwen2_moe': {
          const w = qwenMoeWidths(d);
          return [
            ...linear(`${p}.mlp.gate`, d.experts, H),
            ...Array.from({ length: d.experts }, (_, e) => [
              ...linear(`${p}.mlp.experts.${e}.gate_proj`, w.expert, H),
              ...linear(`${p}.mlp.experts.${e}.up_proj`, w.expert, H),
              ...linear(`${p}.mlp.experts.${e}.down_proj`, H, w.expert),
            ]).flat(),
            ...linear(`${p}.mlp.shared_expert.gate_proj`, w.shared, H),
            ...linear(`${p}.mlp.shared_expert.up_proj`, w.shared, H),
            ...linear(`${p}.mlp.shared_expert.down_proj`, H, w.shared),
            ...linear(`${p}.mlp.shared_expert_gate`, 1, H),
          ];
        }
      }
    };
    return [
      ...embedding('model.embed_tokens', d.vocab, H, layout.scaledEmbedding ? 1 / Math.sqrt(H) : 1),
      ...perLayer(d, (i) => {
        const p = `model.layers.${i}`;
        const attn = layout.fused
          ? linear(`${p}.self_attn.qkv_proj`, q + 2 * kv, H)
          : [
              ...linear(`${p}.self_attn.q_proj`, q, H, layout.qkvBias),
              ...linear(`${p}.self_attn.k_proj`, kv, H, layout.qkvBias),
              ...linear(`${p}.self_attn.v_proj`, kv, H, layout.qkvBias),
            ];
        return [
          ...norm(`${p}.input_layernorm`, H, false, base),
          ...attn,
          ...(layout.headNorm ? [...norm(`${p}.self_attn.q_norm`, hd, false), ...norm(`${p}.self_attn.k_norm`, hd, false)] : []),
          ...linear(`${p}.self_attn.o_proj`, H, q),
          ...norm(`${p}.post_attention_layernorm`, H, false, base),
          ...mlp(p),
        ];
      }),
      ...norm('model.norm', H, false, base),
      ...lmHead(d),
    ];
  };
}

/** Keys every llama-layout config has. */
function llamaKeys(d: Dims, eps = 1e-6): PyObject {
  return {
    attention_dropout: float(0),
    hidden_act: 'silu',
    hidden_size: d.hidden,
    initializer_range: float(0.02),
    intermediate_size: d.intermediate,
    max_position_embeddings: d.maxPositions,
    num_attention_heads: d.heads,
    num_hidden_layers: d.layers,
    num_key_value_heads: d.kvHeads,
    rms_norm_eps: float(eps),
    rope_theta: float(10000),
    use_cache: true,
    vocab_size: d.vocab,
  };
}

/** For configs that only carry `head_dim` when it is not hidden / heads. */
const customHeadDim = (d: Dims): number | undefined => (d.headDim * d.heads === d.hidden ? undefined : d.headDim);
const qwenLayerTypes = (d: Dims): string[] => Array.from({ length: d.layers }, () => 'full_attention');
const llamaTokens = () => ({ bos: 1, eos: 2 });
const qwenTokens = (vocab: number) => ({ bos: vocab - 2, eos: vocab - 1 });
const qwenNames = { bos: '<|endoftext|>', eos: '<|im_end|>', unk: null };

const shared = { attention: 'gqa', headDim: 'free', rotary: true, tieKey: true } as const;

export const llamaFamilies: readonly FamilySpec[] = [
  {
    ...shared,
    modelType: 'llama',
    architecture: 'LlamaForCausalLM',
    summary: 'Llama: GQA, RMSNorm, SwiGLU, RoPE',
    tieDefault: false,
    special: llamaTokens,
    addBos: true,
    config: (d) => ({
      ...llamaKeys(d),
      attention_bias: false,
      head_dim: d.headDim,
      mlp_bias: false,
      pretraining_tp: 1,
      rope_scaling: null,
    }),
    tensors: llamaTensors({}),
  },
  {
    ...shared,
    modelType: 'mistral',
    architecture: 'MistralForCausalLM',
    summary: 'Mistral: llama layout with sliding_window',
    tieDefault: false,
    special: llamaTokens,
    addBos: true,
    config: (d) => ({ ...llamaKeys(d), head_dim: customHeadDim(d) ?? null, sliding_window: 4096 }),
    tensors: llamaTensors({}),
  },
  {
    ...shared,
    modelType: 'qwen2',
    architecture: 'Qwen2ForCausalLM',
    summary: 'Qwen2: llama layout with q/k/v biases',
    tieDefault: false,
    special: qwenTokens,
    tokenNames: qwenNames,
    config: (d) => ({
      ...llamaKeys(d),
      head_dim: customHeadDim(d),
      layer_types: qwenLayerTypes(d),
      max_window_layers: 28,
      rope_scaling: null,
      sliding_window: null,
      use_sliding_window: false,
    }),
    tensors: llamaTensors({ qkvBias: true }),
  },
  {
    ...shared,
    modelType: 'qwen3',
    architecture: 'Qwen3ForCausalLM',
    summary: 'Qwen3: per-head q/k RMSNorm, explicit head_dim, tied embeddings',
    // Qwen3's class default is untied, but its small checkpoints (and the golden one) tie.
    tieDefault: true,
    special: qwenTokens,
    tokenNames: qwenNames,
    config: (d) => ({
      ...llamaKeys(d),
      attention_bias: false,
      head_dim: d.headDim,
      layer_types: qwenLayerTypes(d),
      max_window_layers: 28,
      rope_scaling: null,
      sliding_window: null,
      use_sliding_window: false,
    }),
    tensors: llamaTensors({ headNorm: true }),
  },
  {
    ...shared,
    modelType: 'gemma',
    architecture: 'GemmaForCausalLM',
    summary: 'Gemma: tied, norms x·(1+w), embeddings × sqrt(hidden), gelu',
    tieDefault: true,
    tieKey: false,
    special: () => ({ pad: 0, eos: 1, bos: 2 }),
    tokenNames: { pad: '<pad>', eos: '<eos>', bos: '<bos>', unk: '<unk>' },
    addBos: true,
    config: (d) => ({
      ...llamaKeys(d),
      attention_bias: false,
      head_dim: d.headDim,
      hidden_act: 'gelu_pytorch_tanh',
      hidden_activation: null,
    }),
    tensors: llamaTensors({ normBase: 0, scaledEmbedding: true }),
  },
  {
    ...shared,
    modelType: 'phi3',
    architecture: 'Phi3ForCausalLM',
    summary: 'Phi-3: fused qkv_proj [Q;K;V] and gate_up_proj [gate;up]',
    tieDefault: false,
    special: () => ({ pad: 0, bos: 1, eos: 2 }),
    config: (d) => ({
      ...llamaKeys(d, 1e-5),
      embd_pdrop: float(0),
      head_dim: customHeadDim(d),
      original_max_position_embeddings: d.maxPositions,
      partial_rotary_factor: float(1),
      resid_pdrop: float(0),
      rope_scaling: null,
      sliding_window: null,
    }),
    tensors: llamaTensors({ fused: true }),
  },
  {
    ...shared,
    modelType: 'mixtral',
    architecture: 'MixtralForCausalLM',
    summary: 'Mixtral: sparse MoE (block_sparse_moe.experts.{e}.w1/w2/w3), top-k routing',
    moe: true,
    tieDefault: false,
    special: llamaTokens,
    addBos: true,
    config: (d) => ({
      ...llamaKeys(d, 1e-5),
      head_dim: customHeadDim(d) ?? null,
      num_experts_per_tok: d.expertsPerToken,
      num_local_experts: d.experts,
      output_router_logits: false,
      rope_theta: float(1e6),
      router_aux_loss_coef: float(0.001),
      router_jitter_noise: float(0),
      sliding_window: null,
    }),
    tensors: llamaTensors({ mlp: 'mixtral' }),
  },
  {
    ...shared,
    modelType: 'qwen2_moe',
    architecture: 'Qwen2MoeForCausalLM',
    summary: 'Qwen2-MoE: routed experts (width I/4) plus a gated shared expert (width I/2)',
    moe: true,
    tieDefault: false,
    special: qwenTokens,
    tokenNames: qwenNames,
    config: (d) => ({
      ...llamaKeys(d),
      decoder_sparse_step: 1,
      head_dim: customHeadDim(d),
      max_window_layers: d.layers,
      mlp_only_layers: [],
      moe_intermediate_size: qwenMoeWidths(d).expert,
      norm_topk_prob: false,
      num_experts: d.experts,
      num_experts_per_tok: d.expertsPerToken,
      output_router_logits: false,
      qkv_bias: true,
      rope_scaling: null,
      router_aux_loss_coef: float(0.001),
      shared_expert_intermediate_size: qwenMoeWidths(d).shared,
      sliding_window: null,
      use_sliding_window: false,
    }),
    tensors: llamaTensors({ qkvBias: true, mlp: 'qwen2_moe' }),
  },
];
