/**
 * Beam search and multi-token banned words through the engine, on synthetic checkpoints
 * (tools/tiny-models): each returned hypothesis' score is the sum of its tokens' log-probabilities
 * recomputed from logits() (and divided by length^lengthPenalty), the best beats greedy's sum, TP=2
 * chooses what TP=1 does, a prompt batched with a longer one (padding; an encoder–decoder's source
 * expanded per beam) gives what it gives alone, generation_config.json's num_beams is used and
 * numBeams overrides it, and banned sequences never appear.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, test } from 'vitest';
import { pipeline, type GenerateOptions, type GenerateResult, type InferenceSession } from '@tp/core';
import { backend, expectTpError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();

/** ln softmax(row)[token], in f64. */
function logProb(row: ArrayLike<number>, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let total = 0;
  for (let i = 0; i < row.length; i++) total += Math.exp(row[i]! - max);
  return row[token]! - max - Math.log(total);
}

/** The summed log-probabilities of `tokens` after `prompt`, from the model's logits. */
async function recomputed(s: InferenceSession, prompt: number[], tokens: number[]): Promise<number> {
  const vocab = s.graph.geometry.vocab;
  if (s.graph.kind === 'seq2seq') {
    const start = s.generation.decoderStartTokenId ?? s.seq2seq!.decoderStartTokenId;
    const [out] = await s.seq2seqLogits([prompt], { decoderTokens: [[start, ...tokens]] });
    const width = out!.logits.length / (tokens.length + 1);
    return tokens.reduce((sum, t, i) => sum + logProb(out!.logits.subarray(i * width, i * width + Math.min(width, vocab)), t), 0);
  }
  const [logits] = await s.logits([[...prompt, ...tokens]]);
  const width = logits!.length / (prompt.length + tokens.length);
  return tokens.reduce((sum, t, i) => {
    const at = prompt.length - 1 + i;
    return sum + logProb(logits!.subarray(at * width, at * width + Math.min(width, vocab)), t);
  }, 0);
}

/** A copy of generation_config.json with `extra` merged in. */
async function withGenerationConfig(dir: string, extra: Record<string, unknown>): Promise<void> {
  const file = path.join(dir, 'generation_config.json');
  const current = JSON.parse(await readFile(file, 'utf8').catch(() => '{}')) as Record<string, unknown>;
  await writeFile(file, JSON.stringify({ ...current, ...extra }, null, 2));
}

const PROMPTS = [
  [5, 60, 61, 62, 9, 1, 17],
  [70, 71, 72],
];

async function checkScores(s: InferenceSession, prompts: number[][], results: GenerateResult[], lengthPenalty: number): Promise<void> {
  for (const [b, r] of results.entries()) {
    for (const h of r.sequences ?? [{ tokens: r.tokens, score: r.score!, logProb: r.logProb! }]) {
      const sum = await recomputed(s, prompts[b]!, h.tokens);
      expect(h.logProb, `prompt ${b}, ${h.tokens.join(',')}`).toBeCloseTo(sum, 3);
      expect(h.score).toBeCloseTo(h.logProb / h.tokens.length ** lengthPenalty, 6);
    }
  }
}

test('causal (llama): beams score their summed log-probs, beat greedy, TP=2 == TP=1, a padded batch == each prompt alone', async () => {
  const { dir } = await tiny('llama-beam', { family: 'llama', vocab: 320, seed: 11 });
  const options: GenerateOptions = { numBeams: 3, numReturnSequences: 3, maxNewTokens: 6, stopAtEos: false };
  const runs: GenerateResult[][] = [];
  for (const tpSize of [1, 2]) {
    runs.push(
      await withSession(dir, { tpSize }, async (s) => {
        const beams = await s.generate(PROMPTS, options);
        expect(beams.map((r) => r.sequences!.length)).toEqual([3, 3]);
        for (const r of beams) {
          expect(r.tokens).toEqual(r.sequences![0]!.tokens);
          expect(r.tokens).toHaveLength(6);
          const scores = r.sequences!.map((h) => h.score);
          expect(scores).toEqual([...scores].sort((a, b) => b - a));
        }
        await checkScores(s, PROMPTS, beams, 1);
        const greedy = await s.generate(PROMPTS, { maxNewTokens: 6, stopAtEos: false });
        for (const [b, g] of greedy.entries()) {
          expect(g.score).toBeUndefined();
          expect(beams[b]!.logProb!).toBeGreaterThanOrEqual((await recomputed(s, PROMPTS[b]!, g.tokens)) - 1e-6);
        }
        for (const [b, prompt] of PROMPTS.entries()) {
          const [alone] = await s.generate([prompt], options);
          expect(alone!.sequences!.map((h) => h.tokens)).toEqual(beams[b]!.sequences!.map((h) => h.tokens));
        }
        return beams;
      }),
    );
  }
  expect(runs[1]!.map((r) => r.sequences!.map((h) => h.tokens))).toEqual(runs[0]!.map((r) => r.sequences!.map((h) => h.tokens)));
  runs[1]!.forEach((r, b) => expect(r.score!).toBeCloseTo(runs[0]![b]!.score!, 4));
});

