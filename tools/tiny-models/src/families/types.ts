/**
 * How a family is described: a config template and a tensor list, both functions of the resolved
 * dimensions. Everything a writer needs to know about a family lives in its table entry; the writer
 * itself has no per-family branches.
 */
import type { PyObject } from '../json.js';

/**
 * How keys and values relate to queries. `gqa`: any kv-head count dividing the heads; `mha`: kv heads
 * are the heads; `mqa`: one kv head.
 */
export type AttentionKind = 'gqa' | 'mha' | 'mqa';

/** The numbers a checkpoint is generated from, after defaults and checks. */
export interface Dims {
  readonly family: string;
  readonly variant: string | undefined;
  /** Switches of the chosen variant (falcon's `newArch`, `bias`...); empty for families without variants. */
  readonly flags: Readonly<Record<string, boolean>>;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly maxPositions: number;
  /** 0 for dense families. */
  readonly experts: number;
  readonly expertsPerToken: number;
  readonly tie: boolean;
  readonly special: SpecialIds;
}

/** Token ids the config names; the tokenizer puts its special tokens at exactly these ids. */
export interface SpecialIds {
  readonly bos?: number;
  readonly eos?: number;
  readonly pad?: number;
  /** xglm's `decoder_start_token_id`. */
  readonly decoderStart?: number;
  /** The masked-LM mask token (encoders): in the tokenizer only, not a config key. */
  readonly mask?: number;
}

/** One tensor to generate: values are mean + std·N(0, 1). */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly mean: number;
  readonly std: number;
}

export interface VariantSpec {
  readonly summary: string;
  /** The class save_pretrained ran on, when it differs from the family's. */
  readonly architecture?: string;
  readonly attention: AttentionKind;
  readonly flags: Readonly<Record<string, boolean>>;
  readonly rotary?: boolean;
}

export interface FamilySpec {
  /** The HF `model_type`. */
  readonly modelType: string;
  /** The class save_pretrained ran on, written to `architectures`. */
  readonly architecture: string;
  readonly summary: string;
  readonly attention: AttentionKind;
  /** Positions are rotary (RoPE), which needs an even head_dim. */
  readonly rotary?: boolean;
  /** The kv-head count when none is given: 2 for GQA families unless this says `heads`. */
  readonly kvDefault?: 'heads';
  readonly variants?: Readonly<Record<string, VariantSpec>>;
  readonly defaultVariant?: string;
  /** `free`: head_dim may differ from hidden / heads (written as `head_dim`). */
  readonly headDim?: 'free';
  /** `4x`: HF hard-codes the MLP width to 4 × hidden, whatever the config says. */
  readonly mlp?: 'free' | '4x';
  /** Routed experts (mixtral, qwen2_moe). */
  readonly moe?: boolean;
  /** The class default for tied input/output embeddings. */
  readonly tieDefault: boolean;
  /** Whether save_pretrained writes `tie_word_embeddings` even at its default value. */
  readonly tieKey: boolean;
  /** Defaults that differ from the shared ones, from the hidden size. */
  readonly defaults?: (hidden: number) => Partial<Pick<Dims, 'heads' | 'intermediate'>>;
  /** Family constraints beyond the shared ones; a message when violated. */
  readonly check?: (d: Dims) => string | undefined;
  readonly special: (vocab: number) => SpecialIds;
  /** Token names; unnamed roles use `<s>`, `</s>`, `<pad>`, `<unk>`. `unk: null` means no unknown token. */
  readonly tokenNames?: { bos?: string; eos?: string; pad?: string; unk?: string | null; mask?: string };
  /** The tokenizer prepends the bos token (llama's sentencepiece-derived tokenizers do). */
  readonly addBos?: boolean;
  /** The family's own config keys, as HF writes them (the writer adds the shared ones). */
  readonly config: (d: Dims) => PyObject;
  /** Every stored tensor, in module order (the order shards are filled in). */
  readonly tensors: (d: Dims) => TensorSpec[];
}

// ---- tensor-list building blocks ----------------------------------------------------------------

/** nn.Linear: weight [out, in] with std 1/sqrt(in), optional bias [out] with std 0.1. */
export function linear(module: string, out: number, inFeatures: number, bias = false): TensorSpec[] {
  const w: TensorSpec = { name: `${module}.weight`, shape: [out, inFeatures], mean: 0, std: 1 / Math.sqrt(inFeatures) };
  return bias ? [w, { name: `${module}.bias`, shape: [out], mean: 0, std: 0.1 }] : [w];
}

/** GPT-2's Conv1D: weight stored [in, out], bias [out]. */
export function conv1d(module: string, inFeatures: number, out: number): TensorSpec[] {
  return [
    { name: `${module}.weight`, shape: [inFeatures, out], mean: 0, std: 1 / Math.sqrt(inFeatures) },
    { name: `${module}.bias`, shape: [out], mean: 0, std: 0.1 },
  ];
}

/** LayerNorm / RMSNorm: weight `base` + 0.1·N(0, 1) (base 0 where the norm computes x·(1 + w)), bias 0.1·N. */
export function norm(module: string, width: number, bias: boolean, base = 1): TensorSpec[] {
  const w: TensorSpec = { name: `${module}.weight`, shape: [width], mean: base, std: 0.1 };
  return bias ? [w, { name: `${module}.bias`, shape: [width], mean: 0, std: 0.1 }] : [w];
}

export function embedding(module: string, rows: number, width: number, std = 1): TensorSpec[] {
  return [{ name: `${module}.weight`, shape: [rows, width], mean: 0, std }];
}

/** The output projection: its weight only when untied; a bias (gptj, codegen, phi) is stored either way. */
export function lmHead(d: Dims, module = 'lm_head', bias = false): TensorSpec[] {
  const head = linear(module, d.vocab, d.hidden, bias);
  return d.tie ? head.filter((t) => !t.name.endsWith('.weight')) : head;
}

/** Tensors for layers 0..n-1. */
export function perLayer(d: Dims, make: (i: number) => TensorSpec[]): TensorSpec[] {
  return Array.from({ length: d.layers }, (_, i) => make(i)).flat();
}
