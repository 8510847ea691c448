/**
 * The CUDA backend's TypeScript side — CudaRank and the in-process DeviceCollective — against the
 * whole conformance suite, over an emulated device (fixtures/emulator.mjs: the kernels of
 * kernels.cu in JavaScript, run exactly as launched). This checks what the TypeScript side decides:
 * arguments and their order, grids, split-K, the prefill GEMM's cuBLASLt mapping (transposes,
 * the bf16 hi/lo split), KV-cache growth, attention splits, and the collective protocol across
 * worker threads (pointers, widths, aborts, timeouts). The CUDA code itself runs only on a GPU.
 */
import { hostTensor, type AttentionSpec, type AttentionStep } from '@tp/core';
import { conformanceCases, reference as ref } from '@tp/core/testing';
import { describe, expect, it } from 'vitest';
import type { CudaRank, CudaTensor } from '../src/rank.js';
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

describe.skipIf(addon === undefined)('attention, interface version 3, through CudaRank (long caches: several splits, merged)', () => {
  const [heads, kvHeads, headDim, valueDim] = [4, 2, 8, 6];
  const prefill = 600;
  const keys = prefill + 1;
  const positions = 64;
  /** DeBERTa-like bucketed relative distance of query slot i and key slot j. */
  const bucket = (i: number, j: number) => Math.min(positions - 1, Math.max(0, i - j + positions / 2));

  /**
   * Prefill `prefill` rows, then decode one; returns both outputs, the reference for both, and the
   * kernels launched by the decode.
   */
  async function prefillThenDecode(rank: CudaRank, spec: AttentionSpec, kvDtype: 'f32' | 'bf16', extra: (rows: number, start: number, keys: number) => Partial<AttentionStep>, reference: (rows: number, start: number, keys: number) => Partial<Parameters<typeof ref.attention>[0]>) {
    const next = random(keys);
    const q = uniform(next, keys * heads * headDim);
    const k = uniform(next, keys * kvHeads * headDim);
    const v = uniform(next, keys * kvHeads * valueDim);
    const cache = rank.createKvCache(1, kvHeads, headDim, valueDim, kvDtype);
    const outputs: Float32Array[] = [];
    const expected: Float64Array[] = [];
    const plain: Float64Array[] = [];
    let decodeLaunches = new Map<string, number>();
    for (const [start, rows] of [
      [0, prefill],
      [prefill, 1],
    ] as const) {
      const visible = start + rows;
      const slice = (x: Float32Array, width: number) => x.subarray(start * width, visible * width);
      rank.beginStep();
      const before = new Map(launches(rank));
      const step: AttentionStep = { batch: 1, rows, start, keyMask: rank.upload(hostTensor(new Int32Array(visible).fill(1), [1, visible])), ...extra(rows, start, visible) };
      const y = rank.attention(
        rank.upload(hostTensor(slice(q, heads * headDim), [rows, heads * headDim])),
        rank.upload(hostTensor(slice(k, kvHeads * headDim), [rows, kvHeads * headDim])),
        rank.upload(hostTensor(slice(v, kvHeads * valueDim), [rows, kvHeads * valueDim])),
        cache,
        step,
        spec,
      );
      outputs.push((await rank.download(y)) as Float32Array);
      await rank.endStep();
      decodeLaunches = new Map([...launches(rank)].map(([name, n]) => [name, n - (before.get(name) ?? 0)]));
      const common = {
        q: slice(q, heads * headDim), kCache: ref.roundToDtype(k.subarray(0, visible * kvHeads * headDim), kvDtype), vCache: ref.roundToDtype(v.subarray(0, visible * kvHeads * valueDim), kvDtype),
        slots: visible, batch: 1, rows, start, keys: visible, keyMask: new Int32Array(visible).fill(1), heads, kvHeads, headDim, valueDim, scale: spec.scale, mask: spec.mask,
      };
      expected.push(ref.attention({ ...common, ...reference(rows, start, visible) }));
      plain.push(ref.attention(common));
    }
    rank.freeKvCache(cache);
    return { outputs, expected, plain, decodeLaunches };
  }

  const maxDifference = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
  const relativeIndex = (rows: number, start: number, keys: number) => Int32Array.from({ length: rows * keys }, (_, e) => bucket(start + Math.floor(e / keys), e % keys));

  it('relative terms (keys per head, queries shared, values per head): the relative kernel, within 2e-5 of the reference', async () => {
    await withRank({}, async (rank) => {
      const next = random(77);
      const tables = { keys: uniform(next, positions * heads * headDim), queries: uniform(next, positions * headDim), values: uniform(next, positions * heads * valueDim) };
      const spec: AttentionSpec = {
        heads, kvHeads, headDim, valueDim, scale: 1 / Math.sqrt(3 * headDim), mask: 'causal',
        relative: { keys: rank.upload(hostTensor(tables.keys, [positions, heads * headDim])), queries: rank.upload(hostTensor(tables.queries, [positions, headDim])), values: rank.upload(hostTensor(tables.values, [positions, heads * valueDim])) },
      };
      const r = await prefillThenDecode(
        rank, spec, 'f32',
        (rows, start, k) => ({ relativeIndex: rank.upload(hostTensor(relativeIndex(rows, start, k), [rows, k])) }),
        (rows, start, k) => ({ relative: { positions, index: relativeIndex(rows, start, k), ...tables } }),
      );
      expect(r.decodeLaunches.get('tp_attention_partial_relative')).toBe(1);
      expect(r.decodeLaunches.get('tp_attention_partial') ?? 0).toBe(0);
      r.outputs.forEach((got, i) => expectClose(`relative attention, call ${i + 1}`, got, r.expected[i]!, { relOfMax: 2e-5 }));
      // the terms matter: plain attention is far from the answer
      expect(maxDifference(r.expected[1]!, r.plain[1]!)).toBeGreaterThan(0.05);
    });
  });

  it('expectation scoring over a bf16 cache (a bias and ALiBi given and ignored): its own kernels, unit rows, within 2e-5 of the reference', async () => {
    await withRank({}, async (rank) => {
      const spec: AttentionSpec = {
        heads, kvHeads, headDim, valueDim, scale: 0.125, mask: 'causal', scoring: { kind: 'expectation', bits: 8 },
        alibi: rank.upload(hostTensor(Float32Array.from({ length: heads }, (_, h) => 0.5 / (h + 1)))),
      };
      const r = await prefillThenDecode(
        rank, spec, 'bf16',
        (rows, start, k) => ({ bias: rank.upload(hostTensor(new Float32Array(heads * rows * k).fill(-Infinity), [heads, rows, k])), keyPositions: rank.upload(hostTensor(Int32Array.from({ length: k }, (_, j) => j), [1, k])) }),
        () => ({ expectation: { bits: 8 } }),
      );
      expect(r.decodeLaunches.get('tp_attention_partial_expectation')).toBe(1);
      expect(r.decodeLaunches.get('tp_attention_merge_normalized')).toBe(1);
      expect(r.decodeLaunches.get('tp_attention_merge') ?? 0).toBe(0);
      r.outputs.forEach((got, i) => expectClose(`expectation attention, call ${i + 1}`, got, r.expected[i]!, { relOfMax: 2e-5 }));
      expect(maxDifference(r.expected[1]!, r.plain[1]!)).toBeGreaterThan(0.05);
      const decode = r.outputs[1]!;
      for (let h = 0; h < heads; h++) expect(Math.hypot(...decode.subarray(h * valueDim, (h + 1) * valueDim))).toBeCloseTo(1, 5);
    });
  });

  it('a per-sequence bias [batch, heads, rows, keys] with ≤ -1e30 entries (one query left with no key: zeros), against a shared one', async () => {
    await withRank({}, async (rank) => {
      const [batch, rows] = [3, 5];
      const next = random(5);
      const q = uniform(next, batch * rows * heads * headDim);
      const k = uniform(next, batch * rows * kvHeads * headDim);
      const v = uniform(next, batch * rows * kvHeads * valueDim);
      const keyMask = Int32Array.from({ length: batch * rows }, (_, i) => (i === rows * 2 - 1 ? 0 : 1)); // sequence 1 right-padded by one
      const bias = uniform(next, batch * heads * rows * rows, -2, 2);
      bias.forEach((_, i) => {
        if (next() < 0.3) bias[i] = [-1e30, -3e38, -Infinity][i % 3]!;
      });
      const hidden = ((2 * heads + 1) * rows + 3) * rows; // sequence 2, head 1, query 3: every key hidden
      bias.fill(-1e30, hidden, hidden + rows);
      const spec: AttentionSpec = { heads, kvHeads, headDim, valueDim, scale: 0.35, mask: 'bidirectional' };
      const want = ref.attention({ q, kCache: k, vCache: v, slots: rows, batch, rows, start: 0, keys: rows, keyMask, bias, heads, kvHeads, headDim, valueDim, scale: spec.scale, mask: spec.mask });
      const run = async (b: Float32Array, shape: number[]) => {
        const cache = rank.createKvCache(batch, kvHeads, headDim, valueDim, 'f32');
        rank.beginStep();
        const y = rank.attention(
          rank.upload(hostTensor(q, [batch * rows, heads * headDim])), rank.upload(hostTensor(k, [batch * rows, kvHeads * headDim])), rank.upload(hostTensor(v, [batch * rows, kvHeads * valueDim])),
          cache, { batch, rows, start: 0, keyMask: rank.upload(hostTensor(keyMask, [batch, rows])), bias: rank.upload(hostTensor(b, shape)) }, spec,
        );
        const got = (await rank.download(y)) as Float32Array;
        await rank.endStep();
        rank.freeKvCache(cache);
        return got;
      };
      const got = await run(bias, [batch, heads, rows, rows]);
      expectClose('per-sequence bias', got, want, { relOfMax: 2e-5 });
      const zeros = ((2 * rows + 3) * heads + 1) * valueDim;
      expect(Array.from(got.subarray(zeros, zeros + valueDim))).toEqual(Array<number>(valueDim).fill(0));
      // sequence 0's slice of the bias, shared by the batch, gives sequence 0's answer to every sequence that sees the same keys
      const shared = bias.slice(0, heads * rows * rows);
      const sharedWant = ref.attention({ q, kCache: k, vCache: v, slots: rows, batch, rows, start: 0, keys: rows, keyMask, bias: shared, heads, kvHeads, headDim, valueDim, scale: spec.scale, mask: spec.mask });
      expectClose('shared bias', await run(shared, [heads, rows, rows]), sharedWant, { relOfMax: 2e-5 });
    });
  });

  it('a refused call (bad relative index, bias, bits) throws at enqueue and leaves the KV cache as it was', async () => {
    await withRank({}, async (rank) => {
      const cache = rank.createKvCache(1, kvHeads, headDim, valueDim, 'f32');
      rank.beginStep();
      const x = (rows: number, width: number) => rank.upload(hostTensor(new Float32Array(rows * width).fill(0.5), [rows, width]));
      const mask = rank.upload(hostTensor(new Int32Array(3).fill(1), [1, 3]));
      const spec: AttentionSpec = { heads, kvHeads, headDim, valueDim, scale: 1, mask: 'causal' };
      const call = (s: AttentionSpec, extra: Partial<AttentionStep>) => () => rank.attention(x(3, heads * headDim), x(3, kvHeads * headDim), x(3, kvHeads * valueDim), cache, { batch: 1, rows: 3, start: 0, keyMask: mask, ...extra }, s);
      const table = rank.upload(hostTensor(new Float32Array(4 * headDim), [4, headDim]));
      expect(call({ ...spec, relative: { keys: table } }, { relativeIndex: rank.upload(hostTensor(Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2, 3]), [3, 3])) })).toThrow(/relativeIndex\[1, 1\] = 4 is outside the relative keys table's rows \[0, 4\)/);
      expect(call({ ...spec, relative: { keys: table } }, {})).toThrow(/needs step\.relativeIndex/);
      expect(call(spec, { bias: rank.upload(hostTensor(new Float32Array(heads * 9), [heads, 9])) })).toThrow(/the bias is f32 \[4, 9\]/);
      expect(call({ ...spec, scoring: { kind: 'expectation', bits: 0 } }, {})).toThrow(/bits ≥ 1, not 0/);
      expect(cache.length).toBe(0);
      call(spec, {})();
      expect(cache.length).toBe(3);
      await rank.endStep();
      rank.freeKvCache(cache);
    });
  });
});

