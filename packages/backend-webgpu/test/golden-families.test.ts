/**
 * The encoder, encoder–decoder and non-standard families on WebGPU against HF transformers' own
 * outputs (../shared/golden): masked-LM logits and last hidden states, decoder logits, encoder outputs
 * and greedy tokens, at TP=1 and TP=2 (also against TP=1), and TP=4 where the attention differs most
 * (relative-position tables, expectation scoring, per-sequence LSH bias, transient-global keys). These
 * exercise interface v3's attention on a real WebGPU device (lavapipe in CI).
 */
import { goldenCases } from '@tp/core/testing';
import { describe, it } from 'vitest';
import { adapterSkip, backend } from './helpers/adapter.js';
import { GOLDEN_DIR, goldenSkip } from './helpers/golden.js';

const ENCODERS = ['bert', 'roberta', 'xlm-roberta', 'camembert', 'electra', 'ernie', 'albert', 'roformer', 'esm', 'splinter', 'luke', 'nezha', 'yoso', 'deberta', 'deberta-v2', 'perceiver'];
const SEQ2SEQ = ['t5', 't5_v1_1', 'bart', 'mvp', 'plbart', 'marian', 'm2m_100', 'pegasus', 'longt5', 'bigbird_pegasus'];
const OTHERS = ['reformer'];
const TP4 = ['deberta-v2', 'nezha', 'yoso', 'longt5', 'reformer'];

const skip = adapterSkip || goldenSkip;

describe(`WebGPU golden encoders, encoder–decoders and Reformer${skip}`, () => {
  const all = [...ENCODERS, ...SEQ2SEQ, ...OTHERS];
  const cases = [
    ...goldenCases(backend, { goldenDir: GOLDEN_DIR, families: all.filter((f) => !TP4.includes(f)), tpSizes: [1, 2] }),
    ...goldenCases(backend, { goldenDir: GOLDEN_DIR, families: TP4, tpSizes: [1, 2, 4] }),
  ];
  for (const c of cases) it.skipIf(skip !== '')(c.name, c.run);
});
