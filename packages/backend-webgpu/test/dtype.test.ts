/**
 * Half-precision weights and KV caches. A model whose weights are stored f16 (native, and unpacked
 * from u32 where shader-f16 is off) or bf16 computes the same logits as an f32 computation on the same
 * rounded values (the same checkpoint uploaded with dtype f32) — only the summation order may differ —
 * at TP=1 and TP=2. Families: a dense one (llama) and a mixture of experts (mixtral). Then KV caches
 * in f16 and bf16 (below).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initInference, type InferenceOptions } from '@tp/core';
import { relativeToSpread } from '@tp/core/testing';
import { writeTinyModel } from '@tp/tiny-models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterSkip, backend } from './helpers/adapter.js';

const prompt = [
  [5, 17, 29, 40, 41, 42, 100, 7],
  [9, 8, 7, 6, 5, 4, 3, 2],
];
let root = '';

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-dtype-'));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** The logits of both prompts, and what the plan stored the matrices as. */
async function logits(dir: string, options: InferenceOptions): Promise<{ values: Float32Array; stored: readonly string[] }> {
  const session = await initInference(dir, { backend, ...options });
  try {
    const rows = await session.logits(prompt);
    return { values: Float32Array.from(rows.flatMap((r) => Array.from(r))), stored: session.plan.storageDtypes };
  } finally {
    await session.dispose();
  }
}

const cases = [
  { family: 'llama', dtype: 'f16', options: {} },
  { family: 'llama', dtype: 'f16', options: { backendOptions: { disableFeatures: ['shader-f16'] } }, label: ' (unpacked from u32: no shader-f16)' },
  { family: 'llama', dtype: 'bf16', options: {} },
  { family: 'mixtral', dtype: 'bf16', options: {} },
] as const;

describe(`half-precision weights on WebGPU${adapterSkip}`, () => {
  for (const c of cases) {
    it.skipIf(adapterSkip !== '')(`${c.family} stored ${c.dtype}${'label' in c ? c.label : ''} equals f32 on the same rounded weights, at TP=1 and TP=2`, async () => {
      const model = await writeTinyModel(path.join(root, `${c.family}-${c.dtype}`), { family: c.family, dtype: c.dtype, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, seed: 7 });
      const widened = await logits(model.dir, { dtype: 'f32' });
      const half = await logits(model.dir, { ...c.options, dtype: 'auto' });
      const halfTp2 = await logits(model.dir, { ...c.options, dtype: 'auto', tpSize: 2 });
      expect(widened.stored).toEqual(['f32']);
      expect(half.stored).toEqual([c.dtype]);
      expect(relativeToSpread(half.values, widened.values), `${c.dtype} storage vs f32 storage of the same values`).toBeLessThan(1e-5);
      expect(relativeToSpread(halfTp2.values, half.values), `${c.dtype} TP=2 vs TP=1`).toBeLessThan(1e-5);
    });
  }
});

/** The prompt logits and 6 greedy tokens with the logits that chose them (the KV-cache path). */
async function decoded(dir: string, options: InferenceOptions): Promise<{ logits: Float32Array; tokens: number[][] }> {
  const session = await initInference(dir, { backend, ...options });
  try {
    const prefill = await session.logits(prompt);
    const greedy = await session.generate(prompt, { maxNewTokens: 6, stopAtEos: false, returnLogits: true });
    const all = [...prefill.flatMap((r) => Array.from(r)), ...greedy.flatMap((g) => (g.stepLogits ?? []).flatMap((l) => Array.from(l)))];
    return { logits: Float32Array.from(all), tokens: greedy.map((g) => g.tokens) };
  } finally {
    await session.dispose();
  }
}

/**
 * A KV cache in f16 or bf16 (kvDtype): keys and values are rounded as they are appended, so logits
 * move from the f32 cache's by about the format's rounding (measured on lavapipe: 1.5e-4 of the
 * logits' spread for f16, 9e-4 for bf16; bounded here at about 6×), and must move (a cache that
 * ignored the dtype would give identical logits), while TP=2 keeps matching TP=1 (each rank rounds
 * its own heads' values, the same values).
 */
describe(`16-bit KV caches on WebGPU${adapterSkip}`, () => {
  const kvCases = [
    { kv: 'f16', options: {}, label: '', bound: 1e-3 },
    { kv: 'f16', options: { backendOptions: { disableFeatures: ['shader-f16'] } }, label: ' (read unpacked: no shader-f16)', bound: 1e-3 },
    { kv: 'bf16', options: {}, label: '', bound: 5e-3 },
  ] as const;
  for (const c of kvCases) {
    it.skipIf(adapterSkip !== '')(`llama with a ${c.kv} KV cache${c.label}: near the f32 cache's logits, TP=2 equal to TP=1`, async () => {
      const model = await writeTinyModel(path.join(root, `llama-kv-${c.kv}`), { family: 'llama', dtype: 'f32', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, seed: 11 });
      const full = await decoded(model.dir, { kvDtype: 'f32' });
      const half = await decoded(model.dir, { ...c.options, kvDtype: c.kv });
      const halfTp2 = await decoded(model.dir, { ...c.options, kvDtype: c.kv, tpSize: 2 });
      const moved = relativeToSpread(half.logits, full.logits);
      expect(moved, `${c.kv} cache vs f32 cache`).toBeGreaterThan(0);
      expect(moved, `${c.kv} cache vs f32 cache`).toBeLessThan(c.bound);
      expect(relativeToSpread(halfTp2.logits, half.logits), `${c.kv} cache TP=2 vs TP=1`).toBeLessThan(1e-5);
      expect(halfTp2.tokens).toEqual(half.tokens);
    });
  }
});
