/**
 * The matmul kernels for f32, bf16 and f16 weights against an f64 reference computed on the same
 * (rounded) weights, at shapes that are not multiples of any tile or vector width: every row and
 * column remainder, K below one vector, K % 4, K % 8 and K % 16 tails, N = 1 and odd N (the last
 * pair of w rows overlaps the one before; decode pairs a row with itself), M past one block of x
 * rows. Each kernel runs with its scratch and without (matmul's in-place tiles; the half kernels'
 * per-row fallback). The output is poisoned with NaN so an element the kernel never writes fails;
 * guard words around y and after the 72·K-byte scratch catch writes outside them; x, w and b must come
 * back unchanged.
 */
import { describe, expect, it } from 'vitest';
import { instantiateKernels } from '../src/kernels/wasm.js';

type Dtype = 'f32' | 'bf16' | 'f16';
/** the export under test: matmul (f32, no scratch) or matmul_<dtype> with a scratch (or 0) */
type Kernel = 'matmul' | 'matmul_f32' | 'matmul_bf16' | 'matmul_f16';

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** bf16 bits → value, from the definition (the top half of an f32) */
function bf16Value(h: number): number {
  u32Bits[0] = h << 16;
  return f32Bits[0]!;
}

/** f16 bits → value, from the definition; written independently of the kernels' bit tricks */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // ±0 and subnormals
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/**
 * Weights as the kernel stores them (`bits`: f32 bit patterns or 16-bit halves) and their exact values.
 * Half values cover the ranges a checkpoint holds plus the awkward ones: ±0, f16 subnormals (down to
 * the smallest), bf16 values whose low mantissa bits are set, and both signs throughout.
 */
function weights(dtype: Dtype, count: number, r: () => number): { bits: Uint32Array | Uint16Array; values: Float64Array } {
  const values = new Float64Array(count);
  if (dtype === 'f32') {
    const w = Float32Array.from({ length: count }, () => r() - 0.5);
    w.forEach((v, i) => (values[i] = v));
    return { bits: new Uint32Array(w.buffer), values };
  }
  const bits = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const sign = r() < 0.5 ? 0x8000 : 0;
    const pick = r();
    let h: number;
    if (dtype === 'bf16') {
      if (pick < 0.05) h = sign; // ±0
      else if (pick < 0.1) h = sign | Math.floor(r() * 0x7f) + 1; // subnormal
      else h = sign | ((118 + Math.floor(r() * 12)) << 7) | Math.floor(r() * 128); // 2^-9 .. 2^3
    } else {
      if (pick < 0.05) h = sign; // ±0
      else if (pick < 0.15) h = sign | (Math.floor(r() * 0x3ff) + 1); // subnormal, 2^-24 .. 2^-14
      else if (pick < 0.17) h = sign | 1; // the smallest subnormal
      else h = sign | ((6 + Math.floor(r() * 12)) << 10) | Math.floor(r() * 1024); // 2^-9 .. 2^3
    }
    bits[i] = h;
    values[i] = dtype === 'bf16' ? bf16Value(h) : f16Value(h);
  }
  return { bits, values };
}

