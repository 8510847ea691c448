/**
 * What backend interface v2 changed in the engine, end to end on the CPU backend: half-precision
 * weights kept half, a step's cost following the tokens so far, replicated experts, errors that keep
 * their code across the worker boundary, memory refused before loading, device-side sampling inputs.
 */
import { readFile, writeFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, test } from 'vitest';
import { initInference, sampleToken, seededRandom, type InferenceSession } from '@tp/core';
import { backend, concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const prompt = [[5, 17, 29, 40, 41, 42, 100, 7]];
const base = { family: 'llama' as const, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 300, seed: 3 };

describe('half-precision weights stay half on the device', () => {
  for (const dtype of ['bf16', 'f16'] as const) {
    it(`${dtype} checkpoint: logits equal an f32 computation on the same rounded weights at TP 1-4, same greedy tokens, half the parameter memory`, async () => {
      const model = await tiny(dtype, { ...base, dtype });
      let reference: { logits: Float32Array; tokens: number[] } | undefined;
      for (const tpSize of [1, 2, 3, 4]) {
        const run = (s: InferenceSession) => Promise.all([s.logits(prompt), s.generate(prompt, { maxNewTokens: 8, stopAtEos: false })]);
        const [[half, halfGen], halfPlan] = await withSession(model.dir, { tpSize, dtype }, async (s) => [await run(s), s.plan] as const);
        const [[wide, wideGen], widePlan] = await withSession(model.dir, { tpSize, dtype: 'f32' }, async (s) => [await run(s), s.plan] as const);
        expect(relativeError(concat(half), concat(wide)), `${dtype} TP=${tpSize}: stored half vs widened`).toBeLessThan(1e-4);
        expect(halfGen[0]!.tokens, `TP=${tpSize}`).toEqual(wideGen[0]!.tokens);
        reference ??= { logits: concat(half), tokens: halfGen[0]!.tokens };
        expect(relativeError(concat(half), reference.logits), `${dtype} TP=${tpSize} vs TP=1`).toBeLessThan(1e-5);
        expect(halfGen[0]!.tokens).toEqual(reference.tokens);
        // Matrices are stored in 2 bytes; the vectors (norms) stay f32 and are a sliver of the total.
        for (let r = 0; r < tpSize; r++) expect(halfPlan.ranks[r]!.paramBytes / widePlan.ranks[r]!.paramBytes).toBeLessThan(0.55);
      }
    });
  }

  it('auto keeps bf16 and f16 checkpoints as stored on the CPU backend; an explicit f32 widens them', async () => {
    const bf16 = await tiny('bf16', { ...base, dtype: 'bf16' });
    const f16 = await tiny('f16', { ...base, dtype: 'f16' });
    const matrices = (s: InferenceSession) => new Set(s.plan.tensors.filter((t) => t.shape.length >= 2).map((t) => t.storage));
    expect(await withSession(bf16.dir, {}, async (s) => matrices(s))).toEqual(new Set(['bf16']));
    expect(await withSession(f16.dir, {}, async (s) => matrices(s))).toEqual(new Set(['f16']));
    expect(await withSession(f16.dir, { dtype: 'f32' }, async (s) => matrices(s))).toEqual(new Set(['f32']));
  });

  it('a bf16 checkpoint cannot be stored as f16 (bf16 values can exceed its range): refused before loading, naming a tensor', async () => {
    const model = await tiny('bf16', { ...base, dtype: 'bf16' });
    const error = await expectTpError(initInference(model.dir, { backend, dtype: 'f16' }), 'dtype-unsupported');
    expect(typeof error['tensor']).toBe('string');
  });

  it('an f32 weight beyond f16 range, stored as f16, fails in the rank with the tensor named and the code kept across the worker boundary', async () => {
    const model = await tiny('f32-big', { ...base, dtype: 'f32' });
    const dir = `${model.dir}-big`;
    await cp(model.dir, dir, { recursive: true });
    // Put 1e6 in the first f32 element of the first tensor's data.
    const file = path.join(dir, 'model.safetensors');
    const bytes = await readFile(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString()) as Record<string, { data_offsets: [number, number]; dtype: string }>;
    const [name, info] = Object.entries(header).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32' && k.endsWith('q_proj.weight'))!;
    bytes.writeFloatLE(1e6, 8 + headerLength + info.data_offsets[0]);
    await writeFile(file, bytes);
    const error = await expectTpError(initInference(dir, { backend, dtype: 'f16' }), 'invalid-argument', { rank: 0 });
    expect(error.message).toContain(name);
  });
});

describe("a step's cost follows the tokens so far, never the requested maximum", () => {
  it('the same 6 tokens with a budget of 6 and of 1,000,000 leave the same KV cache and device memory', async () => {
    const model = await tiny('rope', { ...base, dtype: 'f32' });
    // Greedy tokens of this model, then a copy whose end-of-sequence token is the 6th of them.
    const tokens = await withSession(model.dir, {}, async (s) => (await s.generate(prompt, { maxNewTokens: 12, stopAtEos: false }))[0]!.tokens);
    const stopAt = tokens.findIndex((t) => t === tokens[5]);
    const dir = `${model.dir}-eos`;
    await cp(model.dir, dir, { recursive: true });
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, eos_token_id: tokens[5], max_position_embeddings: 2_000_000 }));
    for (const p of ['generation_config.json']) await writeFile(path.join(dir, p), JSON.stringify({ eos_token_id: tokens[5] })).catch(() => undefined);
    const measure = (maxNewTokens: number) =>
      withSession(dir, { tpSize: 2 }, async (s) => {
        const [result] = await s.generate(prompt, { maxNewTokens });
        return { tokens: result!.tokens, stats: await s.stats() };
      });
    const small = await measure(stopAt + 1);
    const huge = await measure(1_000_000);
    expect(huge.tokens).toEqual(small.tokens);
    expect(huge.tokens.length).toBe(stopAt + 1);
    for (const r of [0, 1]) {
      // the slots written: the prompt plus every generated token but the last (never fed back)
      expect(huge.stats[r]!.cachedSlots).toBe(prompt[0]!.length + stopAt);
      expect(huge.stats[r]!.deviceBytes).toBe(small.stats[r]!.deviceBytes);
    }
  });
});

