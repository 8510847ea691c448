/**
 * Every encoder–decoder family the engine runs, against HF transformers' own outputs
 * (../shared/golden): the encoder's last hidden state, the decoder logits for golden's decoder
 * inputs, the greedy continuation and the logits that chose each new token (cross-attention from the
 * cached source, self-attention from the growing cache), at TP = 1, 2, 3 and 4 (TP=3 splits 4 heads
 * 2, 1, 1; T5's relative-bias table is split with them), and TP=N against TP=1. Then what the golden
 * folders do not cover: padded batches, and LongT5's local attention (the golden is transient-global).
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { findFamily, initInference, type GenerateResult, type InferenceSession } from '@tp/core';
import { backend, concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { flat, goldenFolders, readGolden, type Golden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useGoldenVariants } from './helpers/variant.js';

const variant = useGoldenVariants();

/** longt5: transient-global encoder attention (local_radius 3, global_block_size 4); bigbird_pegasus: original_full. */
const SEQ2SEQ = ['t5', 't5_v1_1', 'bart', 'mvp', 'plbart', 'marian', 'm2m_100', 'pegasus', 'longt5', 'bigbird_pegasus'];
const GOLDEN_TOL = 1e-4;
const TP_TOL = 1e-5;
/** golden's greedy run: 8 new tokens, eos and forced tokens ignored. */
const GREEDY = { maxNewTokens: 8, stopAtEos: false, returnLogits: true, forcedBosTokenId: null, forcedEosTokenId: null, badWordsIds: null } as const;

interface Outputs {
  hidden: Float32Array;
  logits: Float32Array;
  greedy: GenerateResult[];
}

async function run(s: InferenceSession, g: Golden): Promise<Outputs> {
  const out = await s.seq2seqLogits(g.input_ids, { decoderTokens: g.decoder_input_ids!, hidden: true });
  expect(out.map((o) => o.decoderTokens)).toEqual(g.decoder_input_ids);
  return { hidden: concat(out.map((o) => o.hidden!)), logits: concat(out.map((o) => o.logits)), greedy: await s.generate(g.input_ids, GREEDY) };
}

describe('the golden encoder–decoder families', () => {
  test.skipIf(!hasGolden)(`the engine runs exactly the seq2seq golden folders whose model_type has a seq2seq spec (${SEQ2SEQ.length} families)${needsGolden}`, () => {
    const runnable = goldenFolders().filter((name) => {
      const g = readGolden(name);
      return g.kind === 'seq2seq' && findFamily(g.model_type)?.seq2seq !== undefined;
    });
    expect(runnable.sort()).toEqual([...SEQ2SEQ].sort());
  });
});

