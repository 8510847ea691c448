/**
 * What the conformance suite does not see: how work reaches the GPU (batched submissions, one readback
 * per download), WGSL compile errors, memory reuse across steps, and the rank's lifetime.
 */
import { createHostCollectiveInit, hostTensor, TpError } from '@tp/core';
import { reference } from '@tp/core/testing';
import { describe, expect, it } from 'vitest';
import { openDevice } from '../src/device.js';
import { kernelSource, type KernelDef } from '../src/kernel.js';
import { MAX_BATCH } from '../src/recorder.js';
import { gpuFor, parseAdapterList } from '../src/node/adapters.js';
import { Pipelines, WgslCompileError } from '../src/pipelines.js';
import { WebGpuRank } from '../src/rank.js';
import { adapterSkip, backend } from './helpers/adapter.js';

const run = it.skipIf(adapterSkip !== '');

async function newRank(options: Record<string, unknown> = {}): Promise<WebGpuRank> {
  return (await backend.createRank({ rank: 0, world: 1, communicator: createHostCollectiveInit(1, 1024, 5000), options })) as WebGpuRank;
}

const random = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * 2);

describe(`WebGPU rank${adapterSkip}`, () => {
  run('a decode-sized step is recorded and submitted in bounded batches: one readback, no submission per kernel', async () => {
    const rank = await newRank();
    try {
      // Each product keeps x at 1, so the result after any number of them is 1.
      const w = rank.upload(hostTensor(new Float32Array(64 * 64).fill(1 / 64), [64, 64]));
      rank.beginStep();
      const before = rank.stats();
      let x = rank.upload(hostTensor(new Float32Array(64).fill(1), [1, 64]));
      const kernels = 3 * MAX_BATCH + 10;
      for (let i = 0; i < kernels; i++) x = rank.linear(x, w);
      const y = (await rank.download(x)) as Float32Array;
      await rank.endStep();
      const after = rank.stats();
      expect(after.dispatches - before.dispatches).toBe(kernels);
      expect(after.reads - before.reads).toBe(1);
      // One submission per full batch, plus the one that carries the readback.
      expect(after.submits - before.submits).toBeLessThanOrEqual(Math.ceil(kernels / MAX_BATCH) + 1);
      expect(Math.abs(y[0]! - 1)).toBeLessThan(1e-3);
    } finally {
      await rank.dispose();
    }
  });

  run('step buffers are reused: ten identical steps hold no more memory than one', async () => {
    const rank = await newRank();
    try {
      const step = async () => {
        rank.beginStep();
        const a = rank.upload(hostTensor(new Float32Array(1000).fill(1), [10, 100]));
        const b = rank.activation(rank.scale(a, 2), 'silu');
        rank.norm(rank.add(a, b), { kind: 'rms', eps: 1e-6 });
        await rank.endStep();
      };
      await step();
      const first = rank.memoryBytes();
      for (let i = 0; i < 10; i++) await step();
      expect(rank.memoryBytes()).toBe(first);
    } finally {
      await rank.dispose();
    }
  });

  run('a tensor used after its step ended is an error naming it, not a silent read of reused memory', async () => {
    const rank = await newRank();
    try {
      rank.beginStep();
      const t = rank.upload(hostTensor(new Float32Array(6), [2, 3]));
      await rank.endStep();
      expect(() => rank.scale(t, 2)).toThrow(/used after it was freed/);
    } finally {
      await rank.dispose();
    }
  });

  run('a WGSL compile error names the kernel, the line and the column', async () => {
    const opened = await openDevice(gpuFor([]), 'compile-error test');
    try {
      const pipelines = new Pipelines(opened.device);
      opened.device.addEventListener('uncapturederror', (event) => pipelines.claim((event as GPUUncapturedErrorEvent).error.message));
      const def: KernelDef = {
        name: 'broken_kernel',
        bindings: [{ name: 'y', type: 'array<f32>', write: true }],
        params: [['n', 'u32']],
        code: '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {\n  y[g.x] = undefinedValue;\n}',
      };
      pipelines.get(def);
      const lines = kernelSource(def).split('\n');
      const line = lines.findIndex((l) => l.includes('undefinedValue')) + 1;
      // Dawn delivers the error while the event loop polls it, as during any GPU wait.
      await opened.device.queue.onSubmittedWorkDone();
      let error: unknown;
      try {
        pipelines.check();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(WgslCompileError);
      const e = error as WgslCompileError;
      expect(TpError.isInstance(e)).toBe(true);
      expect(e.kernel).toBe('broken_kernel');
      expect(e.line).toBe(line);
      expect(e.column).toBe(lines[line - 1]!.indexOf('undefinedValue') + 1);
      expect(e.message).toContain('undefinedValue');
      expect(() => pipelines.check()).not.toThrow();
    } finally {
      opened.device.destroy();
    }
  });

  run('dispose drains the queue and destroys the device; the rank refuses work afterwards; a second dispose is a no-op', async () => {
    const rank = await newRank();
    const w = rank.upload(hostTensor(new Float32Array(256 * 256).fill(1), [256, 256]));
    rank.beginStep();
    let x = rank.upload(hostTensor(new Float32Array(256).fill(1), [1, 256]));
    for (let i = 0; i < 20; i++) x = rank.scale(rank.linear(x, w), 1 / 256);
    // Disposing with the step's work recorded and unsubmitted: it must still end cleanly.
    const started = Date.now();
    await rank.dispose();
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(rank.device.lost).resolves.toMatchObject({ reason: 'destroyed' });
    expect(() => rank.scale(x, 2)).toThrow(/disposed/);
    await rank.dispose();
  });
});

describe(`WebGPU nested steps (scopes)${adapterSkip}`, () => {
  const tensorBuffer = (t: unknown) => (t as { buffer: GPUBuffer }).buffer;

  run('a scope releases its tensors at once but the kept one: the others fail when used, the kept one keeps its contents', async () => {
    const rank = await newRank();
    try {
      rank.beginStep();
      rank.beginStep();
      const a = rank.upload(hostTensor(Float32Array.from([1, 2, 3, 4]), [4]));
      const kept = rank.scale(a, 3);
      const dropped = rank.scale(a, 5);
      const submitsBefore = rank.stats().submits;
      await rank.endStep(kept);
      // Ending a scope waits for nothing and submits nothing.
      expect(rank.stats().submits).toBe(submitsBefore);
      expect(() => rank.scale(a, 2)).toThrow(/scale: a f32 \[4\] tensor was used after it was freed \(or after the step or scope that made it ended\)/);
      expect(() => rank.add(kept, dropped)).toThrow(/add: .*used after it was freed/);
      // The next scope takes the released buffers (before the device has run the first scope's work)
      // and overwrites them; the kept tensor is not among them.
      rank.beginStep();
      const b = rank.upload(hostTensor(Float32Array.from([9, 9, 9, 9]), [4]));
      const c = rank.scale(b, 2);
      const reused = new Set([tensorBuffer(b), tensorBuffer(c)]);
      expect(reused.has(tensorBuffer(a)) || reused.has(tensorBuffer(dropped))).toBe(true);
      expect(reused.has(tensorBuffer(kept))).toBe(false);
      await rank.endStep();
      expect(Array.from(await rank.download(kept))).toEqual([3, 6, 9, 12]);
      await rank.endStep();
      expect(() => rank.scale(kept, 2)).toThrow(/used after it was freed/);
    } finally {
      await rank.dispose();
    }
  });

  run('a kept tensor passes through several scopes; one made by the enclosing step may be kept too', async () => {
    const rank = await newRank();
    try {
      rank.beginStep();
      const outer = rank.upload(hostTensor(Float32Array.from([1, -1]), [2]));
      rank.beginStep();
      rank.beginStep();
      const inner = rank.scale(outer, 2);
      await rank.endStep(inner); // now the middle scope's
      await rank.endStep(inner); // now the outer step's
      rank.beginStep();
      await rank.endStep(outer); // made outside the scope: it simply outlives it
      expect(Array.from(await rank.download(rank.add(inner, outer)))).toEqual([3, -3]);
      await rank.endStep();
    } finally {
      await rank.dispose();
    }
  });

  run('endStep(keep) on the outermost step is refused naming endStep, and the step stays open; a released keep is refused', async () => {
    const rank = await newRank();
    try {
      rank.beginStep();
      const t = rank.upload(hostTensor(new Float32Array(4), [4]));
      await expect(rank.endStep(t)).rejects.toThrow(/endStep\(keep\): the outermost step has no enclosing step/);
      expect(Array.from(await rank.download(t))).toEqual([0, 0, 0, 0]); // still open: t is alive
      rank.beginStep();
      const u = rank.scale(t, 2);
      await rank.endStep();
      rank.beginStep();
      await expect(rank.endStep(u)).rejects.toThrow(/endStep: a f32 \[4\] tensor was used after it was freed/);
      await rank.endStep(); // the refused scope is still open
      await rank.endStep();
      await expect(rank.endStep()).rejects.toThrow(/endStep: no step is open/);
    } finally {
      await rank.dispose();
    }
  });
});

describe(`WebGPU weights larger than one storage binding${adapterSkip}`, () => {
  // backendOptions.maxBindingBytes makes the binding limit 1 KiB, so these small weights are split
  // into blocks of rows exactly as a large embedding table is on a real adapter.
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    run(`a ${dtype} weight split into row blocks: download, linear (GEMV and prefill) and embedding match the reference`, async () => {
      const rank = await newRank({ maxBindingBytes: 1024 });
      try {
        const [N, K] = [37, 20]; // 37 rows of 20: blocks of 12 (f32) or 25 (half) rows
        const w = reference.roundToDtype(random(N * K, 1), dtype);
        const bias = random(N, 2);
        const wt = rank.upload({ bytes: reference.encodeDtype(w, dtype), dtype, shape: [N, K] });
        expect((wt as unknown as { blocks: unknown[] }).blocks.length).toBeGreaterThan(1);
        expect(Array.from(await rank.download(wt))).toEqual(Array.from(w));
        const bt = rank.upload(hostTensor(bias, [N]));
        for (const M of [1, 6]) {
          const x = random(M * K, 3 + M);
          rank.beginStep();
          const y = await rank.download(rank.linear(rank.upload(hostTensor(x, [M, K])), wt, bt));
          await rank.endStep();
          const expected = reference.linear(x, w, bias, M, K, N);
          const err = Math.max(...Array.from(y, (v, i) => Math.abs(v - expected[i]!)));
          expect(err, `linear M ${M}`).toBeLessThan(1e-4);
        }
        const ids = [0, 36, 12, 11, 24, 25, -1, 40, 13];
        rank.beginStep();
        const e = await rank.download(rank.embedding(wt, rank.upload(hostTensor(Int32Array.from(ids))), 0, 0.5));
        await rank.endStep();
        expect(Array.from(e)).toEqual(Array.from(reference.embedding(w, N, K, ids, 0, 0.5), Math.fround));
      } finally {
        await rank.dispose();
      }
    });
  }
});

