/**
 * Every decoder family the engine runs, on WebGPU, against HF transformers' own outputs
 * (../shared/golden): logits at every prompt position, the greedy continuation and the logits that
 * chose each new token (the KV-cache path), at TP=1 and TP=2 (TP=2 also against TP=1), and TP=4 for
 * a few families. On lavapipe in CI, so the models are golden's tiny ones.
 */
import { goldenCases } from '@tp/core/testing';
import { describe, it } from 'vitest';
import { adapterSkip, backend } from './helpers/adapter.js';
import { GOLDEN_DIR, goldenSkip } from './helpers/golden.js';

/** The causal golden folders with a decoder (the CPU backend's golden test checks that list). */
const FAMILIES = [
  'llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'phi3', 'mixtral', 'qwen2_moe', 'gpt_neox', 'opt', 'bloom',
  'falcon', 'falcon_new_arch', 'gptj', 'gpt_neo', 'gpt2', 'openai-gpt', 'gpt_bigcode', 'mpt', 'phi', 'codegen', 'xglm',
];
/** TP=4 where it exercises something different: kv heads replicated (llama), experts, ALiBi, Conv1D. */
const TP4 = ['llama', 'mixtral', 'bloom', 'gpt2'];

const skip = adapterSkip || goldenSkip;

describe(`WebGPU golden logits and greedy tokens${skip}`, () => {
  const cases = [
    ...goldenCases(backend, { goldenDir: GOLDEN_DIR, families: FAMILIES.filter((f) => !TP4.includes(f)), tpSizes: [1, 2] }),
    ...goldenCases(backend, { goldenDir: GOLDEN_DIR, families: TP4, tpSizes: [1, 2, 4] }),
  ];
  for (const c of cases) it.skipIf(skip !== '')(c.name, c.run);
});

/**
 * With storage bindings of 40 KiB (backendOptions.maxBindingBytes), golden's embedding tables, LM
 * heads and GPT-2's MLP weights are split into row blocks, as a large vocabulary is on a real adapter:
 * nothing changes.
 */
describe(`WebGPU golden logits with weights split across bindings${skip}`, () => {
  const session = { backendOptions: { maxBindingBytes: 40 * 1024 } };
  for (const c of goldenCases(backend, { goldenDir: GOLDEN_DIR, families: ['llama', 'gpt2'], tpSizes: [1, 2], session })) {
    it.skipIf(skip !== '')(`${c.name} (weights split across 40 KiB bindings)`, c.run);
  }
});

/**
 * Attention split over the keys in pieces of 3 (backendOptions.attentionSplitKeys: every prefill and
 * decode call takes the flash-decoding path) and decode GEMVs reducing with subgroup operations
 * (gemvSubgroups, where the device has them): golden's logits and greedy tokens as before. BLOOM adds
 * ALiBi; GPT-2 biases and Conv1D weights.
 */
describe(`WebGPU golden logits with split attention and subgroup GEMVs${skip}`, () => {
  const session = { backendOptions: { attentionSplitKeys: 3, gemvSubgroups: true } };
  for (const c of goldenCases(backend, { goldenDir: GOLDEN_DIR, families: ['llama', 'gpt2', 'bloom'], tpSizes: [1, 2], session })) {
    it.skipIf(skip !== '')(`${c.name} (attention in pieces of 3 keys, subgroup GEMVs)`, c.run);
  }
});
