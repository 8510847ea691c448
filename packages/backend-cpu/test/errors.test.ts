/** initInference and requests refuse bad input with a TpError whose code says why. */
import { describe, expect, test } from 'vitest';
import { BackendMissingError, initInference, PlanError, UnsupportedModelError } from '@tp/core';
import { backend, expectTpError, rejection, relativeError, withSession } from './helpers/engine.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';
import { useGoldenVariants } from './helpers/variant.js';

const tiny = useTinyModels();
const variant = useGoldenVariants();
const llama = () => tiny('llama', { family: 'llama', vocab: 300, seed: 1, tokenizer: false });

describe('initInference', () => {
  test.skipIf(!hasGolden)(`an encoder family tp plans but does not run (a Longformer config over the RoBERTa golden weights) is refused with UnsupportedModelError (unsupported-model), saying why${needsGolden}`, async () => {
    const dir = await variant('longformer', 'roberta', { config: { model_type: 'longformer', architectures: ['LongformerForMaskedLM'], attention_window: [4, 4] } });
    const error = await expectTpError(initInference(dir, { backend }), 'unsupported-model', { modelType: 'longformer' });
    expect(error).toBeInstanceOf(UnsupportedModelError);
    expect(error['reason']).toMatch(/tp plans Longformer encoders but its engine does not run them yet/);
  });

  test.skipIf(!hasGolden)(`an encoder–decoder configuration the engine does not run (Marian with separate encoder and decoder vocabularies) is refused with unsupported-model, saying why${needsGolden}`, async () => {
    const dir = await variant('marian-separate-vocabularies', 'marian', { config: { share_encoder_decoder_embeddings: false } });
    const error = await expectTpError(initInference(dir, { backend }), 'unsupported-model', { modelType: 'marian' });
    expect(error).toBeInstanceOf(UnsupportedModelError);
    expect(error['reason']).toMatch(/separate encoder and decoder vocabularies/);
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

  test.skipIf(!hasGolden)(`BigBird-Pegasus with block-sparse attention: an input longer than (5 + 2·num_random_blocks)·block_size tokens is invalid-argument naming the limit; up to it, full attention as transformers runs it${needsGolden}`, async () => {
    // block_size 2, num_random_blocks 1: at most 14 tokens (the position table has 128)
    const dir = await variant('bigbird-pegasus-block-sparse', 'bigbird_pegasus', { config: { attention_type: 'block_sparse', block_size: 2, num_random_blocks: 1 } });
    const fits = Array.from({ length: 14 }, (_, i) => 10 + i);
    const long = [...fits, 30];
    const [full] = await withSession(goldenDir('bigbird_pegasus'), { tpSize: 1 }, (s) => s.logits([fits])); // attention_type original_full
    await withSession(dir, { tpSize: 2 }, async (s) => {
      for (const request of [() => s.logits([long]), () => s.generate([fits.slice(0, 3), long], { maxNewTokens: 1 })]) {
        const error = await expectTpError(request(), 'invalid-argument', { argument: 'prompts' });
        expect(error.message).toMatch(/15 tokens is longer than 14: block-sparse attention is not implemented; inputs up to 14 tokens .* run with full attention as transformers does/);
      }
      expect(s.failed).toBeUndefined();
      const [ours] = await s.logits([fits]);
      expect(relativeError(ours!, full!)).toBeLessThanOrEqual(1e-6);
    });
  });

  test('a prompt longer than the learned position table (max_position_embeddings 16, gpt2) is invalid-argument, not silently computed', async () => {
    const { dir } = await tiny('gpt2-short', { family: 'gpt2', vocab: 300, maxPositions: 16, seed: 1, tokenizer: false });
    await withSession(dir, { tpSize: 1 }, async (s) => {
      const long = Array.from({ length: 20 }, (_, i) => 10 + i);
      const error = await rejection(s.logits([long]));
      expect((error as { code?: string }).code, error.message).toBe('invalid-argument');
    });
  });

  test.skipIf(!hasGolden)(`NEZHA (relative positions only): an input longer than max_position_embeddings (128), where transformers' relative table ends, is invalid-argument; 128 tokens run${needsGolden}`, async () => {
    await withSession(goldenDir('nezha'), { tpSize: 2 }, async (s) => {
      const input = (n: number) => Array.from({ length: n }, (_, i) => 10 + (i % 200));
      const error = await expectTpError(s.encoderOutputs([input(129)]), 'invalid-argument', { argument: 'prompts' });
      expect(error.message).toContain('the input has 129 tokens, but this model');
      expect(error.message).toContain('has 128 positions');
      const [out] = await s.encoderOutputs([input(128)], { hidden: true });
      expect(out!.hidden!.length).toBe(128 * 64);
    });
  });

  test.skipIf(!hasGolden)(`an encoder input longer than the encoder's learned position table (BART: 130 rows − offset 2) is invalid-argument before any rank runs; 128 tokens run${needsGolden}`, async () => {
    await withSession(goldenDir('bart'), { tpSize: 2 }, async (s) => {
      const source = (n: number) => Array.from({ length: n }, (_, i) => 10 + (i % 200));
      for (const request of [s.seq2seqLogits([source(129)]), s.generate([source(129)], { maxNewTokens: 2 })]) {
        const error = await rejection(request);
        expect((error as { code?: string }).code, error.message).toBe('invalid-argument');
        expect(error.message).toContain("an encoder input of 129 tokens is longer than 128: the encoder's learned position table (model.encoder.embed_positions.weight) has 128 positions");
      }
      // The session is still usable, and the longest input that fits runs.
      const [out] = await s.seq2seqLogits([source(128)]);
      expect(out!.logits.length).toBe(256);
    });
  });
});

