/** The table of supported families, keyed by HF `model_type`. */
import { bertFamilies } from './bert.js';
import { gptFamilies } from './gpt.js';
import { llamaFamilies } from './llama.js';
import { seq2seqFamilies } from './seq2seq.js';
import type { FamilySpec } from './types.js';

export type { AttentionKind, Dims, FamilySpec, SpecialIds, TensorSpec, VariantSpec } from './types.js';

export const FAMILIES: ReadonlyMap<string, FamilySpec> = new Map([...llamaFamilies, ...gptFamilies, ...bertFamilies, ...seq2seqFamilies].map((f) => [f.modelType, f]));

export const FAMILY_NAMES: readonly string[] = [...FAMILIES.keys()];

/** Variant names per family, for families that have them. */
export function familyVariants(family: string): readonly string[] {
  return Object.keys(FAMILIES.get(family)?.variants ?? {});
}