describe('matmul kernels for f32, bf16 and f16 weights', () => {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536 });
  const kernels = instantiateKernels(memory);
  const POISON = 0x7fc0dead; // a NaN with a recognisable payload
  const GUARD = 64; // bytes after y and after the scratch that must stay untouched

  function run(kernel: Kernel, M: number, K: number, N: number, withBias: boolean, seed: number, useScratch = true) {
    const dtype: Dtype = kernel === 'matmul' ? 'f32' : (kernel.slice(7) as Dtype);
    const r = random(seed);
    const elementBytes = dtype === 'f32' ? 4 : 2;
    // every buffer 64-aligned like the heap, then w offset by one element so a row start is only
    // element-aligned (rows of odd K are, within any matrix)
    let top = 64;
    const take = (bytes: number) => {
      const at = top;
      top += Math.ceil((bytes + GUARD) / 64) * 64 + 64;
      return at;
    };
    const xAt = take(M * K * 4);
    const wAt = take(N * K * elementBytes + elementBytes) + elementBytes;
    const bAt = take(N * 4);
    const yAt = take(M * N * 4);
    const scratchAt = take(72 * K);
    if (top > memory.buffer.byteLength) memory.grow(Math.ceil((top - memory.buffer.byteLength) / 65536));
    const f32 = new Float32Array(memory.buffer);
    const u32 = new Uint32Array(memory.buffer);
    const u8 = new Uint8Array(memory.buffer);

    const x = Float32Array.from({ length: M * K }, () => r() * 2 - 1);
    const w = weights(dtype, N * K, r);
    const b = Float32Array.from({ length: N }, () => r() * 2 - 1);
    f32.set(x, xAt / 4);
    u8.set(new Uint8Array(w.bits.buffer), wAt);
    f32.set(b, bAt / 4);
    u32.fill(POISON, (yAt - GUARD) / 4, yAt / 4 + M * N + GUARD / 4);
    u8.fill(0xa5, scratchAt, scratchAt + 72 * K + GUARD);
    const inputs = u8.slice(xAt, bAt + N * 4);

    const scratch = useScratch && kernel !== 'matmul' ? scratchAt : 0;
    const bias = withBias ? bAt : 0;
    if (kernel === 'matmul') kernels.matmul(xAt, wAt, bias, yAt, M, K, N);
    else kernels[kernel](xAt, wAt, bias, yAt, M, K, N, scratch);

    const expected = new Float64Array(M * N);
    let scale = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = withBias ? b[n]! : 0;
        for (let k = 0; k < K; k++) s += x[m * K + k]! * w.values[n * K + k]!;
        expected[m * N + n] = s;
        scale = Math.max(scale, Math.abs(s));
      }
    }
    const got = new Float32Array(memory.buffer, yAt, M * N);
    const wrong: string[] = [];
    const tolerance = 1e-5 * Math.max(scale, 1e-30);
    for (let i = 0; i < M * N; i++) {
      if (!(Math.abs(got[i]! - expected[i]!) <= tolerance)) wrong.push(`y[${Math.floor(i / N)}, ${i % N}] = ${got[i]}, expected ${expected[i]}`);
    }
    const case_ = `${kernel} M ${M} K ${K} N ${N}${withBias ? ' bias' : ''}${scratch ? '' : ' no scratch'}`;
    expect(wrong.slice(0, 5), case_).toEqual([]);
    const before = Array.from(new Uint32Array(memory.buffer, yAt - GUARD, GUARD / 4));
    const after = Array.from(new Uint32Array(memory.buffer, yAt + M * N * 4, GUARD / 4));
    expect(before.every((v) => v === POISON), `${case_}: written before y`).toBe(true);
    expect(after.every((v) => v === POISON), `${case_}: written past y`).toBe(true);
    expect(u8.subarray(scratchAt + 72 * K, scratchAt + 72 * K + GUARD).every((v) => v === 0xa5), `${case_}: written past 72·K bytes of scratch`).toBe(true);
    if (!scratch) expect(u8.subarray(scratchAt, scratchAt + 72 * K).every((v) => v === 0xa5), `${case_}: wrote to memory it was not given`).toBe(true);
    expect(u8.subarray(xAt, bAt + N * 4).every((v, i) => v === inputs[i]), `${case_}: an input changed`).toBe(true);
  }

  const Ms = [1, 2, 3, 5, 16, 17];
  const Ks = [1, 3, 7, 9, 33, 130];
  const Ns = [1, 3, 5, 9, 67];
  for (const kernel of ['matmul', 'matmul_f32', 'matmul_bf16', 'matmul_f16'] as const) {
    for (const M of Ms) {
      for (const withBias of [false, true]) {
        it(`${kernel}, M ${M}${withBias ? ', bias' : ''}, K ∈ {${Ks.join(', ')}} × N ∈ {${Ns.join(', ')}}`, () => {
          for (const K of Ks) for (const N of Ns) run(kernel, M, K, N, withBias, M * 100_003 + K * 1009 + N * 17 + (withBias ? 1 : 0));
        });
      }
    }

    it(`${kernel}: K a multiple of the vector widths, M of the tile rows, N even (no remainders at all)`, () => {
      for (const [M, K, N] of [
        [1, 16, 2],
        [4, 32, 4],
        [8, 64, 8],
        [16, 256, 64],
      ] as const) {
        run(kernel, M, K, N, true, M + K + N);
      }
    });

    it(`${kernel}: M spread over several blocks of x rows (large K)`, () => {
      run(kernel, 17, 4099, 5, true, 1); // blocks of 12 rows in place, of 16 packed
      run(kernel, 9, 20_000, 6, false, 2); // in place: blocks of the minimum, 4 rows
    });
  }

  for (const kernel of ['matmul_f32', 'matmul_bf16', 'matmul_f16'] as const) {
    it(`${kernel}: without a scratch (0), M > 1 still computes every row`, () => {
      for (const [M, K, N] of [
        [2, 7, 3],
        [5, 33, 9],
        [17, 130, 67],
      ] as const) {
        run(kernel, M, K, N, true, M * K * N, false);
      }
    });
  }

  it('f16 decode within its documented bounds at extreme magnitudes (x is scaled by 2^64 inside)', () => {
    // large |x| against f16's largest weights must not overflow; products below 2^-78 may be rounded
    // as subnormals, an absolute error under 2^-101 each
    const at = 1 << 16;
    const f32 = new Float32Array(memory.buffer);
    const u16 = new Uint16Array(memory.buffer);
    const check = (x: number[], hs: number[]) => {
      const K = x.length;
      f32.set(x, at / 4);
      hs.forEach((h, k) => (u16[(at + 4096) / 2 + k] = h));
      for (const N of [1, 2]) {
        // N = 2 duplicates the row so both decode streams see it
        hs.forEach((h, k) => (u16[(at + 4096) / 2 + K + k] = h));
        // without a scratch (x scaled per vector in the loop) and with one (x scaled once into it)
        kernels.matmul_f16(at, at + 4096, 0, at + 8192, 1, K, N, 0);
        const unscaled = Array.from(f32.subarray((at + 8192) / 4, (at + 8192) / 4 + N));
        kernels.matmul_f16(at, at + 4096, 0, at + 8192, 1, K, N, at + 12288);
        let expected = 0;
        let magnitude = 0;
        for (let k = 0; k < K; k++) {
          expected += x[k]! * f16Value(hs[k]!);
          magnitude += Math.abs(x[k]! * f16Value(hs[k]!));
        }
        for (let n = 0; n < N; n++) {
          expect(Math.abs(unscaled[n]! - expected)).toBeLessThanOrEqual(1e-6 * magnitude + K * 2 ** -101);
          expect(Math.abs(f32[(at + 8192) / 4 + n]! - expected)).toBeLessThanOrEqual(1e-6 * magnitude + K * 2 ** -101);
        }
      }
    };
    const K = 37;
    check(
      Array.from({ length: K }, (_, k) => (k % 2 ? -3e4 : 2.9e4)),
      Array.from({ length: K }, (_, k) => [0x7bff, 0xfbff, 0x3c00, 0x0001, 0x8000][k % 5]!),
    );
    check(
      Array.from({ length: K }, (_, k) => (k % 3 ? 1e-20 : -1e-20)),
      Array.from({ length: K }, (_, k) => [0x0001, 0x8001, 0x03ff, 0x0400][k % 4]!),
    );
  });
});