describe.skipIf(addon === undefined)('conformance collectives through NcclCollective (NCCL emulated: operations run once every rank has enqueued them)', () => {
  const backend = emulatedBackend({ collective: 'nccl' }) as Backend;
  const cases = addon === undefined ? [] : conformanceCases(backend).filter((c) => c.name.startsWith('collectives'));
  for (const c of cases) it(c.name, c.run, 120_000);
});

describe.skipIf(addon === undefined)('nested steps through CudaRank (interface 4): what the conformance cases do not see', () => {
  /** Counts the rank's stream waits (ctx.notify: what the outermost endStep waits on). */
  function countWaits(rank: CudaRank): { readonly count: number } {
    const ctx = rank.ctx as unknown as { notify: () => Promise<void> };
    const notify = ctx.notify.bind(ctx);
    const counter = { count: 0 };
    ctx.notify = () => {
      counter.count++;
      return notify();
    };
    return counter;
  }

  it('a scope ends without waiting for the stream, frees its own tensors but not the kept one nor the enclosing step\'s; the outermost step frees the rest and waits', async () => {
    await withRank({}, async (rank) => {
      const waits = countWaits(rank);
      const x = Float32Array.from([1, -2, 3, -4]);
      rank.beginStep();
      const outer = rank.upload(hostTensor(x)) as CudaTensor;
      rank.beginStep();
      const temp = rank.upload(hostTensor(x)) as CudaTensor;
      const kept = rank.scale(temp, 2) as CudaTensor;
      const liveBefore = rank.memoryBytes();
      await rank.endStep(kept);
      expect(waits.count, 'stream waits when a scope ends').toBe(0);
      expect([temp.freed, kept.freed, outer.freed]).toEqual([true, false, false]);
      expect(rank.memoryBytes()).toBe(liveBefore - temp.bytes);
      // keeping a tensor the scope did not make (the enclosing step's) leaves it with its owner
      rank.beginStep();
      const other = rank.add(kept, outer) as CudaTensor;
      await rank.endStep(outer);
      expect([other.freed, outer.freed]).toEqual([true, false]);
      expect(Array.from(await rank.download(kept))).toEqual([2, -4, 6, -8]);
      await rank.endStep();
      expect(waits.count, 'stream waits when the outermost step ends').toBe(1);
      expect([kept.freed, outer.freed]).toEqual([true, true]);
    });
  });

  it('endStep(keep) is refused, naming endStep, with no enclosing step or a freed tensor, and the step stays open', async () => {
    await withRank({}, async (rank) => {
      const waits = countWaits(rank);
      const made = rank.upload(hostTensor(Float32Array.from([1, 2])));
      await expect(rank.endStep(made)).rejects.toThrow(/endStep: cannot keep a tensor when no step is open/);
      rank.beginStep();
      const t = rank.upload(hostTensor(Float32Array.from([3, 4]))) as CudaTensor;
      await expect(rank.endStep(t)).rejects.toThrow(/endStep: cannot keep a tensor from the outermost step: nothing encloses it/);
      expect(t.freed, 'refused before anything happened').toBe(false);
      rank.beginStep();
      const gone = rank.scale(t, 3);
      rank.free(gone);
      await expect(rank.endStep(gone)).rejects.toThrow(/endStep: the tensor to keep \(f32 \[2\]\) was freed already/);
      expect(waits.count).toBe(0);
      // still two steps open: the scope ends, then the outermost step, which frees t
      await rank.endStep();
      expect(t.freed).toBe(false);
      await rank.endStep();
      expect([t.freed, waits.count]).toEqual([true, 1]);
      rank.free(made);
    });
  });
});
