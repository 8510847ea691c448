/**
 * Every decoder family the engine runs, against HF transformers' own outputs (../shared/golden): logits
 * at every prompt position, the greedy continuation and the logits that chose each new token (the
 * KV-cache path) at TP=1; then TP=2, 3 and 4 against TP=1.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { findFamily, initInference, type GenerateResult } from '@tp/core';
import { backend, concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { flat, goldenFolders, readGolden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';

/** The golden folders the engine runs: kind causal and a descriptor with a decoder. */
const FAMILIES = [
  'llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'phi3', 'mixtral', 'qwen2_moe', 'gpt_neox', 'opt', 'bloom',
  'falcon', 'falcon_new_arch', 'gptj', 'gpt_neo', 'gpt2', 'openai-gpt', 'gpt_bigcode', 'mpt', 'phi', 'codegen', 'xglm',
];
/** Golden-vs-engine tolerance: max |ours − golden| / (max − min of golden). */
const GOLDEN_TOL = 1e-4;
/** TP=N vs TP=1 tolerance, relative to the spread of the TP=1 logits. */
const TP_TOL = 1e-5;
const GREEDY = { maxNewTokens: 8, stopAtEos: false, returnLogits: true } as const;

describe('the golden families', () => {
  test.skipIf(!hasGolden)(`the engine runs exactly the causal golden folders whose model_type has a decoder (22 families here, and reformer)${needsGolden}`, () => {
    const runnable = goldenFolders().filter((name) => {
      const g = readGolden(name);
      return g.kind === 'causal' && findFamily(g.model_type)?.decoder !== undefined;
    });
    expect(runnable.sort()).toEqual([...FAMILIES, 'reformer'].sort());
  });

  test.skipIf(!hasGolden)(`reformer is a causal golden folder with a decoder, run without a KV cache by golden-reformer.test.ts rather than here${needsGolden}`, () => {
    const g = readGolden('reformer');
    expect(g.kind).toBe('causal');
    expect(findFamily(g.model_type)!.decoder).toBeDefined();
    expect(findFamily(g.model_type)!.engineGap).toBeUndefined();
    expect(FAMILIES).not.toContain('reformer');
  });
});

describe.each(FAMILIES)('%s', (family) => {
  let logits: Float32Array[] = [];
  let greedy: GenerateResult[] = [];

  beforeAll(async () => {
    if (!hasGolden) return;
    const g = readGolden(family);
    await withSession(goldenDir(family), { tpSize: 1 }, async (s) => {
      logits = await s.logits(g.input_ids);
      greedy = await s.generate(g.input_ids, GREEDY);
    });
  });

  test.skipIf(!hasGolden)(`TP=1 logits at every position of both sequences match golden within ${GOLDEN_TOL} of their spread${needsGolden}`, () => {
    const g = readGolden(family);
    expect(logits).toHaveLength(g.input_ids.length);
    const ours = concat(logits);
    const ref = Float32Array.from(g.logits.flat(2));
    expect(ours.length).toBe(ref.length);
    expect(relativeError(ours, ref)).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  test.skipIf(!hasGolden)(`TP=1 greedy generation gives golden's 8 new tokens${needsGolden}`, () => {
    const g = readGolden(family);
    expect(greedy.map((r) => r.tokens)).toEqual(g.greedy!.new_tokens);
    expect(greedy.map((r) => r.finishReason)).toEqual(g.input_ids.map(() => 'length'));
    expect(greedy.map((r) => r.promptTokens)).toEqual(g.input_ids);
  });

  test.skipIf(!hasGolden)(`TP=1 step logits (KV-cache path) match golden's within ${GOLDEN_TOL} of their spread${needsGolden}`, () => {
    const g = readGolden(family);
    for (let b = 0; b < g.input_ids.length; b++) {
      const steps = greedy[b]!.stepLogits!;
      expect(steps).toHaveLength(8);
      const ref = flat(g.greedy!.step_logits[b]!);
      expect(relativeError(concat(steps), ref), `sequence ${b}`).toBeLessThanOrEqual(GOLDEN_TOL);
    }
  });

  for (const tp of [2, 3, 4]) {
    if (family === 'codegen' && tp === 3) {
      test.skipIf(!hasGolden)(`TP=3 is refused with 'indivisible': CodeGen's fused qkv_proj (4 blocks) needs tp | 4 with 4 heads${needsGolden}`, async () => {
        const error = await expectTpError(initInference(goldenDir(family), { backend, tpSize: 3 }), 'indivisible');
        expect(error['validTp']).toEqual([1, 2, 4]);
      });
      continue;
    }
    test.skipIf(!hasGolden)(`TP=${tp} logits match TP=1 within ${TP_TOL} and greedy tokens are identical${needsGolden}`, async () => {
      const g = readGolden(family);
      await withSession(goldenDir(family), { tpSize: tp }, async (s) => {
        expect(s.plan.tpSize).toBe(tp);
        expect(s.liveWorkers).toBe(tp);
        const ours = await s.logits(g.input_ids);
        for (let b = 0; b < g.input_ids.length; b++) {
          expect(relativeError(ours[b]!, logits[b]!), `logits of sequence ${b}`).toBeLessThanOrEqual(TP_TOL);
        }
        const gen = await s.generate(g.input_ids, GREEDY);
        expect(gen.map((r) => r.tokens)).toEqual(greedy.map((r) => r.tokens));
        for (let b = 0; b < g.input_ids.length; b++) {
          expect(relativeError(concat(gen[b]!.stepLogits!), concat(greedy[b]!.stepLogits!)), `step logits of sequence ${b}`).toBeLessThanOrEqual(TP_TOL);
        }
      });
    });
  }
});