/** Whether the test adapter offers `subgroups` (lavapipe does, with 8-lane subgroups). */
const subgroupSkip = adapterSkip || (await (async () => {
  if (adapterSkip !== '') return '';
  const opened = await openDevice(gpuFor([]), 'subgroup probe');
  opened.device.destroy();
  return opened.subgroups ? '' : ' (skipped: the adapter has no subgroups feature)';
})());

describe(`WebGPU decode GEMV with subgroup reductions${subgroupSkip}`, () => {
  const runSg = it.skipIf(subgroupSkip !== '');
  const compiled = (rank: WebGpuRank) => [...(rank as unknown as { pipelines: { cache: Map<string, unknown> } }).pipelines.cache.keys()];
  /** y = x·wᵀ + bias on `rank` against the reference, for each [M, K, N]; the largest error relative to max |y|. */
  async function linearError(rank: WebGpuRank, dtype: 'f32' | 'f16' | 'bf16', shapes: ReadonlyArray<readonly [number, number, number]>): Promise<number> {
    let worst = 0;
    for (const [i, [M, K, N]] of shapes.entries()) {
      const w = reference.roundToDtype(random(N * K, 10 + i), dtype);
      const bias = random(N, 20 + i);
      const x = random(M * K, 30 + i);
      const wt = rank.upload({ bytes: reference.encodeDtype(w, dtype), dtype, shape: [N, K] });
      rank.beginStep();
      const y = await rank.download(rank.linear(rank.upload(hostTensor(x, [M, K])), wt, i % 2 === 0 ? rank.upload(hostTensor(bias, [N])) : undefined));
      await rank.endStep();
      rank.free(wt);
      const expected = reference.linear(x, w, i % 2 === 0 ? bias : undefined, M, K, N);
      const scale = Math.max(...Array.from(expected, Math.abs));
      worst = Math.max(worst, ...Array.from(y, (v, j) => Math.abs(v - expected[j]!) / scale));
    }
    return worst;
  }
  // K not a multiple of 4 (scalar loads) and of 4 (vec4), N not a multiple of the 16 rows a workgroup
  // hands out, 1–4 rows of x (the decode GEMV's blocks), a K shorter than a subgroup.
  const SHAPES = [[1, 7, 5], [1, 130, 37], [3, 1030, 17], [4, 64, 64], [2, 33, 100], [1, 2048, 48]] as const;

  for (const [dtype, options, label] of [
    ['f32', {}, ''],
    ['f16', {}, ''],
    ['f16', { disableFeatures: ['shader-f16'] }, ' (unpacked from u32: no shader-f16)'],
    ['bf16', {}, ''],
  ] as const) {
    runSg(`${dtype} weights${label}: the subgroup GEMV (gemvSubgroups: true) matches the reference`, async () => {
      const rank = await newRank({ gemvSubgroups: true, ...options });
      try {
        expect(await linearError(rank, dtype, SHAPES)).toBeLessThan(2e-6);
        expect(compiled(rank).some((name) => name.startsWith('gemv_sg_'))).toBe(true);
        expect(compiled(rank).some((name) => name.startsWith('gemv_') && !name.startsWith('gemv_sg_'))).toBe(false);
      } finally {
        await rank.dispose();
      }
    });
  }

  runSg('a weight split into row blocks goes through the subgroup GEMV block by block', async () => {
    const rank = await newRank({ gemvSubgroups: true, maxBindingBytes: 1024 });
    try {
      expect(await linearError(rank, 'f32', [[1, 20, 37], [2, 20, 37]])).toBeLessThan(2e-6);
      expect(compiled(rank)).toContain('gemv_sg_f32v4_bf32_m1'); // K = 20: 4-wide loads
    } finally {
      await rank.dispose();
    }
  });

  runSg('the subgroup GEMV is off by default on a software adapter (slower there), and unused without the feature', async () => {
    const plain = await newRank();
    const without = await newRank({ gemvSubgroups: true, disableFeatures: ['subgroups'] });
    try {
      expect(plain.opened.subgroups).toBe(true);
      if (plain.opened.adapter.fallback) {
        await linearError(plain, 'f32', SHAPES.slice(0, 2));
        expect(compiled(plain).some((name) => name.startsWith('gemv_sg_'))).toBe(false);
      }
      expect(without.opened.subgroups).toBe(false);
      expect(await linearError(without, 'f32', SHAPES.slice(0, 2))).toBeLessThan(2e-6);
      expect(compiled(without).some((name) => name.startsWith('gemv_sg_'))).toBe(false);
    } finally {
      await plain.dispose();
      await without.dispose();
    }
  });
});

describe(`WebGPU test options${adapterSkip}`, () => {
  run('a malformed gemvSubgroups or attentionSplitKeys is refused with what to pass', async () => {
    await expect(newRank({ gemvSubgroups: 'yes' })).rejects.toThrow(/gemvSubgroups must be true or false, not "yes"/);
    await expect(newRank({ attentionSplitKeys: 0 })).rejects.toThrow(/attentionSplitKeys must be a whole number of keys ≥ 1, not 0/);
    await expect(newRank({ attentionSplitKeys: 2.5 })).rejects.toThrow(/attentionSplitKeys must be a whole number/);
  });
});

describe('adapter list', () => {
  it("reads Dawn's list of adapters from its error message", () => {
    const message = "no suitable backends found\nAvailable adapters:\n * backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)'\n * backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3'";
    expect(parseAdapterList(message)).toEqual([
      { backend: 'vulkan', name: 'llvmpipe (LLVM 15.0.6, 256 bits)' },
      { backend: 'vulkan', name: 'NVIDIA H100 80GB HBM3' },
    ]);
    expect(parseAdapterList('no adapters at all')).toEqual([]);
  });
});
