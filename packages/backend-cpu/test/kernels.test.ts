/**
 * The WebAssembly kernels against the TypeScript reference kernels, on awkward shapes: rows and
 * columns not multiples of the SIMD tiles, K not a multiple of 4, with and without bias.
 */
import { describe, expect, it } from 'vitest';
import { Heap } from '../src/heap.js';
import * as js from '../src/kernels/js.js';
import { instantiateKernels } from '../src/kernels/wasm.js';

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

describe('wasm matmul agrees with the reference', () => {
  const heap = new Heap();
  const kernels = instantiateKernels(heap.memory);
  const put = (values: Float32Array) => {
    const at = heap.alloc(values.length * 4);
    heap.floats(at, values.length).set(values);
    return at;
  };
  for (const M of [1, 2, 3, 5]) {
    for (const K of [1, 3, 4, 7, 64, 130]) {
      for (const N of [1, 3, 4, 5, 9]) {
        for (const withBias of [false, true]) {
          it(`M ${M}, K ${K}, N ${N}${withBias ? ', bias' : ''}`, () => {
            const r = random(M * 1000 + K * 10 + N);
            const x = Float32Array.from({ length: M * K }, r);
            const w = Float32Array.from({ length: N * K }, r);
            const b = withBias ? Float32Array.from({ length: N }, r) : undefined;
            const expected = new Float32Array(M * N);
            js.linear(x, w, b, expected, M, K, N);
            const y = heap.alloc(M * N * 4);
            kernels.matmul(put(x), put(w), b ? put(b) : 0, y, M, K, N);
            const got = heap.floats(y, M * N);
            for (let i = 0; i < expected.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[i]!)));
            // nothing written past the output
            expect(heap.floats(y + M * N * 4, 1)[0]).not.toBeNaN();
          });
        }
      }
    }
  }

  it('keeps working after the heap grows (views and the instance share one memory)', () => {
    const before = heap.byteLength;
    const big = heap.alloc(before * 2);
    expect(heap.byteLength).toBeGreaterThan(before);
    const x = put(Float32Array.from([1, 2, 3, 4]));
    const w = put(Float32Array.from([1, 1, 1, 1, 2, 2, 2, 2]));
    const y = heap.alloc(8);
    kernels.matmul(x, w, 0, y, 1, 4, 2);
    expect(Array.from(heap.floats(y, 2))).toEqual([10, 20]);
    heap.release(big, before * 2);
  });
});

describe('heap', () => {
  it('frees a step arena at once and reuses it', () => {
    const heap = new Heap();
    heap.beginStep();
    const a = heap.alloc(1000);
    const b = heap.alloc(5000);
    heap.endStep();
    heap.beginStep();
    const c = heap.alloc(1000);
    const d = heap.alloc(5000);
    heap.endStep();
    expect(b).toBeGreaterThan(a);
    // the second step is served from the arena sized by the first step's peak
    expect(d - c).toBe(1024);
    expect(heap.floats(c, 1)).toBeDefined();
  });

  it('refuses to grow past what wasm32 can address, with the way out in the message', () => {
    const heap = new Heap();
    expect(() => heap.alloc(5 * 2 ** 30)).toThrow(/4 GiB.*larger --tp/);
  });
});

