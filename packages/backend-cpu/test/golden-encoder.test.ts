/**
 * Every encoder family the engine runs, against HF transformers' own outputs (../shared/golden): the
 * base model's last hidden state and the masked-LM logits at every position of both sequences, at
 * TP = 1, 2, 3 and 4 (TP=3 splits 4 heads unevenly: 2, 1, 1), and TP=N against TP=1. Then the golden
 * families the engine refuses, each with its reason.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { findFamily, initInference, type EncoderOutput } from '@tp/core';
import { backend, concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { goldenFolders, readGolden, type Golden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';

/** Perceiver's hidden state is its latents ([16 × 64] per sequence) and its logits are at its 10 decoder queries. */
const ENCODERS = ['bert', 'roberta', 'xlm-roberta', 'camembert', 'electra', 'ernie', 'albert', 'roformer', 'esm', 'splinter', 'perceiver', 'luke', 'nezha', 'yoso', 'deberta', 'deberta-v2'];
/** Golden families tp plans but does not run; each refusal names what is missing. */
const REFUSED: Record<string, RegExp> = {};
const GOLDEN_TOL = 1e-4;
const TP_TOL = 1e-5;

const inputsOf = (g: Golden) => g.input_ids.map((tokens, b) => ({ tokens, ...(g.token_type_ids ? { tokenTypes: g.token_type_ids[b]! } : {}) }));
const flat3 = (x: number[][][]) => Float32Array.from(x.flat(2));
const all = (out: EncoderOutput[], key: 'hidden' | 'logits') => concat(out.map((o) => o[key]!));

describe('the golden encoder families', () => {
  test.skipIf(!hasGolden)(`the engine runs exactly the encoder golden folders whose model_type has an encoder spec (${ENCODERS.length} families)${needsGolden}`, () => {
    const runnable = goldenFolders().filter((name) => {
      const g = readGolden(name);
      return g.kind === 'encoder' && findFamily(g.model_type)?.encoder !== undefined;
    });
    expect(runnable.sort()).toEqual([...ENCODERS].sort());
  });

  for (const [name, reason] of Object.entries(REFUSED)) {
    test.skipIf(!hasGolden)(`${name} is refused before any rank starts, saying what is not implemented${needsGolden}`, async () => {
      const error = await expectTpError(initInference(goldenDir(name), { backend }), 'unsupported-model', { modelType: readGolden(name).model_type });
      expect(error['reason']).toMatch(reason);
      expect(error.message).toMatch(/tp plan still works for it/);
    });
  }
});