test('encoder–decoder (bart): num_beams from generation_config.json, numBeams overrides it, sources expanded per beam, TP=2 == TP=1', async () => {
  const { dir } = await tiny('bart-beam', { family: 'bart', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 6 });
  await withGenerationConfig(dir, { num_beams: 4, length_penalty: 1.5, num_return_sequences: 2 });
  const runs: GenerateResult[][] = [];
  for (const tpSize of [1, 2]) {
    runs.push(
      await withSession(dir, { tpSize }, async (s) => {
        expect(s.generation).toMatchObject({ numBeams: 4, lengthPenalty: 1.5, numReturnSequences: 2 });
        const beams = await s.generate(PROMPTS, { maxNewTokens: 5, forcedEosTokenId: null });
        expect(beams.map((r) => r.sequences!.length)).toEqual([2, 2]);
        await checkScores(s, PROMPTS, beams, 1.5);
        for (const [b, prompt] of PROMPTS.entries()) {
          const [alone] = await s.generate([prompt], { maxNewTokens: 5, forcedEosTokenId: null });
          expect(alone!.sequences!.map((h) => h.tokens)).toEqual(beams[b]!.sequences!.map((h) => h.tokens));
        }
        const greedy = await s.generate(PROMPTS, { maxNewTokens: 5, forcedEosTokenId: null, numBeams: 1, numReturnSequences: 1, returnLogits: true });
        for (const g of greedy) {
          expect(g.score).toBeUndefined();
          g.stepLogits!.forEach((row, i) => expect(g.tokens[i]).toBe(row.indexOf(Math.max(...row))));
        }
        return beams;
      }),
    );
  }
  expect(runs[1]!.map((r) => r.sequences!.map((h) => h.tokens))).toEqual(runs[0]!.map((r) => r.sequences!.map((h) => h.tokens)));
});

test('multi-token bad_words_ids: a banned sequence never appears, greedy or beams, and tokens outside it still can', async () => {
  const { dir } = await tiny('llama-bad', { family: 'llama', vocab: 320, seed: 12 });
  await withSession(dir, {}, async (s) => {
    const prompt = PROMPTS[0]!;
    const [free] = await s.generate([prompt], { maxNewTokens: 8, stopAtEos: false });
    const [beamFree] = await s.generate([prompt], { maxNewTokens: 8, stopAtEos: false, numBeams: 3 });
    for (const [base, extra] of [
      [free!, {}],
      [beamFree!, { numBeams: 3 }],
    ] as Array<[GenerateResult, GenerateOptions]>) {
      // Ban the pair and the triple the unconstrained run produced (counting the prompt's last token).
      const seen = [prompt.at(-1)!, ...base.tokens];
      const pair = seen.slice(2, 4);
      const triple = seen.slice(4, 7);
      const [out] = await s.generate([prompt], { maxNewTokens: 8, stopAtEos: false, badWordsIds: [pair, triple], ...extra });
      const text = `,${[prompt.at(-1)!, ...out!.tokens].join(',')},`;
      expect(text).not.toContain(`,${pair.join(',')},`);
      expect(text).not.toContain(`,${triple.join(',')},`);
      if (extra.numBeams === undefined) expect(out!.tokens.slice(0, 2)).toEqual(base.tokens.slice(0, 2));
    }
  });
});

test('beam options are checked: numReturnSequences within numBeams, no sampling with beams', async () => {
  const { dir } = await tiny('llama-beam', { family: 'llama', vocab: 320, seed: 11 });
  await withSession(dir, {}, async (s) => {
    await expectTpError(s.generate([[1, 2]], { numBeams: 2, numReturnSequences: 3 }), 'invalid-argument', { argument: 'numReturnSequences' });
    await expectTpError(s.generate([[1, 2]], { numBeams: 0 }), 'invalid-argument', { argument: 'numBeams' });
    await expectTpError(s.generate([[1, 2]], { numBeams: 2, temperature: 0.7 }), 'invalid-argument', { argument: 'numBeams' });
  });
});

test("pipeline('text2text-generation') takes transformers' num_beams and num_return_sequences: one generated_text per sequence", async () => {
  const { dir } = await tiny('bart-pipe', { family: 'bart', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 6 });
  const t2t = await pipeline('text2text-generation', dir, { backend });
  try {
    const out = await t2t('translate this sentence', { max_new_tokens: 6, num_beams: 3, num_return_sequences: 2 });
    const [gen] = await t2t.session.generate(['translate this sentence'], { maxNewTokens: 6, numBeams: 3, numReturnSequences: 2 });
    expect(out).toEqual(gen!.sequences!.map((h) => ({ generated_text: t2t.session.tokenizer!.decode(h.tokens) })));
  } finally {
    await t2t.dispose();
  }
});
