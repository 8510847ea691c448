/** initInference and requests refuse bad input with a TpError whose code says why. */
import { describe, expect, test } from 'vitest';
import { BackendMissingError, initInference, PlanError, UnsupportedModelError } from '@tp/core';
import { backend, expectTpError, rejection, withSession } from './helpers/engine.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const llama = () => tiny('llama', { family: 'llama', vocab: 300, seed: 1, tokenizer: false });

describe('initInference', () => {
  test.skipIf(!hasGolden)(`an encoder the engine does not run (nezha golden) is refused with UnsupportedModelError (unsupported-model), saying why${needsGolden}`, async () => {
    const error = await expectTpError(initInference(goldenDir('nezha'), { backend }), 'unsupported-model', { modelType: 'nezha' });
    expect(error).toBeInstanceOf(UnsupportedModelError);
    expect(error['reason']).toMatch(/functional relative positions/);
  });

  test.skipIf(!hasGolden)(`an encoder–decoder the engine does not run (longt5 golden) is refused with unsupported-model${needsGolden}`, async () => {
    await expectTpError(initInference(goldenDir('longt5'), { backend }), 'unsupported-model', { modelType: 'longt5' });
  });

  test.each([0, -1, 1.5, Number.NaN])('tpSize %s is invalid-argument', async (tpSize) => {
    const { dir } = await llama();
    await expectTpError(initInference(dir, { backend, tpSize }), 'invalid-argument', { argument: 'tpSize' });
  });

  test.skipIf(!hasGolden)(`codegen (4 heads) at tp 3 is 'indivisible', naming the tp sizes that work${needsGolden}`, async () => {
    const error = await expectTpError(initInference(goldenDir('codegen'), { backend, tpSize: 3 }), 'indivisible', { validTp: [1, 2, 4] });
    expect(error).toBeInstanceOf(PlanError);
  });

  test('a synthetic codegen with 4 heads at tp 3 is indivisible too; tp 5 over 4 heads is indivisible for llama', async () => {
    const { dir } = await tiny('codegen', { family: 'codegen', heads: 4, vocab: 300, seed: 1, tokenizer: false });
    await expectTpError(initInference(dir, { backend, tpSize: 3 }), 'indivisible');
    await expectTpError(initInference((await llama()).dir, { backend, tpSize: 5 }), 'indivisible');
  });

  test("backend: 'nope' is backend-missing", async () => {
    const { dir } = await llama();
    const error = await expectTpError(initInference(dir, { backend: 'nope' }), 'backend-missing', { backend: 'nope' });
    expect(error).toBeInstanceOf(BackendMissingError);
  });

  test('a backend object of another interface version is backend-missing', async () => {
    const { dir } = await llama();
    await expectTpError(initInference(dir, { backend: { ...backend, interfaceVersion: 999 as never } }), 'backend-missing');
  });

  test('a folder that does not exist is file-not-found', async () => {
    await expectTpError(initInference('/nonexistent/tp-test-model', { backend }), 'file-not-found');
  });
});

describe('requests', () => {
  test('a prompt token id >= vocab (or negative, or not an integer) is invalid-argument, and the session stays usable', async () => {
    const { dir } = await llama();
    await withSession(dir, { tpSize: 2 }, async (s) => {
      const vocab = s.graph.geometry.vocab;
      expect(vocab).toBe(300);
      await expectTpError(s.generate([[1, 2, vocab]], { maxNewTokens: 1 }), 'invalid-argument', { argument: 'tokens' });
      await expectTpError(s.logits([[vocab + 5]]), 'invalid-argument', { argument: 'tokens' });
      await expectTpError(s.logits([[1, -1]]), 'invalid-argument');
      await expectTpError(s.logits([[1, 2.5]]), 'invalid-argument');
      await expectTpError(s.generate([[]], { maxNewTokens: 1 }), 'invalid-argument');
      await expectTpError(s.generate([[1]], { maxNewTokens: 0 }), 'invalid-argument', { argument: 'maxNewTokens' });
      await expectTpError(s.generate(['text'], { maxNewTokens: 1 }), 'invalid-argument', { argument: 'prompt' }); // no tokenizer.json
      expect(s.failed).toBeUndefined();
      expect(s.liveWorkers).toBe(2);
      const [ok] = await s.generate([[1, 2, vocab - 1]], { maxNewTokens: 3, stopAtEos: false });
      expect(ok!.tokens).toHaveLength(3);
    });
  });

  test('a request after dispose() rejects (invalid-argument) instead of hanging', async () => {
    const { dir } = await llama();
    const s = await initInference(dir, { backend, tpSize: 2 });
    await s.dispose();
    expect(s.liveWorkers).toBe(0);
    await expectTpError(s.generate([[1, 2]], { maxNewTokens: 1 }), 'invalid-argument');
  });

  test('a prompt longer than the learned position table (max_position_embeddings 16, gpt2) is invalid-argument, not silently computed', async () => {
    const { dir } = await tiny('gpt2-short', { family: 'gpt2', vocab: 300, maxPositions: 16, seed: 1, tokenizer: false });
    await withSession(dir, { tpSize: 1 }, async (s) => {
      const long = Array.from({ length: 20 }, (_, i) => 10 + i);
      const error = await rejection(s.logits([long]));
      expect((error as { code?: string }).code, error.message).toBe('invalid-argument');
    });
  });
});
