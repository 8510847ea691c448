/**
 * The CUDA backend's TypeScript side — CudaRank and the in-process DeviceCollective — against the
 * whole conformance suite, over an emulated device (fixtures/emulator.mjs: the kernels of
 * kernels.cu in JavaScript, run exactly as launched). This checks what the TypeScript side decides:
 * arguments and their order, grids, split-K, the prefill GEMM's cuBLASLt mapping (transposes,
 * the bf16 hi/lo split), KV-cache growth, attention splits, and the collective protocol across
 * worker threads (pointers, widths, aborts, timeouts). The CUDA code itself runs only on a GPU.
 */
import { hostTensor } from '@tp/core';
import { conformanceCases, reference as ref } from '@tp/core/testing';
import { describe, expect, it } from 'vitest';
import type { CudaRank } from '../src/rank.js';
import { addon, addonMissing, expectClose, random, uniform } from './helpers.js';
// @ts-expect-error: a plain ES module fixture
import { emulatedBackend } from './fixtures/emulated-backend.mjs';

type Backend = Parameters<typeof conformanceCases>[0];

if (addon === undefined) {
  describe('emulated device', () => {
    it.skip(`skipped: ${addonMissing} (the emulator uses its host math)`, () => {});
  });
}

describe.skipIf(addon === undefined)('conformance on the emulated device', () => {
  const backend = emulatedBackend() as Backend;
  for (const c of addon === undefined ? [] : conformanceCases(backend)) it(c.name, c.run, 120_000);
});

async function withRank<T>(options: Record<string, unknown>, body: (rank: CudaRank) => Promise<T>): Promise<T> {
  const backend = emulatedBackend(options) as Backend;
  const rank = (await backend.createRank({ rank: 0, world: 1, communicator: backend.createCommunicator(1, { timeoutMs: 5000 }), options: {} })) as CudaRank;
  try {
    return await body(rank);
  } finally {
    await rank.dispose();
  }
}

function launches(rank: CudaRank): Map<string, number> {
  return (rank.ctx as unknown as { launches: Map<string, number> }).launches;
}

