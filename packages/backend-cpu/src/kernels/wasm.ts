/**
 * The WebAssembly SIMD kernels, instantiated once per rank over the rank's own heap memory.
 */
import { wasmBase64 } from './generated/kernels.js';

export interface WasmKernels {
  /**
   * y[M, N] = x[M, K] · w[N, K]ᵀ (+ b): byte offsets in the heap; b = 0 for no bias. Prefill (M > 1)
   * tiles x and w where they lie; `matmul_f32` with a scratch is faster.
   */
  matmul(x: number, w: number, b: number, y: number, M: number, K: number, N: number): void;
  /**
   * As `matmul`, with a scratch that makes prefill (M > 1) about 20% faster: x is copied into it,
   * interleaved four rows at a time, so a register tile reads its four rows through one pointer.
   *
   * `scratch` (all three matmul_<dtype> kernels): byte offset of 72·K bytes the kernel may overwrite —
   * a block of up to 16 rows of x (64·K bytes), then two widened rows of w (8·K, half weights only);
   * f16 decode uses 4·K of it for x·2^64. Nothing is kept there between calls, so a step-arena
   * allocation does; 16-byte alignment is best. scratch = 0: `matmul`'s in-place tiles.
   */
  matmul_f32(x: number, w: number, b: number, y: number, M: number, K: number, N: number, scratch: number): void;
  /**
   * As `matmul_f32` with w [N, K] stored as bf16 (2 bytes per element, rows of 2·K bytes, any 2-byte
   * alignment); x, b, y stay f32 and the sums are f32. Decode widens w in registers as it streams;
   * prefill widens it into the scratch two rows at a time (once per 16 rows of x).
   *
   * scratch = 0 with M > 1: every row of x streams all of w again (M decodes) — correct, several
   * times slower; pass the 72·K bytes.
   */
  matmul_bf16(x: number, w: number, b: number, y: number, M: number, K: number, N: number, scratch: number): void;
  /**
   * As `matmul_bf16` with w stored as IEEE half (f16). Subnormals and -0 convert exactly; ±inf and NaN
   * weights are not supported (they read as finite ±2^16·(1 + m/1024)). Decode multiplies x by 2^64
   * (once into the scratch, or per vector without one: ~35% slower) and w by 2^-112: exact unless
   * |x| ≥ 2^64, or a product is below 2^-78 in magnitude (rounded as an f32 subnormal: absolute error
   * under 2^-101). f16 subnormal weights pass through f32 subnormals, which are slow on some CPUs:
   * the ~0.3% a trained checkpoint has made decode ~1.5× slower on the AMD machine measured.
   */
  matmul_f16(x: number, w: number, b: number, y: number, M: number, K: number, N: number, scratch: number): void;
  /** scores[h·n + j] = q_h · k_j over n cache rows `stride` bytes apart; head h reads kv head h / group. */
  attn_scores(q: number, k: number, scores: number, heads: number, group: number, headDim: number, n: number, stride: number): void;
  /** out_h = Σ_j p[h·n + j] · v_j (out overwritten). */
  attn_mix(p: number, v: number, out: number, heads: number, group: number, valueDim: number, n: number, stride: number): void;
  /**
   * scores[h·n + j] += a_{h,j} · table row index[j] (head h's slice, `headBytes` apart; 0 for a table
   * every head shares) over headDim floats. a_{h,j} sits at a + (h / aGroup)·headDim·4 + j·aStride:
   * the query row (aGroup 1, aStride 0) for the relative keys term, the cached keys (aGroup = the GQA
   * group, aStride = one cache row) for the queries term. `index` is i32 [n], already range-checked.
   */
  attn_rel_scores(a: number, aGroup: number, aStride: number, table: number, index: number, rowBytes: number, headBytes: number, scores: number, heads: number, headDim: number, n: number): void;
  /** out_h += Σ_j p[h·n + j] · table row index[j] (head h's slice): the relative values term. */
  attn_rel_mix(p: number, table: number, index: number, rowBytes: number, headBytes: number, out: number, heads: number, valueDim: number, n: number): void;
}

let compiled: WebAssembly.Module | undefined;

export function instantiateKernels(memory: WebAssembly.Memory): WasmKernels {
  compiled ??= new WebAssembly.Module(Buffer.from(wasmBase64, 'base64'));
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return instance.exports as unknown as WasmKernels;
}