describe.each(SEQ2SEQ)('%s', (family) => {
  let tp1: Outputs;

  beforeAll(async () => {
    if (!hasGolden) return;
    await withSession(goldenDir(family), { tpSize: 1 }, async (s) => {
      tp1 = await run(s, readGolden(family));
    });
  });

  test.skipIf(!hasGolden)(`TP=1 encoder output and decoder logits match golden within ${GOLDEN_TOL} of their spread${needsGolden}`, () => {
    const g = readGolden(family);
    expect(relativeError(tp1.hidden, Float32Array.from(g.encoder_last_hidden_state!.flat(2)))).toBeLessThanOrEqual(GOLDEN_TOL);
    expect(relativeError(tp1.logits, Float32Array.from(g.logits.flat(2)))).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  test.skipIf(!hasGolden)(`TP=1 greedy decoding gives golden's 8 tokens, and its step logits (the cached path) match within ${GOLDEN_TOL}${needsGolden}`, () => {
    const g = readGolden(family);
    expect(tp1.greedy.map((r) => r.tokens)).toEqual(g.greedy!.new_tokens);
    for (let b = 0; b < g.input_ids.length; b++) {
      expect(relativeError(concat(tp1.greedy[b]!.stepLogits!), flat(g.greedy!.step_logits[b]!)), `sequence ${b}`).toBeLessThanOrEqual(GOLDEN_TOL);
    }
  });

  for (const tp of [2, 3, 4]) {
    test.skipIf(!hasGolden)(`TP=${tp}: encoder output, decoder logits and step logits match TP=1 within ${TP_TOL}, greedy tokens identical${needsGolden}`, async () => {
      const g = readGolden(family);
      await withSession(goldenDir(family), { tpSize: tp }, async (s) => {
        expect(s.liveWorkers).toBe(tp);
        const out = await run(s, g);
        expect(relativeError(out.hidden, tp1.hidden)).toBeLessThanOrEqual(TP_TOL);
        expect(relativeError(out.logits, tp1.logits)).toBeLessThanOrEqual(TP_TOL);
        expect(relativeError(out.logits, Float32Array.from(g.logits.flat(2)))).toBeLessThanOrEqual(GOLDEN_TOL);
        expect(out.greedy.map((r) => r.tokens)).toEqual(g.greedy!.new_tokens);
        for (let b = 0; b < g.input_ids.length; b++) {
          expect(relativeError(concat(out.greedy[b]!.stepLogits!), concat(tp1.greedy[b]!.stepLogits!)), `step logits of sequence ${b}`).toBeLessThanOrEqual(TP_TOL);
        }
      });
    });
  }
});

describe('encoder–decoder sessions', () => {
  test.skipIf(!hasGolden)(`a padded source batch gives each sequence what it gives alone (encoder mask applied to self- and cross-attention), for T5's bias, BART's positions, LongT5's windows and global blocks, at TP=2${needsGolden}`, async () => {
    // LongT5: 5 of 10 rows give one global block of 4 (not 2), so the padded sequence has a bias of its own
    for (const family of ['t5', 'bart', 'longt5', 'bigbird_pegasus']) {
      const g = readGolden(family);
      const short = g.input_ids[1]!.slice(0, 5);
      const decoder = g.decoder_input_ids!;
      await withSession(goldenDir(family), { tpSize: 2 }, async (s) => {
        const [alone] = await s.seq2seqLogits([short], { decoderTokens: [decoder[1]!], hidden: true });
        const [, padded] = await s.seq2seqLogits([g.input_ids[0]!, short], { decoderTokens: decoder, hidden: true });
        expect(padded!.hidden!.length).toBe(5 * 64);
        expect(relativeError(padded!.hidden!, alone!.hidden!), family).toBeLessThanOrEqual(TP_TOL);
        expect(relativeError(padded!.logits, alone!.logits), family).toBeLessThanOrEqual(TP_TOL);
        const [genAlone] = await s.generate([short], GREEDY);
        const [, genPadded] = await s.generate([g.input_ids[0]!, short], GREEDY);
        expect(genPadded!.tokens).toEqual(genAlone!.tokens);
      });
    }
  });

  test.skipIf(!hasGolden)(`--vocab-parallel: the shared embedding and LM head split by vocabulary (final_logits_bias following), still golden's${needsGolden}`, async () => {
    for (const family of ['t5', 't5_v1_1', 'bart', 'm2m_100', 'longt5', 'bigbird_pegasus']) {
      const g = readGolden(family);
      await withSession(goldenDir(family), { tpSize: 2, vocabParallel: true }, async (s) => {
        expect(s.plan.lmHead?.split).toBe('vocab');
        const out = await s.seq2seqLogits(g.input_ids, { decoderTokens: g.decoder_input_ids! });
        expect(relativeError(concat(out.map((o) => o.logits)), Float32Array.from(g.logits.flat(2))), family).toBeLessThanOrEqual(GOLDEN_TOL);
      });
    }
  });

  test.skipIf(!hasGolden)(`logits() are the decoder logits of the start token by default; encoderOutputs() the encoder states; the decoder start token can be overridden${needsGolden}`, async () => {
    const g = readGolden('bart');
    await withSession(goldenDir('bart'), { tpSize: 2 }, async (s) => {
      const [first] = await s.logits([g.input_ids[0]!]);
      expect(first!.length).toBe(256);
      expect(relativeError(first!, Float32Array.from(g.logits[0]![0]!))).toBeLessThanOrEqual(GOLDEN_TOL);
      const [enc] = await s.encoderOutputs([g.input_ids[0]!]);
      expect(relativeError(enc!.hidden!, Float32Array.from(g.encoder_last_hidden_state![0]!.flat()))).toBeLessThanOrEqual(GOLDEN_TOL);
      expect(enc!.logits).toBeUndefined();
      const [other] = await s.logits([g.input_ids[0]!], { decoderStartTokenId: 5 });
      expect(relativeError(other!, first!)).toBeGreaterThan(1e-3);
      await expectTpError(s.encoderOutputs([g.input_ids[0]!], { logits: true }), 'invalid-argument', { argument: 'logits' });
    });
  });

  test.skipIf(!hasGolden)(`generation follows generation_config.json: forced_eos_token_id ends at the length limit, eos stops a sequence; options override (null disables)${needsGolden}`, async () => {
    const g = readGolden('bart'); // generation_config.json: eos 2, forced_eos_token_id 2
    await withSession(goldenDir('bart'), { tpSize: 2 }, async (s) => {
      expect(s.generation.forcedEosTokenId).toBe(2);
      const forced = await s.generate(g.input_ids, { maxNewTokens: 4, stopAtEos: false });
      expect(forced.map((r) => r.tokens.at(-1))).toEqual([2, 2]);
      expect(forced.map((r) => r.tokens.slice(0, 3))).toEqual(g.greedy!.new_tokens.map((t) => t.slice(0, 3)));
      // Stopping at eos: the forced eos is the last token and the reason is eos.
      const stopped = await s.generate(g.input_ids, { maxNewTokens: 4 });
      expect(stopped.map((r) => r.finishReason)).toEqual(['eos', 'eos']);
      // A forced first token and a banned token (the greedy choice 166 is never picked again).
      const first = await s.generate(g.input_ids, { ...GREEDY, maxNewTokens: 3, forcedBosTokenId: 7 });
      expect(first.map((r) => r.tokens[0])).toEqual([7, 7]);
      const banned = await s.generate(g.input_ids, { ...GREEDY, maxNewTokens: 3, badWordsIds: [[166]] });
      expect(banned.every((r) => !r.tokens.includes(166))).toBe(true);
      const bannedGreedy = await s.generate(g.input_ids, { maxNewTokens: 3, stopAtEos: false, forcedEosTokenId: null, badWordsIds: [[166]] });
      expect(bannedGreedy.map((r) => r.tokens)).toEqual(banned.map((r) => r.tokens));
      // The chosen token is the best one that is not banned.
      for (let b = 0; b < 2; b++) {
        const row = banned[b]!.stepLogits![0]!.slice();
        row[166] = -Infinity;
        expect(banned[b]!.tokens[0]).toBe(row.indexOf(Math.max(...row)));
      }
    });
  });
});

describe('LongT5 beyond the golden (transient-global, local_radius 3, global_block_size 4)', () => {
  /** The golden's weights as LongT5LocalAttention (transient-global's own tensors dropped), or as T5's SelfAttention. */
  const asLocal = (name: string) => (name.includes('global_') ? null : name.replace('TransientGlobalSelfAttention', 'LocalSelfAttention'));
  const asT5 = (name: string) => (name.includes('global_') ? null : name.replace('TransientGlobalSelfAttention', 'SelfAttention'));
  const encoded = async (dir: string, inputs: number[][]) => withSession(dir, { tpSize: 2 }, (s) => s.seq2seqLogits(inputs, { decoderTokens: inputs.map(() => [0, 5, 9]), hidden: true }));

  test.skipIf(!hasGolden)(`local attention whose radius covers the input (16 ≥ 9) is T5's full attention on the same weights, at TP=2${needsGolden}`, async () => {
    const g = readGolden('longt5');
    const local = await variant('longt5-local-16', 'longt5', { config: { encoder_attention_type: 'local', local_radius: 16 }, tensors: asLocal });
    const t5 = await variant('longt5-as-t5', 'longt5', { config: { model_type: 't5', architectures: ['T5ForConditionalGeneration'] }, tensors: asT5 });
    const [ours, full] = [await encoded(local, g.input_ids), await encoded(t5, g.input_ids)];
    expect(relativeError(concat(ours.map((o) => o.hidden!)), concat(full.map((o) => o.hidden!)))).toBeLessThanOrEqual(TP_TOL);
    expect(relativeError(concat(ours.map((o) => o.logits)), concat(full.map((o) => o.logits)))).toBeLessThanOrEqual(TP_TOL);
  });

  test.skipIf(!hasGolden)(`local attention is local: with local_radius 1 and 2 layers, changing the last of 10 tokens changes only the encoder states of tokens 7-9; under transient-global it reaches token 0 through its global block${needsGolden}`, async () => {
    const g = readGolden('longt5');
    const input = g.input_ids[0]!;
    const changed = [...input.slice(0, 9), input[9] === 100 ? 101 : 100];
    const width = 64;
    const rowDiff = (a: Float32Array, b: Float32Array, t: number) => Math.max(...a.subarray(t * width, (t + 1) * width).map((x, i) => Math.abs(x - b[t * width + i]!)));
    const local = await variant('longt5-local-1', 'longt5', { config: { encoder_attention_type: 'local', local_radius: 1 }, tensors: asLocal });
    const [before, after] = await encoded(local, [input, changed]);
    for (let t = 0; t < 7; t++) expect(rowDiff(before!.hidden!, after!.hidden!, t), `token ${t}`).toBe(0);
    for (const t of [7, 8, 9]) expect(rowDiff(before!.hidden!, after!.hidden!, t), `token ${t}`).toBeGreaterThan(1e-3);
    const global = await variant('longt5-global-1', 'longt5', { config: { local_radius: 1 } });
    const [globalBefore, globalAfter] = await encoded(global, [input, changed]);
    expect(rowDiff(globalBefore!.hidden!, globalAfter!.hidden!, 0)).toBeGreaterThan(1e-3);
  });
});
