/**
 * The engine on the CUDA backend's TypeScript side over the emulated device (fixtures/emulator.mjs):
 * decoder golden checkpoints (Hugging Face transformers' logits, ../shared/golden) at TP=1 through
 * the prefill GEMM (cuBLASLt's mapping, and tp's own kernel), greedy decoding through the GEMV and
 * the KV cache, bf16 weights, and TP=2 with the in-process collective and with NCCL (emulated).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { initInference, type InferenceSession } from '@tp/core';
import { describe, expect, it } from 'vitest';
import { addon } from './helpers.js';
// @ts-expect-error: a plain ES module fixture
import { emulatedBackend } from './fixtures/emulated-backend.mjs';

const GOLDEN = process.env['TP_GOLDEN_DIR'] || path.resolve(import.meta.dirname, '../../../../shared/golden');
const hasGolden = existsSync(GOLDEN);
const why = !hasGolden ? ` (skipped: no golden checkpoints at ${GOLDEN})` : addon === undefined ? ' (skipped: the addon is not built)' : '';
const FAMILIES = ['llama', 'mixtral', 'bloom', 'gpt2', 'falcon', 'qwen3'];

interface Golden {
  input_ids: number[][];
  logits: number[][][];
  greedy: { new_tokens: number[][] };
}

const concat = (arrays: Float32Array[]) => Float32Array.from(arrays.flatMap((a) => Array.from(a)));

function spreadError(a: Float32Array, b: ArrayLike<number>): number {
  let lo = Infinity;
  let hi = -Infinity;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    lo = Math.min(lo, b[i]!);
    hi = Math.max(hi, b[i]!);
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return a.length === b.length ? worst / (hi - lo) : Infinity;
}

async function withSession<T>(family: string, options: Record<string, unknown>, backendOptions: Record<string, unknown>, body: (s: InferenceSession) => Promise<T>): Promise<T> {
  const s = await initInference(path.join(GOLDEN, family), { backend: emulatedBackend(backendOptions), collectiveTimeoutMs: 30_000, ...options });
  try {
    return await body(s);
  } finally {
    await s.dispose();
  }
}

describe.skipIf(!hasGolden || addon === undefined).each(FAMILIES)('%s on the emulated device', (family) => {
  const golden = () => JSON.parse(readFileSync(path.join(GOLDEN, family, 'golden.json'), 'utf8')) as Golden;

  it(`TP=1 logits (prefill through cuBLASLt's f32 GEMM) within 1e-4 of golden's spread, and golden's greedy tokens${why}`, async () => {
    const g = golden();
    await withSession(family, { tpSize: 1, dtype: 'f32' }, {}, async (s) => {
      expect(spreadError(concat(await s.logits(g.input_ids)), g.logits.flat(2))).toBeLessThanOrEqual(1e-4);
      const out = await s.generate(g.input_ids, { maxNewTokens: 8, stopAtEos: false });
      expect(out.map((r) => r.tokens)).toEqual(g.greedy.new_tokens);
    });
  });

  it(`TP=1 with tp's own GEMM, bf16 weights (cuBLASLt's hi/lo path) and a bf16 KV cache${why}`, async () => {
    const g = golden();
    const own = await withSession(family, { tpSize: 1, dtype: 'f32' }, { gemm: 'kernel' }, (s) => s.logits(g.input_ids));
    expect(spreadError(concat(own), g.logits.flat(2))).toBeLessThanOrEqual(1e-4);
    const bf16 = await withSession(family, { tpSize: 1, dtype: 'bf16', kvDtype: 'bf16' }, {}, (s) => s.generate(g.input_ids, { maxNewTokens: 4, stopAtEos: false, returnLogits: true }));
    expect(bf16.every((r) => r.tokens.length === 4 && r.stepLogits!.every((l) => l.every(Number.isFinite)))).toBe(true);
  });

  for (const collective of ['device', 'nccl'] as const) {
    it(`TP=2 (${collective === 'device' ? 'in-process collective' : 'NCCL, emulated'}) equals TP=1 within 1e-5 of the spread${why}`, async () => {
      const g = golden();
      const tp1 = await withSession(family, { tpSize: 1, dtype: 'f32' }, {}, (s) => s.logits(g.input_ids));
      const tp2 = await withSession(family, { tpSize: 2, dtype: 'f32' }, { collective }, (s) => s.logits(g.input_ids));
      expect(spreadError(concat(tp2), concat(tp1))).toBeLessThanOrEqual(1e-5);
    });
  }
});
