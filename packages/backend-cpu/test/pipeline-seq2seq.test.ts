/**
 * pipeline('text2text-generation') — DeepSpeed's AutoTP example, a T5 v1.1 pipeline split over
 * ranks with no policy — on synthetic T5 and BART checkpoints (tools/tiny-models): TP=2 equals TP=1,
 * the output is the generated text alone, and the task is refused for other kinds.
 */
import { expect, test } from 'vitest';
import { pipeline } from '@tp/core';
import { backend, concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const INPUT = 'translate English to German: The house is wonderful.';

test("pipeline('text2text-generation', t5, { tpSize: 2 }) gives [{ generated_text }], the decoded output alone, equal to TP=1", async () => {
  const { dir } = await tiny('t5', { family: 't5', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 4 });
  const texts: string[] = [];
  for (const tpSize of [1, 2]) {
    const t2t = await pipeline('text2text-generation', dir, { backend, tpSize });
    try {
      const out = await t2t(INPUT, { max_new_tokens: 12 });
      expect(out).toHaveLength(1);
      expect(Object.keys(out[0]!)).toEqual(['generated_text']);
      const [gen] = await t2t.session.generate([INPUT], { maxNewTokens: 12 });
      expect(out[0]!.generated_text).toBe(t2t.session.tokenizer!.decode(gen!.tokens));
      expect(out[0]!.generated_text.startsWith(INPUT)).toBe(false);
      const batch = await t2t([INPUT, 'summarize: a much longer input that pads the other one'], { max_new_tokens: 12 });
      expect(batch).toHaveLength(2);
      expect(batch[0]).toEqual(out);
      texts.push(out[0]!.generated_text);
    } finally {
      await t2t.dispose();
    }
  }
  expect(texts[1]).toBe(texts[0]);
});

test('synthetic T5 v1.0 (ReLU, tied head: output scaled by d_model^-0.5) and BART: TP=2 and TP=3 step logits equal TP=1', async () => {
  const models = [
    await tiny('t5-v1_0', { family: 't5', variant: 'v1_0', tie: true, hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 5 }),
    await tiny('bart', { family: 'bart', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 6 }),
  ];
  const prompts = [[5, 60, 61, 62, 9, 1], [70, 71, 72]];
  for (const { dir } of models) {
    const runs = [];
    for (const tpSize of [1, 2, 3]) {
      runs.push(await withSession(dir, { tpSize }, (s) => s.generate(prompts, { maxNewTokens: 6, stopAtEos: false, returnLogits: true, forcedEosTokenId: null })));
    }
    for (const run of runs.slice(1)) {
      expect(run.map((r) => r.tokens), dir).toEqual(runs[0]!.map((r) => r.tokens));
      for (let b = 0; b < prompts.length; b++) {
        expect(relativeError(concat(run[b]!.stepLogits!), concat(runs[0]![b]!.stepLogits!)), dir).toBeLessThanOrEqual(1e-5);
      }
    }
  }
});

test('text2text-generation is refused for a causal model, text-generation for an encoder–decoder', async () => {
  const t5 = await tiny('t5', { family: 't5', hidden: 96, layers: 2, heads: 6, intermediate: 160, vocab: 400, seed: 4 });
  const llama = await tiny('llama', { family: 'llama', vocab: 320 });
  await expectTpError(pipeline('text2text-generation', llama.dir, { backend }), 'invalid-argument', { argument: 'task' });
  await expectTpError(pipeline('text-generation', t5.dir, { backend }), 'invalid-argument', { argument: 'task' });
});
