/**
 * Family descriptors: everything tp knows about one `model_type`, as data. The analysis and planner
 * read these; there is no `if (family === ...)` anywhere else.
 */
import type { HfConfig } from '../checkpoint/index.js';
import type { DecoderSpec } from './decoder-spec.js';
import type { EncoderSpec } from './encoder-spec.js';
import type { Seq2SeqSpec } from './seq2seq-spec.js';
import type { Role } from './roles.js';

/**
 * Where a number comes from in config.json: keys tried in order (dotted paths reach into nested
 * objects, e.g. `attn_config.kv_n_heads`), or a function of the config for derived values, or a
 * number: a constant the model class fixes rather than the config (PerceiverForMaskedLM builds its
 * decoder with 8 heads whatever config.json says). A constant always resolves, so it ends the list;
 * errors then say the class fixes it (there is no key to change).
 */
export type KeySpec = ReadonlyArray<string | number | ((config: ConfigReader) => number | undefined)>;

/** Where a number of the config came from. */
export interface ConfigSource {
  /** The key that set it, as a dotted path of config.json (`text_config.hidden_size` when nested). */
  readonly key: string;
  /** The key's raw value. */
  readonly value: unknown;
  /** True when a function of the config computed the number (`key` is then the last key it read). */
  readonly derived: boolean;
  /** True when the number is a constant of the KeySpec (fixed by the model class; `key` then says so). */
  readonly constant?: boolean;
}

export interface ConfigReader {
  readonly raw: HfConfig;
  /** The first key of `spec` that is present and a number (null counts as absent). */
  number(spec: KeySpec): number | undefined;
  /** Which entry of `spec` gives `number(spec)`, or undefined when none does. */
  locate(spec: KeySpec): ConfigSource | undefined;
  /** A raw value by dotted path, or undefined. */
  value(path: string): unknown;
  bool(path: string): boolean | undefined;
}

/**
 * Fused layouts, each an index map from (heads per rank) to the rows a rank gathers, in the order its
 * local tensor is assembled:
 * - `qkv-interleaved`: per head `[q, k, v]` (bloom, gpt-neox, gpt_bigcode MHA, deberta v1)
 * - `qkv-grouped`: per kv group `[q × (nh/nkv), k, v]` (falcon; covers MHA and MQA too)
 * - `qkv-concat`: `[Q; K; V]` with kv sizes (mpt, phi3, gpt2/openai-gpt, gpt_bigcode MQA, chatglm)
 * - `qkv-codegen`: 4 blocks of `[q; v; k]` (codegen's mp_num = 4)
 * - `gate-up`: `[gate; up]` halves (phi3, glm, chatglm)
 * - `yuan-qk` / `yuan-v`: Yuan 2's shared-QK attention (q and k concatenated then re-split per head)
 */
export type LayoutKind = 'qkv-interleaved' | 'qkv-grouped' | 'qkv-concat' | 'qkv-codegen' | 'gate-up' | 'yuan-qk' | 'yuan-v';

export interface WeightRule {
  /**
   * A dotted name suffix. It is tried against the module path (the name without its last segment, so
   * one rule covers `.weight` and `.bias`), then against the whole name (for bare parameters such as
   * `final_logits_bias`). `#` matches any number segment, `*` any one segment.
   */
  match: string;
  role: Role;
  /** Attention group whose head counts apply (a key of the descriptor's `attention`). Default `self`. */
  attention?: string;
  layout?: LayoutKind | ((config: ConfigReader) => LayoutKind);
  /** Weights that must agree on one split share a group; default `attn:<attention>` or `mlp`. */
  group?: string;
  /** The weight is stored `[in, out]` (GPT-2's Conv1D): column splits dim 1, row splits dim 0. */
  transposed?: boolean;
  /** The stored dimension that indexes heads directly (xlnet's `[d_model, heads, d_head]`, t5's bias). */
  headAxis?: number;
  /**
   * The width the weight reads (q, qk, qkv, MLP up/gate: its input features) or writes (attention
   * output, MLP down: its output features) when that is not the hidden size: the config key(s)
   * naming it. Perceiver's decoder reads and writes d_model-wide rows while the hidden state (the
   * latents) is d_latents wide. Splits are unaffected (heads and MLP features are split, never this
   * width); the consistency check holds the weight to this width instead of the hidden size, and
   * refuses a checkpoint that disagrees with the key.
   */
  width?: KeySpec;
  /**
   * What the engine uses the weight for, beyond its role: norms (`attn_norm`, `mlp_norm`, `final_norm`,
   * `embed_norm`, `q_norm`, `k_norm`) and side projections (`project_in`, `project_out`).
   */
  slot?: string;
  /** Shown in the plan beside the rule. */
  note?: string;
}

export interface AttentionKeys {
  /** A constant (`[8]`) when the model class fixes the count rather than the config. */
  heads: KeySpec;
  /** Absent: equal to heads. */
  kvHeads?: KeySpec;
  /** Absent: derived from the projection shapes. */
  headDim?: KeySpec;
}

export interface FamilyDescriptor {
  modelType: string;
  /** Other `model_type` strings that mean the same family (e.g. RefinedWeb for falcon). */
  aliases?: readonly string[];
  /** What users call it, for messages. */
  title: string;
  kind: 'causal' | 'seq2seq' | 'encoder';
  /** Set when tp refuses the family; the reason is shown verbatim. */
  refuse?: { reason: string; hint?: string };
  config: {
    hidden: KeySpec;
    layers: KeySpec;
    vocab: KeySpec;
    intermediate?: KeySpec;
    paddedVocab?: KeySpec;
    experts?: KeySpec;
    expertsPerToken?: KeySpec;
    /** Encoder–decoders whose encoder has its own depth or MLP width (checked against the encoder stack). */
    encoderLayers?: KeySpec;
    encoderIntermediate?: KeySpec;
  };
  /**
   * The stored blocks are shared by several layers (ALBERT's layer groups), so the number of stored
   * blocks is not the number of layers and is not checked against it.
   */
  sharedLayers?: boolean;
  attention: Readonly<Record<string, AttentionKeys>>;
  /** `tie_word_embeddings` when config.json does not say (the HF class default). */
  tieDefault: boolean;
  /** Does the class carry an LM head at all (false for e.g. SplinterModel). Default true. */
  hasLmHead?: boolean;
  /** The stored output projection is also the decoder's input embedding (fsmt). */
  lmHeadIsEmbedding?: boolean;
  /** Ordered: the first matching rule decides. */
  weights: readonly WeightRule[];
  /** How the engine runs the family; absent when tp plans it but does not run it yet. */
  decoder?: (config: ConfigReader) => DecoderSpec;
  /** How the engine runs an encoder family (kind `encoder`); absent when it does not run it yet. */
  encoder?: (config: ConfigReader) => EncoderSpec;
  /** How the engine runs an encoder–decoder family (kind `seq2seq`); absent when it does not run it yet. */
  seq2seq?: (config: ConfigReader) => Seq2SeqSpec;
  /** Why the engine does not run this family yet (shown when a session is asked for it). */
  engineGap?: string;
  /** Facts worth showing with a plan of this family (e.g. why DeepSpeed refuses it and we do not). */
  notes?: readonly string[];
}