describe('wasm attention agrees with the reference', () => {
  const cases = [
    { name: 'decode, GQA 8/2, full', heads: 8, kvHeads: 2, headDim: 16, valueDim: 16, batch: 2, rows: 1, start: 9 },
    { name: 'prefill, MHA, head dim 6 (not a multiple of 4)', heads: 3, kvHeads: 3, headDim: 6, valueDim: 6, batch: 1, rows: 7, start: 0 },
    { name: 'prefill after a prefix, alibi, window 3', heads: 4, kvHeads: 1, headDim: 8, valueDim: 8, batch: 2, rows: 4, start: 5, alibi: true, window: 3 },
    { name: 'value width differs from key width, scaled alibi', heads: 4, kvHeads: 2, headDim: 8, valueDim: 12, batch: 1, rows: 3, start: 2, alibi: true, scaled: true },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { CpuRank } = await import('../src/rank.js');
      const { createHostCollectiveInit } = await import('@tp/core');
      const rank = new CpuRank({ rank: 0, world: 1, collective: createHostCollectiveInit(1, 1024, 1000), options: {} });
      const r = random(c.heads * 100 + c.rows);
      const capacity = c.start + c.rows + 2;
      const spec = {
        heads: c.heads,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        valueDim: c.valueDim,
        scale: 1 / Math.sqrt(c.headDim),
        ...(c.alibi ? { alibi: Float32Array.from({ length: c.heads }, (_, h) => 0.5 ** (h + 1)), alibiScaled: c.scaled === true } : {}),
        ...(c.window ? { window: c.window } : {}),
      };
      const keyMask = new Uint8Array(c.batch * capacity);
      const keyPositions = new Int32Array(c.batch * capacity);
      for (let b = 0; b < c.batch; b++) {
        const pad = b; // left padding of b slots
        for (let j = 0; j < capacity; j++) {
          keyMask[b * capacity + j] = j >= pad ? 1 : 0;
          keyPositions[b * capacity + j] = Math.max(0, j - pad);
        }
      }
      const cache = rank.createKvCache(c.batch, capacity, c.kvHeads, c.headDim, c.valueDim);
      rank.beginStep();
      // fill the prefix [0, start) with keys and values through a first call, as a forward would
      const qAll = Float32Array.from({ length: c.batch * (c.start + c.rows) * c.heads * c.headDim }, r);
      const kAll = Float32Array.from({ length: c.batch * (c.start + c.rows) * c.kvHeads * c.headDim }, r);
      const vAll = Float32Array.from({ length: c.batch * (c.start + c.rows) * c.kvHeads * c.valueDim }, r);
      const slice = (a: Float32Array, width: number, from: number, count: number) => {
        const out = new Float32Array(c.batch * count * width);
        for (let b = 0; b < c.batch; b++) out.set(a.subarray((b * (c.start + c.rows) + from) * width, (b * (c.start + c.rows) + from + count) * width), b * count * width);
        return out;
      };
      const run = (from: number, count: number) =>
        rank.attention(
          rank.upload(slice(qAll, c.heads * c.headDim, from, count), [c.batch * count, c.heads * c.headDim]),
          rank.upload(slice(kAll, c.kvHeads * c.headDim, from, count), [c.batch * count, c.kvHeads * c.headDim]),
          rank.upload(slice(vAll, c.kvHeads * c.valueDim, from, count), [c.batch * count, c.kvHeads * c.valueDim]),
          cache,
          { batch: c.batch, rows: count, start: from, keyMask, keyPositions },
          spec,
        );
      if (c.start > 0) run(0, c.start);
      const got = await rank.download(run(c.start, c.rows));
      // the reference, on a cache filled the same way
      const kCache = new Float32Array(c.batch * capacity * c.kvHeads * c.headDim);
      const vCache = new Float32Array(c.batch * capacity * c.kvHeads * c.valueDim);
      for (let b = 0; b < c.batch; b++) {
        kCache.set(kAll.subarray(b * (c.start + c.rows) * c.kvHeads * c.headDim, (b + 1) * (c.start + c.rows) * c.kvHeads * c.headDim), b * capacity * c.kvHeads * c.headDim);
        vCache.set(vAll.subarray(b * (c.start + c.rows) * c.kvHeads * c.valueDim, (b + 1) * (c.start + c.rows) * c.kvHeads * c.valueDim), b * capacity * c.kvHeads * c.valueDim);
      }
      const expected = new Float32Array(c.batch * c.rows * c.heads * c.valueDim);
      js.attention({ q: slice(qAll, c.heads * c.headDim, c.start, c.rows), kCache, vCache, out: expected, batch: c.batch, rows: c.rows, start: c.start, capacity, keyMask, keyPositions, spec });
      rank.endStep();
      expect(got.length).toBe(expected.length);
      let worst = 0;
      for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
      expect(worst).toBeLessThan(1e-5);
      expect(expected.some((x) => x !== 0)).toBe(true);
    });
  }
});
