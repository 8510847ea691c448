/** pipeline('text-generation', …) on a synthetic checkpoint with a tokenizer.json, at tp 2. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { pipeline } from '@tp/core';
import { backend, expectTpError, rejection, waitUntil } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const PROMPT = 'The model is split across several devices';

test("pipeline('text-generation', dir, { tpSize: 2 }) returns [{ generated_text }]: the prompt, then session.generate's tokens decoded", async () => {
  const { dir } = await tiny('llama', { family: 'llama', hidden: 96, heads: 6, kvHeads: 3, intermediate: 192, vocab: 320, seed: 9 });
  expect(existsSync(path.join(dir, 'tokenizer.json'))).toBe(true);
  const generator = await pipeline('text-generation', dir, { backend, tpSize: 2 });
  try {
    const { session } = generator;
    expect(session.plan.tpSize).toBe(2);
    expect(session.liveWorkers).toBe(2);
    expect(session.tokenizer).toBeDefined();

    const out = await generator(PROMPT, { max_new_tokens: 10, stopAtEos: false });
    expect(out).toHaveLength(1);
    expect(Object.keys(out[0]!)).toEqual(['generated_text']);
    const text = out[0]!.generated_text;
    expect(text.startsWith(PROMPT)).toBe(true);

    const [direct] = await session.generate([session.encode(PROMPT)], { maxNewTokens: 10, stopAtEos: false });
    expect(direct!.tokens).toHaveLength(10);
    const continuation = session.tokenizer!.decode(direct!.tokens);
    expect(continuation.length).toBeGreaterThan(0);
    expect(text.slice(PROMPT.length)).toBe(continuation);
    expect(direct!.text).toBe(continuation);

    // A text prompt given to generate is encoded the same way.
    const [fromText] = await session.generate([PROMPT], { maxNewTokens: 10, stopAtEos: false });
    expect(fromText!.promptTokens).toEqual(session.encode(PROMPT));
    expect(fromText!.tokens).toEqual(direct!.tokens);

    // Several prompts give one [{ generated_text }] per prompt; return_full_text false drops the prompt.
    const many = await generator([PROMPT, 'Each device'], { max_new_tokens: 4, stopAtEos: false });
    expect(many).toHaveLength(2);
    expect(many[0]![0]!.generated_text.startsWith(PROMPT)).toBe(true);
    expect(many[1]![0]!.generated_text.startsWith('Each device')).toBe(true);
    const bare = await generator(PROMPT, { max_new_tokens: 10, stopAtEos: false, return_full_text: false });
    expect(bare[0]!.generated_text).toBe(continuation);
  } finally {
    await generator.dispose();
  }
  expect(await waitUntil(() => generator.session.liveWorkers === 0, 5_000), `liveWorkers is ${generator.session.liveWorkers} after dispose()`).toBe(true);
  await expectTpError(generator(PROMPT, { max_new_tokens: 1 }), 'invalid-argument');
});

test('without tokenizer.json the pipeline takes token ids and refuses text with invalid-argument', async () => {
  const { dir } = await tiny('no-tokenizer', { family: 'llama', vocab: 300, seed: 9, tokenizer: false });
  const generator = await pipeline('text-generation', dir, { backend, tpSize: 2 });
  try {
    const error = await rejection(generator(PROMPT, { max_new_tokens: 1 }));
    expect((error as { code?: string }).code).toBe('invalid-argument');
    const [out] = await generator([1, 2, 3], { max_new_tokens: 2 });
    expect(out!.generated_token_ids.slice(0, 3)).toEqual([1, 2, 3]);
  } finally {
    await generator.dispose();
  }
});
