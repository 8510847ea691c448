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

  it("a first step's overflow is reused by the arena that follows: the memory ends at 1.25× the step's peak, not 2.25×", () => {
    const heap = new Heap();
    const before = heap.byteLength;
    const MiB = 2 ** 20;
    heap.beginStep();
    for (let i = 0; i < 64; i++) heap.alloc(4 * MiB); // 256 MiB in 64 overflow blocks (no arena yet)
    heap.endStep();
    const grown = heap.byteLength;
    expect(grown).toBeGreaterThanOrEqual(1.25 * 256 * MiB);
    // 1.25 × 256 MiB, plus at most the initial memory and the 16 MiB the memory grows ahead
    expect(grown).toBeLessThanOrEqual(1.25 * 256 * MiB + before + 16 * MiB);
    // the next step of the same size fits the arena: nothing grows
    heap.beginStep();
    for (let i = 0; i < 64; i++) heap.alloc(4 * MiB);
    heap.endStep();
    expect(heap.byteLength).toBe(grown);
  });

  it('a scope (a step inside a step) rewinds to where it started, moving the block it keeps there with its contents', () => {
    const heap = new Heap();
    heap.beginStep();
    heap.alloc(1 << 20); // the first step sizes the arena
    heap.endStep();
    heap.beginStep();
    const outer = heap.alloc(256);
    heap.beginStep();
    const start = heap.alloc(1000);
    heap.alloc(4096);
    const kept = heap.alloc(512);
    heap.floats(kept, 128).set(Float32Array.from({ length: 128 }, (_, i) => i + 0.5));
    const moved = heap.endScope({ at: kept, bytes: 512 });
    expect(moved).toBe(start);
    expect(Array.from(heap.floats(moved!, 128))).toEqual(Array.from({ length: 128 }, (_, i) => i + 0.5));
    // the next allocation follows the kept block: the scope's other 5 KiB are free again
    expect(heap.alloc(64)).toBe(start + 512);
    expect(outer).toBeLessThan(start);
    heap.endStep();
  });

  it("scopes that overflow the arena give their blocks back, so later scopes reuse them and the memory stops growing", () => {
    const heap = new Heap();
    const MiB = 2 ** 20;
    heap.beginStep();
    const scope = () => {
      heap.beginStep();
      heap.alloc(8 * MiB);
      const out = heap.alloc(64);
      heap.endScope({ at: out, bytes: 64 });
    };
    scope();
    scope();
    const after2 = heap.byteLength;
    for (let i = 0; i < 20; i++) scope();
    expect(heap.byteLength).toBe(after2);
    heap.endStep();
  });

  it('freed neighbours merge, so a block as large as both is served from them', () => {
    const heap = new Heap();
    const a = heap.alloc(1024);
    const b = heap.alloc(1024);
    heap.alloc(64); // keeps a and b off the top
    heap.release(b, 1024);
    heap.release(a, 1024);
    expect(heap.alloc(2048)).toBe(a);
  });

  it('refuses to grow past what wasm32 can address, with the way out in the message', () => {
    const heap = new Heap();
    expect(() => heap.alloc(5 * 2 ** 30)).toThrow(/4 GiB.*larger --tp/);
  });
});

describe('wasm relative-position kernels agree with the reference', () => {
  const heap = new Heap();
  const kernels = instantiateKernels(heap.memory);
  const put = (values: Float32Array | Int32Array) => {
    const at = heap.alloc(values.length * 4);
    if (values instanceof Int32Array) heap.ints(at, values.length).set(values);
    else heap.floats(at, values.length).set(values);
    return at;
  };
  const close = (got: Float32Array, expected: Float32Array) => {
    expect(got.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(expected[i]!)));
  };
  // heads 4 over kv heads 2; widths not multiples of 4; n keys; a table of 9 positions
  const heads = 4;
  const group = 2;
  const n = 6;
  const positions = 9;
  for (const width of [1, 5, 8]) {
    for (const shared of [false, true]) {
      const label = `width ${width}, ${shared ? 'one table every head shares' : 'one slice per head'}`;
      const r = random(width * 10 + (shared ? 1 : 0));
      const rowWidth = shared ? width : heads * width;
      const table: js.RelativeTable = { data: Float32Array.from({ length: positions * rowWidth }, r), rowWidth, headWidth: shared ? 0 : width };
      const index = Int32Array.from({ length: n }, (_, j) => (j * 5 + 3) % positions);

      it(`attn_rel_scores, the keys term (one query per head): ${label}`, () => {
        const q = Float32Array.from({ length: heads * width }, r);
        const scores = Float32Array.from({ length: heads * n }, r);
        const expected = scores.slice();
        js.relativeScores(expected, heads, n, width, q, 0, 1, 0, table, index);
        const at = put(scores);
        kernels.attn_rel_scores(put(q), 1, 0, put(table.data), put(index), rowWidth * 4, table.headWidth * 4, at, heads, width, n);
        close(heap.floats(at, heads * n), expected);
      });

      it(`attn_rel_scores, the queries term (cached keys, rows of 3 kv heads' width apart, GQA group 2): ${label}`, () => {
        const stride = 3 * width;
        const k = Float32Array.from({ length: n * stride }, r);
        const scores = Float32Array.from({ length: heads * n }, r);
        const expected = scores.slice();
        js.relativeScores(expected, heads, n, width, k, 0, group, stride, table, index);
        const at = put(scores);
        kernels.attn_rel_scores(put(k), group, stride * 4, put(table.data), put(index), rowWidth * 4, table.headWidth * 4, at, heads, width, n);
        close(heap.floats(at, heads * n), expected);
      });

      it(`attn_rel_mix adds the weighted table rows to the output (zero weights skipped): ${label}`, () => {
        const p = Float32Array.from({ length: heads * n }, (_, i) => (i % 3 === 0 ? 0 : r()));
        const out = Float32Array.from({ length: heads * width }, r);
        const expected = out.slice();
        js.relativeMix(p, heads, n, width, table, index, expected);
        const at = put(out);
        kernels.attn_rel_mix(put(p), put(table.data), put(index), rowWidth * 4, table.headWidth * 4, at, heads, width, n);
        close(heap.floats(at, heads * width), expected);
      });
    }
  }
});

// Attention, and every other kernel against an independent reference, is checked by the backend
// conformance suite (conformance.test.ts, from @tp/core/testing).