describe('a forward pass holds one layer of activations at a time (a nested step per layer)', () => {
  // The memory a rank grows by in its first forward: activations (and the arena sized after them). It
  // grows in steps of up to 16 MiB, so the inputs are large enough for a layer to need more.
  const workspace = async (session: InferenceSession, forward: () => Promise<unknown>) => {
    const before = (await session.stats())[0]!.deviceBytes;
    await forward();
    return (await session.stats())[0]!.deviceBytes - before;
  };
  const ids = (rows: number, batch: number) => Array.from({ length: batch }, (_, b) => Array.from({ length: rows }, (_, t) => 5 + ((b * 31 + t * 7) % 250)));

  it('8 llama prompts of 256 tokens: 8 layers need about what 1 layer needs, not 8 times as much', async () => {
    const sizes: number[] = [];
    for (const layers of [1, 8]) {
      const model = await tiny(`scopes-llama-${layers}`, { ...base, layers, intermediate: 512, maxPositions: 512, dtype: 'f32' });
      sizes.push(await withSession(model.dir, {}, (s) => workspace(s, () => s.logits(ids(256, 8)))));
    }
    const [one, eight] = sizes as [number, number];
    expect(one).toBeGreaterThan(16 * 2 ** 20);
    expect(eight).toBeLessThan(1.5 * one);
  });

  it('a BERT batch of 8 × 128 tokens: 8 layers need about what 1 layer needs', async () => {
    const sizes: number[] = [];
    for (const layers of [1, 8]) {
      const model = await tiny(`scopes-bert-${layers}`, { family: 'bert', hidden: 64, layers, heads: 4, intermediate: 512, vocab: 300, maxPositions: 256, seed: 4, dtype: 'f32' });
      sizes.push(await withSession(model.dir, {}, (s) => workspace(s, () => s.encoderOutputs(ids(128, 8), { hidden: true }))));
    }
    const [one, eight] = sizes as [number, number];
    expect(one).toBeGreaterThan(16 * 2 ** 20);
    expect(eight).toBeLessThan(1.5 * one);
  });
});

describe('policies that replicate experts', () => {
  test.skipIf(!hasGolden)(`Mixtral with every expert replicated: TP=2 equals TP=1 (a complete expert output is never all-reduced)${needsGolden}`, async () => {
    const dir = goldenDir('mixtral');
    const policy = {
      'layers.*.block_sparse_moe.experts.*.w1': 'replicated',
      'layers.*.block_sparse_moe.experts.*.w2': 'replicated',
      'layers.*.block_sparse_moe.experts.*.w3': 'replicated',
    };
    const ids = [[1, 20, 30, 40, 50, 60, 70]];
    const one = concat(await withSession(dir, { tpSize: 1 }, (s) => s.logits(ids)));
    const two = await withSession(dir, { tpSize: 2, policy }, async (s) => {
      expect(s.plan.tensors.filter((t) => /experts\.\d+\.w[123]/.test(t.name)).every((t) => t.split === 'replicate')).toBe(true);
      return concat(await s.logits(ids));
    });
    expect(relativeError(two, one)).toBeLessThan(1e-5);
  });
});

describe('before any rank loads', () => {
  it("a plan whose share does not fit a rank's memory is refused with out-of-memory", async () => {
    const model = await tiny('rope', { ...base, dtype: 'f32' });
    const small = { ...backend, rankMemoryLimit: async () => 1000 };
    await expectTpError(initInference(model.dir, { backend: small, tpSize: 2 }), 'out-of-memory');
  });

  it('a KV cache dtype the backend does not keep is refused naming kvDtype', async () => {
    const model = await tiny('rope', { ...base, dtype: 'f32' });
    await expectTpError(initInference(model.dir, { backend, kvDtype: 'f16' }), 'invalid-argument', { argument: 'kvDtype' });
  });
});

describe('sampling reads only what it needs from the device', () => {
  it('top-k sampling from the k device candidates chooses the tokens full-logits sampling chooses', async () => {
    const model = await tiny('rope', { ...base, dtype: 'f32' });
    const options = { maxNewTokens: 10, stopAtEos: false, temperature: 0.9, topK: 7, seed: 11 };
    await withSession(model.dir, { tpSize: 2 }, async (s) => {
      const [fromCandidates] = await s.generate(prompt, options);
      const [fromLogits] = await s.generate(prompt, { ...options, returnLogits: true });
      expect(fromCandidates!.tokens).toEqual(fromLogits!.tokens);
      // and the full-logits path is sampleToken itself
      const random = seededRandom(11);
      expect(fromLogits!.stepLogits!.map((l) => sampleToken(l, options, random))).toEqual(fromLogits!.tokens);
    });
  });
});

describe('dispose', () => {
  it('reaches every rank: the workers end, and a second dispose is harmless', async () => {
    const model = await tiny('rope', { ...base, dtype: 'f32' });
    const s = await initInference(model.dir, { backend, tpSize: 3 });
    expect(s.liveWorkers).toBe(3);
    await s.dispose();
    expect(s.liveWorkers).toBe(0);
    await s.dispose();
    await expectTpError(s.generate(prompt), 'invalid-argument');
  });
});
