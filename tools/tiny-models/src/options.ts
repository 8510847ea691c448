/**
 * Options of {@link writeTinyModel} and their resolution into {@link Dims}: shared defaults, then the
 * family's own, then every check that would otherwise make a checkpoint HF cannot load.
 */
import { TINY_DTYPES, type TinyDtype } from './encode.js';
import { TinyModelError } from './errors.js';
import { FAMILIES, FAMILY_NAMES, type Dims, type FamilySpec } from './families/index.js';

export interface TinyModelOptions {
  /** An HF `model_type`: see {@link FAMILY_NAMES}. */
  family: string;
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  intermediate?: number;
  vocab?: number;
  maxPositions?: number;
  experts?: number;
  expertsPerToken?: number;
  /** Default f32. */
  dtype?: TinyDtype;
  /** Default 0. Any non-negative safe integer. */
  seed?: number;
  /** 1 (default): model.safetensors; N > 1: model-0000k-of-0000N.safetensors plus the index. */
  shards?: number;
  /** Default: on when vocab >= 300. */
  tokenizer?: boolean;
  /** falcon: multi_query | new_arch | alibi_mha; gpt_bigcode: mqa | mha. */
  variant?: string;
  /** Tie the output projection to the input embedding (default: the family's own default). */
  tie?: boolean;
}

export const DEFAULTS = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, maxPositions: 128, experts: 4, expertsPerToken: 2 } as const;

/** The smallest vocabulary that gets a tokenizer unless asked otherwise. */
export const TOKENIZER_MIN_VOCAB = 300;

export function familySpec(family: string): FamilySpec {
  const spec = FAMILIES.get(family);
  if (spec === undefined) {
    throw new TinyModelError(`unknown family "${family}"; choose one of: ${FAMILY_NAMES.join(', ')}`);
  }
  return spec;
}