describe.each(ENCODERS)('%s', (family) => {
  let tp1: EncoderOutput[] = [];

  beforeAll(async () => {
    if (!hasGolden) return;
    await withSession(goldenDir(family), { tpSize: 1 }, async (s) => {
      tp1 = await s.encoderOutputs(inputsOf(readGolden(family)));
    });
  });

  test.skipIf(!hasGolden)(`TP=1 last hidden state matches golden within ${GOLDEN_TOL} of its spread${needsGolden}`, () => {
    const g = readGolden(family);
    expect(tp1.map((o) => o.tokens)).toEqual(g.input_ids);
    expect(relativeError(all(tp1, 'hidden'), flat3(g.last_hidden_state!))).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  test.skipIf(!hasGolden)(`TP=1 masked-LM logits match golden within ${GOLDEN_TOL} of their spread (or, without a head, none are returned)${needsGolden}`, () => {
    const g = readGolden(family);
    if (g.logits === undefined) {
      expect(tp1.every((o) => o.logits === undefined)).toBe(true);
      return;
    }
    expect(relativeError(all(tp1, 'logits'), flat3(g.logits))).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  for (const tp of [2, 3, 4]) {
    test.skipIf(!hasGolden)(`TP=${tp} hidden states and logits match TP=1 within ${TP_TOL} and golden within ${GOLDEN_TOL}${needsGolden}`, async () => {
      const g = readGolden(family);
      await withSession(goldenDir(family), { tpSize: tp }, async (s) => {
        expect(s.liveWorkers).toBe(tp);
        const out = await s.encoderOutputs(inputsOf(g));
        expect(relativeError(all(out, 'hidden'), all(tp1, 'hidden'))).toBeLessThanOrEqual(TP_TOL);
        expect(relativeError(all(out, 'hidden'), flat3(g.last_hidden_state!))).toBeLessThanOrEqual(GOLDEN_TOL);
        if (g.logits !== undefined) {
          expect(relativeError(all(out, 'logits'), all(tp1, 'logits'))).toBeLessThanOrEqual(TP_TOL);
          expect(relativeError(all(out, 'logits'), flat3(g.logits))).toBeLessThanOrEqual(GOLDEN_TOL);
        }
      });
    });
  }
});

describe('encoder sessions', () => {
  test.skipIf(!hasGolden)(`a right-padded batch gives each sequence what it gives alone (padding masked, RoBERTa positions counted from padding_idx + 1, relative positions of the padded length), at TP=2${needsGolden}`, async () => {
    for (const family of ['bert', 'roberta', 'luke', 'nezha', 'deberta', 'deberta-v2']) {
      const g = readGolden(family);
      const short = { tokens: g.input_ids[1]!.slice(0, 6), ...(g.token_type_ids ? { tokenTypes: g.token_type_ids[1]!.slice(0, 6) } : {}) };
      const long = inputsOf(g)[0]!;
      await withSession(goldenDir(family), { tpSize: 2 }, async (s) => {
        const [alone] = await s.encoderOutputs([short]);
        const [, padded] = await s.encoderOutputs([long, short]);
        expect(padded!.hidden!.length).toBe(6 * 64);
        expect(relativeError(padded!.hidden!, alone!.hidden!), family).toBeLessThanOrEqual(TP_TOL);
        expect(relativeError(padded!.logits!, alone!.logits!), family).toBeLessThanOrEqual(TP_TOL);
      });
    }
  });

  test.skipIf(!hasGolden)(`YOSO's padding is not masked, as in transformers (int(1 + mask/10000) = 1): a padded sequence gives what it gives with its pad tokens written out, not what it gives alone, at TP=2${needsGolden}`, async () => {
    const g = readGolden('yoso');
    const pad = 1; // the golden config's pad_token_id: what a padded batch fills the rows with
    const short = g.input_ids[1]!.slice(0, 6);
    await withSession(goldenDir('yoso'), { tpSize: 2 }, async (s) => {
      const [, padded] = await s.encoderOutputs([g.input_ids[0]!, short]);
      const [written] = await s.encoderOutputs([[...short, ...Array<number>(4).fill(pad)]]);
      const [alone] = await s.encoderOutputs([short]);
      expect(relativeError(padded!.hidden!, written!.hidden!.slice(0, 6 * 64))).toBeLessThanOrEqual(TP_TOL);
      expect(relativeError(padded!.logits!, written!.logits!.slice(0, 6 * 256))).toBeLessThanOrEqual(TP_TOL);
      expect(relativeError(padded!.hidden!, alone!.hidden!)).toBeGreaterThan(1e-3);
    });
  });

  test.skipIf(!hasGolden)(`--vocab-parallel: the embedding and the tied MLM decoder split by vocabulary (bias following), logits all-gathered, still golden's${needsGolden}`, async () => {
    for (const family of ['bert', 'roberta', 'electra', 'albert']) {
      const g = readGolden(family);
      await withSession(goldenDir(family), { tpSize: 2, vocabParallel: true }, async (s) => {
        expect(s.plan.lmHead?.split).toBe('vocab');
        const out = await s.encoderOutputs(inputsOf(g));
        expect(relativeError(all(out, 'logits'), flat3(g.logits)), family).toBeLessThanOrEqual(GOLDEN_TOL);
      });
    }
  });

  test.skipIf(!hasGolden)(`logits() of an encoder are its masked-LM logits; generate() is refused, naming the methods that fit${needsGolden}`, async () => {
    const g = readGolden('bert');
    await withSession(goldenDir('bert'), { tpSize: 2 }, async (s) => {
      const logits = await s.logits(g.input_ids);
      const ref = await s.encoderOutputs(g.input_ids, { hidden: false });
      expect(ref[0]!.hidden).toBeUndefined();
      expect(relativeError(concat(logits), all(ref, 'logits'))).toBe(0);
      const error = await expectTpError(s.generate(g.input_ids), 'invalid-argument', { argument: 'method' });
      expect(error.message).toMatch(/generate\(\) does not fit BERT, an encoder; it has encoderOutputs\(\)/);
      // The session is still usable after a refused call.
      expect((await s.logits([g.input_ids[0]!]))[0]!.length).toBe(10 * 256);
    });
  });

  test.skipIf(!hasGolden)(`bad encoder inputs are refused before any rank runs: token types out of range or of the wrong length, logits of a model without a head${needsGolden}`, async () => {
    await withSession(goldenDir('bert'), { tpSize: 1 }, async (s) => {
      await expectTpError(s.encoderOutputs([{ tokens: [5, 6, 7], tokenTypes: [0, 2, 0] }]), 'invalid-argument', { argument: 'tokenTypes' });
      await expectTpError(s.encoderOutputs([{ tokens: [5, 6, 7], tokenTypes: [0, 1] }]), 'invalid-argument', { argument: 'tokenTypes' });
      await expectTpError(s.encoderOutputs([[5, 300]]), 'invalid-argument', { argument: 'tokens' });
    });
    await withSession(goldenDir('splinter'), { tpSize: 1 }, async (s) => {
      await expectTpError(s.encoderOutputs([[5, 6]], { logits: true }), 'invalid-argument', { argument: 'logits' });
    });
  });
});
