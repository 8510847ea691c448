/** The registry of family descriptors, keyed by `model_type` (and aliases). */
import type { ConfigReader, FamilyDescriptor } from '../descriptor.js';
import { GENERIC_KEYS } from '../config.js';
import { InternalError } from '../../errors/index.js';
import { encoderFamily } from './encoders.js';
import { gptFamily } from './gpt-family.js';
import { llamaFamily } from './llama-family.js';
import { otherFamily } from './others.js';
import { remoteFamily } from './remote.js';
import { seq2seqFamily } from './seq2seq.js';

export const FAMILIES: readonly FamilyDescriptor[] = [
  ...llamaFamily,
  ...gptFamily,
  ...encoderFamily,
  ...seq2seqFamily,
  ...otherFamily,
  ...remoteFamily,
];

const byType = new Map<string, FamilyDescriptor>();
for (const family of FAMILIES) {
  for (const name of [family.modelType, ...(family.aliases ?? [])]) {
    if (byType.has(name)) throw new InternalError(`two descriptors claim model_type "${name}"`);
    byType.set(name, family);
  }
}

export function findFamily(modelType: string): FamilyDescriptor | undefined {
  return byType.get(modelType) ?? byType.get(modelType.toLowerCase());
}

export function knownModelTypes(): string[] {
  return [...byType.keys()].sort();
}

const KIND_BY_CLASS: ReadonlyArray<[RegExp, FamilyDescriptor['kind']]> = [
  [/ForConditionalGeneration$|MTModel$|Seq2Seq/, 'seq2seq'],
  [/ForCausalLM$|LMHeadModel$/, 'causal'],
];

/** A descriptor for an unknown model type: only generic rules, keys from DeepSpeed's list. */
export function genericDescriptor(modelType: string, config: ConfigReader): FamilyDescriptor {
  const architectures = Array.isArray(config.raw['architectures']) ? (config.raw['architectures'] as unknown[]).map(String) : [];
  const kind = KIND_BY_CLASS.find(([re]) => architectures.some((a) => re.test(a)))?.[1] ?? 'causal';
  return {
    modelType,
    title: modelType,
    kind,
    tieDefault: config.bool('tie_word_embeddings') ?? false,
    config: { hidden: GENERIC_KEYS.hidden, layers: GENERIC_KEYS.layers, vocab: GENERIC_KEYS.vocab, intermediate: GENERIC_KEYS.intermediate },
    attention: { self: { heads: GENERIC_KEYS.heads, kvHeads: GENERIC_KEYS.kvHeads, headDim: GENERIC_KEYS.headDim } },
    weights: [],
  };
}