describe.skipIf(addon === undefined)('paths the conformance sizes do not reach', () => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    for (const gemm of ['kernel', 'auto'] as const) {
      it(`prefill linear (M 37 > 8) ${dtype}, ${gemm === 'auto' ? 'cuBLASLt where it serves the dtype' : "tp's own GEMM"}, with a bias`, async () => {
        await withRank({ gemm }, async (rank) => {
          const [M, K, N] = [37, 70, 45];
          const next = random(M + K + N);
          const x = uniform(next, M * K);
          const w = ref.roundToDtype(uniform(next, N * K), dtype);
          const b = uniform(next, N);
          const wt = rank.upload({ bytes: ref.encodeDtype(w, dtype), dtype, shape: [N, K] });
          rank.beginStep();
          const y = rank.linear(rank.upload(hostTensor(x, [M, K])), wt, rank.upload(hostTensor(b)));
          const got = await rank.download(y);
          await rank.endStep();
          // the bf16 path multiplies x as hi + lo bf16 parts: ~16 bits of x, so ~1e-5 of the largest output
          expectClose(`linear ${dtype} ${gemm}`, got, ref.linear(x, w, b, M, K, N), { relOfMax: dtype === 'bf16' && gemm === 'auto' ? 2e-5 : 1e-5 });
          const usedLt = (rank.ctx as unknown as { gemms: number }).gemms > 0;
          expect(usedLt, 'cuBLASLt used').toBe(gemm === 'auto' && dtype !== 'f16');
          expect(launches(rank).has(`tp_gemm_${dtype}`), 'own GEMM used').toBe(!usedLt);
        });
      });
    }
  }

  it('decode linear with split-K (few rows, long K): partial sums then one reduce, and unaligned K falls back to scalar loads', async () => {
    await withRank({}, async (rank) => {
      for (const [M, K, N, dtype] of [
        [1, 8192, 40, 'bf16'],
        [3, 4100, 24, 'f32'],
        [2, 4099, 16, 'f16'],
      ] as const) {
        const next = random(K);
        const x = uniform(next, M * K);
        const w = ref.roundToDtype(uniform(next, N * K), dtype);
        const wt = rank.upload({ bytes: ref.encodeDtype(w, dtype), dtype, shape: [N, K] });
        rank.beginStep();
        const before = launches(rank).get('tp_splitk_reduce') ?? 0;
        const got = await rank.download(rank.linear(rank.upload(hostTensor(x, [M, K])), wt));
        await rank.endStep();
        expect(launches(rank).get('tp_splitk_reduce') ?? 0, `split-K for [${M}, ${K}] · [${N}, ${K}]ᵀ`).toBeGreaterThan(before);
        expectClose(`linear ${dtype} M ${M} K ${K} N ${N}`, got, ref.linear(x, w, undefined, M, K, N), { relOfMax: 1e-5 });
        rank.free(wt);
      }
    });
  });

  it('attention over a long cache (several splits, merged) with a bf16 KV cache', async () => {
    await withRank({}, async (rank) => {
      const [heads, kvHeads, headDim, batch, prefill] = [8, 2, 16, 1, 700];
      const next = random(prefill);
      const cache = rank.createKvCache(batch, kvHeads, headDim, headDim, 'bf16');
      const spec = { heads, kvHeads, headDim, valueDim: headDim, scale: 0.25, mask: 'causal' as const };
      const k = uniform(next, prefill * kvHeads * headDim);
      const v = uniform(next, prefill * kvHeads * headDim);
      rank.beginStep();
      const mask = (n: number) => rank.upload(hostTensor(new Int32Array(n).fill(1), [1, n]));
      rank.attention(rank.upload(hostTensor(uniform(next, prefill * heads * headDim), [prefill, heads * headDim])), rank.upload(hostTensor(k, [prefill, kvHeads * headDim])), rank.upload(hostTensor(v, [prefill, kvHeads * headDim])), cache, { batch, rows: prefill, start: 0, keyMask: mask(prefill) }, spec);
      await rank.endStep();
      const q = uniform(next, heads * headDim);
      const k1 = uniform(next, kvHeads * headDim);
      const v1 = uniform(next, kvHeads * headDim);
      rank.beginStep();
      const before = launches(rank).get('tp_attention_partial') ?? 0;
      const y = rank.attention(rank.upload(hostTensor(q, [1, heads * headDim])), rank.upload(hostTensor(k1, [1, kvHeads * headDim])), rank.upload(hostTensor(v1, [1, kvHeads * headDim])), cache, { batch, rows: 1, start: prefill, keyMask: mask(prefill + 1) }, spec);
      const got = await rank.download(y);
      await rank.endStep();
      expect(launches(rank).get('tp_attention_partial')).toBe(before + 1);
      const kAll = ref.roundToDtype([...k, ...k1], 'bf16');
      const vAll = ref.roundToDtype([...v, ...v1], 'bf16');
      const want = ref.attention({ q, kCache: kAll, vCache: vAll, slots: prefill + 1, batch, rows: 1, start: prefill, keys: prefill + 1, keyMask: new Int32Array(prefill + 1).fill(1), heads, kvHeads, headDim, valueDim: headDim, scale: 0.25, mask: 'causal' });
      expectClose('long-cache attention', got, want, { relOfMax: 2e-5 });
      expect(cache.length).toBe(prefill + 1);
      rank.freeKvCache(cache);
    });
  });
});

describe.skipIf(addon === undefined)('conformance collectives through NcclCollective (NCCL emulated: operations run once every rank has enqueued them)', () => {
  const backend = emulatedBackend({ collective: 'nccl' }) as Backend;
  const cases = addon === undefined ? [] : conformanceCases(backend).filter((c) => c.name.startsWith('collectives'));
  for (const c of cases) it(c.name, c.run, 120_000);
});
