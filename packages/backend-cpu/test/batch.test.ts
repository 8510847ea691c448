/**
 * Left padding: a batch of prompts of different lengths gives each prompt the logits and greedy tokens
 * it gets alone — for rotary (llama), ALiBi (bloom) and learned (gpt2) positions, at tp 1 and tp 2.
 */
import { describe, expect, test } from 'vitest';
import { relativeError, concat, withSession } from './helpers/engine.js';
import { readGolden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();

const TOL = 1e-5;
const NEW = 8;

/** Prompts of 3, 7 and 10 tokens, taken from golden's inputs (which avoid special ids). */
function prompts(name: string): number[][] {
  const [a, b] = readGolden(name).input_ids as [number[], number[]];
  return [b.slice(2, 5), a.slice(0, 7), [...b].reverse()];
}

describe.each([
  { name: 'llama', positions: 'RoPE' },
  { name: 'bloom', positions: 'ALiBi' },
  { name: 'gpt2', positions: 'learned positions' },
])('$name ($positions)', ({ name }) => {
  test.skipIf(!hasGolden).each([1, 2])(`tp %i: a left-padded batch of 3, 7 and 10 tokens matches each prompt run alone${needsGolden}`, async (tp) => {
    const batch = prompts(name);
    expect(batch.map((p) => p.length)).toEqual([3, 7, 10]);
    await withSession(goldenDir(name), { tpSize: tp }, async (s) => {
      const logits = await s.logits(batch);
      const greedy = await s.generate(batch, { maxNewTokens: NEW, stopAtEos: false, returnLogits: true });
      expect(logits.map((l) => l.length)).toEqual(batch.map((p) => p.length * s.graph.geometry.vocab));
      for (let i = 0; i < batch.length; i++) {
        const [alone] = await s.logits([batch[i]!]);
        const [aloneGreedy] = await s.generate([batch[i]!], { maxNewTokens: NEW, stopAtEos: false, returnLogits: true });
        expect(relativeError(logits[i]!, alone!), `logits of prompt ${i} (${batch[i]!.length} tokens)`).toBeLessThanOrEqual(TOL);
        expect(greedy[i]!.tokens, `greedy tokens of prompt ${i}`).toEqual(aloneGreedy!.tokens);
        expect(greedy[i]!.tokens).toHaveLength(NEW);
        expect(relativeError(concat(greedy[i]!.stepLogits!), concat(aloneGreedy!.stepLogits!)), `step logits of prompt ${i}`).toBeLessThanOrEqual(TOL);
      }
    });
  });
});

test.skipIf(!hasGolden)(`the full-length prompt in a padded batch still matches golden (padding does not shift the unpadded row)${needsGolden}`, async () => {
  const g = readGolden('llama');
  await withSession(goldenDir('llama'), { tpSize: 2 }, async (s) => {
    const logits = await s.logits([g.input_ids[0]!.slice(0, 4), g.input_ids[1]!]);
    expect(relativeError(logits[1]!, Float32Array.from(g.logits[1]!.flat()))).toBeLessThanOrEqual(1e-4);
    // and the padded prompt matches golden's first 4 positions (causal: later tokens do not matter)
    expect(relativeError(logits[0]!, Float32Array.from(g.logits[0]!.slice(0, 4).flat()))).toBeLessThanOrEqual(1e-4);
  });
});

describe('stopping and queueing in a batch (synthetic llama)', () => {
  // With these weights, greedy decoding from [24] reaches the EOS id (2) as its 6th new token.
  const model = () => tiny('llama-eos', { family: 'llama', hidden: 96, heads: 6, kvHeads: 3, intermediate: 192, vocab: 300, seed: 2, tokenizer: false });
  const EOS_PROMPT = [24];
  const OTHER = [7, 8, 9, 10, 11, 12];

  test.each([1, 2])('tp %i: a sequence that reaches EOS stops there (finishReason eos) while the rest of the batch runs to the length', async (tp) => {
    await withSession((await model()).dir, { tpSize: tp }, async (s) => {
      expect(s.spec.eosTokenId).toBe(2);
      const free = await s.generate([EOS_PROMPT], { maxNewTokens: 10, stopAtEos: false });
      const eosAt = free[0]!.tokens.indexOf(2);
      expect(eosAt, `greedy tokens ${free[0]!.tokens.join(' ')} contain no EOS`).toBeGreaterThanOrEqual(0);
      const [other] = await s.generate([OTHER], { maxNewTokens: 10, stopAtEos: true });
      expect(other!.tokens).not.toContain(2);

      const steps: Array<{ sequence: number; step: number }> = [];
      const out = await s.generate([EOS_PROMPT, OTHER], { maxNewTokens: 10, onToken: (e) => steps.push({ sequence: e.sequence, step: e.step }) });
      expect(out[0]!.finishReason).toBe('eos');
      expect(out[0]!.tokens).toEqual(free[0]!.tokens.slice(0, eosAt + 1));
      expect(out[1]!.finishReason).toBe('length');
      expect(out[1]!.tokens).toEqual(other!.tokens);
      expect(steps.filter((e) => e.sequence === 0)).toHaveLength(eosAt + 1);
      expect(steps.filter((e) => e.sequence === 1)).toHaveLength(10);
    });
  });

  test('requests made without waiting for each other run one at a time and give the results they give alone', async () => {
    await withSession((await model()).dir, { tpSize: 2 }, async (s) => {
      const options = { maxNewTokens: 6, stopAtEos: false, returnLogits: true } as const;
      const [a, b, c] = await Promise.all([s.generate([OTHER], options), s.logits([EOS_PROMPT, OTHER]), s.generate([EOS_PROMPT, [3, 4]], options)]);
      const a2 = await s.generate([OTHER], options);
      const b2 = await s.logits([EOS_PROMPT, OTHER]);
      const c2 = await s.generate([EOS_PROMPT, [3, 4]], options);
      expect(a.map((r) => r.tokens)).toEqual(a2.map((r) => r.tokens));
      expect(c.map((r) => r.tokens)).toEqual(c2.map((r) => r.tokens));
      for (let i = 0; i < 2; i++) expect(relativeError(b[i]!, b2[i]!)).toBeLessThanOrEqual(TOL);
      expect(relativeError(concat(a[0]!.stepLogits!), concat(a2[0]!.stepLogits!))).toBeLessThanOrEqual(TOL);
    });
  });
});