function positiveInt(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new TinyModelError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function resolveDims(options: TinyModelOptions): Dims {
  const spec = familySpec(options.family);
  const name = spec.modelType;
  const fail = (message: string): never => {
    throw new TinyModelError(`${name}: ${message}`);
  };

  const variants = spec.variants ?? {};
  const variantName = options.variant ?? spec.defaultVariant;
  if (options.variant !== undefined && spec.variants === undefined) fail(`has no variants (got "${options.variant}")`);
  const variant = variantName === undefined ? undefined : variants[variantName];
  if (variantName !== undefined && variant === undefined) {
    fail(`unknown variant "${variantName}"; choose one of: ${Object.keys(variants).join(', ')}`);
  }
  const attention = variant?.attention ?? spec.attention;

  const hidden = positiveInt('hidden', options.hidden) ?? DEFAULTS.hidden;
  const familyDefaults = spec.defaults?.(hidden) ?? {};
  const layers = positiveInt('layers', options.layers) ?? DEFAULTS.layers;
  const heads = positiveInt('heads', options.heads) ?? familyDefaults.heads ?? DEFAULTS.heads;
  const vocab = positiveInt('vocab', options.vocab) ?? DEFAULTS.vocab;
  const maxPositions = positiveInt('maxPositions', options.maxPositions) ?? DEFAULTS.maxPositions;

  const givenKv = positiveInt('kvHeads', options.kvHeads);
  let kvHeads: number;
  switch (attention) {
    case 'mha':
      if (givenKv !== undefined && givenKv !== heads) fail(`has no grouped-query attention: kv heads are the ${heads} heads, got kvHeads ${givenKv}`);
      kvHeads = heads;
      break;
    case 'mqa':
      if (givenKv !== undefined && givenKv !== 1) fail(`${variantName ?? 'this family'} is multi-query: exactly 1 kv head, got kvHeads ${givenKv}`);
      kvHeads = 1;
      break;
    case 'gqa':
      kvHeads = givenKv ?? (spec.kvDefault === 'heads' ? heads : heads % DEFAULTS.kvHeads === 0 ? DEFAULTS.kvHeads : heads);
      if (heads % kvHeads !== 0) fail(`${heads} heads cannot be grouped over ${kvHeads} kv heads (heads must be a multiple of kvHeads)`);
      break;
  }

  const givenHeadDim = positiveInt('headDim', options.headDim);
  if (givenHeadDim === undefined && hidden % heads !== 0) fail(`hidden ${hidden} is not divisible by ${heads} heads`);
  const headDim = givenHeadDim ?? hidden / heads;
  if (spec.headDim !== 'free' && headDim * heads !== hidden) {
    fail(`head_dim is always hidden / heads here (${hidden} / ${heads}), got headDim ${headDim}`);
  }
  if ((variant?.rotary ?? spec.rotary ?? false) && headDim % 2 !== 0) {
    fail(`rotary embeddings need an even head_dim, got ${headDim}`);
  }

  const givenIntermediate = positiveInt('intermediate', options.intermediate);
  let intermediate: number;
  if (spec.mlp === '4x') {
    if (givenIntermediate !== undefined && givenIntermediate !== 4 * hidden) {
      fail(`the MLP width is fixed at 4 × hidden = ${4 * hidden} in HF's code, got intermediate ${givenIntermediate}`);
    }
    intermediate = 4 * hidden;
  } else {
    intermediate = givenIntermediate ?? familyDefaults.intermediate ?? DEFAULTS.intermediate;
  }

  const givenExperts = positiveInt('experts', options.experts);
  const givenTopK = positiveInt('expertsPerToken', options.expertsPerToken);
  let experts = 0;
  let expertsPerToken = 0;
  if (spec.moe === true) {
    experts = givenExperts ?? DEFAULTS.experts;
    expertsPerToken = givenTopK ?? Math.min(DEFAULTS.expertsPerToken, experts);
    if (expertsPerToken > experts) fail(`expertsPerToken ${expertsPerToken} exceeds the ${experts} experts`);
  } else if (givenExperts !== undefined || givenTopK !== undefined) {
    fail('is not a mixture-of-experts family (experts apply to mixtral and qwen2_moe)');
  }

  const special = spec.special(vocab);
  for (const [role, id] of Object.entries(special)) {
    if (id !== undefined && (id < 0 || id >= vocab)) fail(`vocab ${vocab} is too small for the ${role} token id ${id}`);
  }
  if (options.tie !== undefined && typeof options.tie !== 'boolean') fail(`tie must be true or false, got ${String(options.tie)}`);

  const dims: Dims = {
    family: name,
    variant: variantName,
    flags: variant?.flags ?? {},
    hidden,
    layers,
    heads,
    kvHeads,
    headDim,
    intermediate,
    vocab,
    maxPositions,
    experts,
    expertsPerToken,
    tie: options.tie ?? spec.tieDefault,
    special,
  };
  const problem = spec.check?.(dims);
  if (problem !== undefined) fail(problem);
  return dims;
}

/** The remaining write options, checked. */
export function resolveWriteOptions(options: TinyModelOptions, vocab: number): { dtype: TinyDtype; seed: number; shards: number; tokenizer: boolean } {
  const dtype = options.dtype ?? 'f32';
  if (!(TINY_DTYPES as readonly string[]).includes(dtype)) {
    throw new TinyModelError(`dtype must be one of ${TINY_DTYPES.join(', ')}, got ${String(dtype)}`);
  }
  const seed = options.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw new TinyModelError(`seed must be a non-negative integer, got ${String(seed)}`);
  }
  const shards = positiveInt('shards', options.shards) ?? 1;
  if (options.tokenizer !== undefined && typeof options.tokenizer !== 'boolean') {
    throw new TinyModelError(`tokenizer must be true or false, got ${String(options.tokenizer)}`);
  }
  return { dtype, seed, shards, tokenizer: options.tokenizer ?? vocab >= TOKENIZER_MIN_VOCAB };
}
