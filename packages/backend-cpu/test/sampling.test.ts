/**
 * Sampling with temperature, top-k and top-p from a seed: reproducible, seed-dependent, identical
 * across tp sizes, and never outside the top-k / nucleus of the logits that chose each token.
 */
import { describe, expect, test } from 'vitest';
import { argmax, type GenerateOptions, type GenerateResult } from '@tp/core';
import { withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
// Random synthetic weights give flat next-token distributions, so a seed really matters.
const model = () => tiny('llama', { family: 'llama', hidden: 96, heads: 6, kvHeads: 3, intermediate: 192, vocab: 300, seed: 3, tokenizer: false });
const PROMPTS = [
  [5, 6, 7, 8],
  [200, 13, 99, 45, 1, 77],
];
const SAMPLE = { temperature: 0.8, topK: 20, topP: 0.9, maxNewTokens: 24, stopAtEos: false, returnLogits: true } as const;

const tokens = (r: GenerateResult[]) => r.map((x) => x.tokens);

async function generate(tp: number, options: GenerateOptions): Promise<GenerateResult[]> {
  return withSession((await model()).dir, { tpSize: tp }, (s) => s.generate(PROMPTS, options));
}

/** The tokens top-k then top-p keep for this row, as transformers' TopK then TopP warpers do. */
function allowed(row: Float32Array, temperature: number, topK: number, topP: number): Set<number> {
  const order = Array.from(row, (l, i) => ({ i, l: l / temperature })).sort((a, b) => b.l - a.l || a.i - b.i);
  const kth = order[topK - 1]!.l;
  const top = order.filter((c) => c.l >= kth); // ties with the k-th are kept
  const max = top[0]!.l;
  const p = top.map((c) => Math.exp(c.l - max));
  const total = p.reduce((a, b) => a + b, 0);
  const keep = new Set<number>();
  let cumulative = 0;
  for (let k = 0; k < top.length; k++) {
    keep.add(top[k]!.i);
    cumulative += p[k]! / total;
    if (cumulative >= topP + 1e-6) break;
  }
  return keep;
}

describe('seeded sampling (temperature 0.8, topK 20, topP 0.9)', () => {
  test('the same seed gives the same tokens twice (two sessions)', async () => {
    const a = await generate(1, { ...SAMPLE, seed: 42 });
    const b = await generate(1, { ...SAMPLE, seed: 42 });
    expect(tokens(b)).toEqual(tokens(a));
    expect(a.every((r) => r.tokens.length === SAMPLE.maxNewTokens)).toBe(true);
  });

  test('a different seed gives different tokens, and sampling differs from greedy', async () => {
    const { dir } = await model();
    await withSession(dir, { tpSize: 1 }, async (s) => {
      const a = await s.generate(PROMPTS, { ...SAMPLE, seed: 42 });
      const b = await s.generate(PROMPTS, { ...SAMPLE, seed: 43 });
      const greedy = await s.generate(PROMPTS, { maxNewTokens: SAMPLE.maxNewTokens, stopAtEos: false });
      for (let i = 0; i < PROMPTS.length; i++) {
        expect(b[i]!.tokens, `prompt ${i}`).not.toEqual(a[i]!.tokens);
        expect(a[i]!.tokens, `prompt ${i}`).not.toEqual(greedy[i]!.tokens);
      }
    });
  });

  test('tp 2 samples the same tokens as tp 1 for the same seed', async () => {
    const one = await generate(1, { ...SAMPLE, seed: 7 });
    const two = await generate(2, { ...SAMPLE, seed: 7 });
    expect(tokens(two)).toEqual(tokens(one));
  });

  test('every sampled token lies in the top-k and top-p set of the step logits that chose it', async () => {
    const out = await generate(2, { ...SAMPLE, seed: 1234 });
    let beyondTop1 = 0;
    for (const r of out) {
      expect(r.stepLogits).toHaveLength(r.tokens.length);
      r.tokens.forEach((token, step) => {
        const row = r.stepLogits![step]!;
        const rank = Array.from(row).filter((l) => l > row[token]!).length;
        expect(rank, `step ${step}: token ${token} ranks ${rank}`).toBeLessThan(SAMPLE.topK);
        expect(allowed(row, SAMPLE.temperature, SAMPLE.topK, SAMPLE.topP).has(token), `step ${step}: token ${token} outside the nucleus`).toBe(true);
        if (rank > 0) beyondTop1++;
      });
    }
    // The check above is not vacuous: sampling did pick tokens other than the argmax.
    expect(beyondTop1).toBeGreaterThan(3);
  });

  test('topK 1 is greedy whatever the seed and temperature; temperature 0 is greedy', async () => {
    const { dir } = await model();
    await withSession(dir, { tpSize: 1 }, async (s) => {
      const greedy = await s.generate(PROMPTS, { maxNewTokens: 12, stopAtEos: false, returnLogits: true });
      for (const r of greedy) r.tokens.forEach((t, k) => expect(t).toBe(argmax(r.stepLogits![k]!)));
      const top1 = await s.generate(PROMPTS, { maxNewTokens: 12, stopAtEos: false, temperature: 1.5, topK: 1, seed: 99 });
      const cold = await s.generate(PROMPTS, { maxNewTokens: 12, stopAtEos: false, temperature: 0, topK: 20, seed: 5 });
      expect(tokens(top1)).toEqual(tokens(greedy));
      expect(tokens(cold)).toEqual(tokens(greedy));
    });
  });
});
