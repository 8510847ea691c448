/**
 * The WebAssembly SIMD kernels, instantiated once per rank over the rank's own heap memory.
 */
import { wasmBase64 } from './generated/kernels.js';

export interface WasmKernels {
  /** y[M, N] = x[M, K] · w[N, K]ᵀ (+ b): byte offsets in the heap; b = 0 for no bias. */
  matmul(x: number, w: number, b: number, y: number, M: number, K: number, N: number): void;
  /**
   * As `matmul` with w [N, K] stored as bf16 (2 bytes per element, rows of 2·K bytes, any 2-byte
   * alignment); x, b, y stay f32 and the sums are f32.
   *
   * `scratch`: byte offset of 8·K bytes (two rows of K f32) the kernel may overwrite, used when
   * M > 1 and N > 1 to widen w two rows at a time for the prefill tiles; nothing is kept there between
   * calls, so a step-arena allocation does. 16-byte alignment is best. Decode (M = 1) does not touch
   * it. With scratch = 0 and M > 1 every row of x streams all of w again (M decodes): correct, but
   * several times slower than with a scratch.
   */
  matmul_bf16(x: number, w: number, b: number, y: number, M: number, K: number, N: number, scratch: number): void;
  /**
   * As `matmul_bf16` with w stored as IEEE half (f16). f16 subnormals and -0 convert exactly; ±inf and
   * NaN weights are not supported (they read as finite ±2^16·(1 + m/1024)). Decode scales x by 2^64
   * internally: exact unless |x| ≥ 2^64.
   */
  matmul_f16(x: number, w: number, b: number, y: number, M: number, K: number, N: number, scratch: number): void;
  /** scores[h·n + j] = q_h · k_j over n cache rows `stride` bytes apart; head h reads kv head h / group. */
  attn_scores(q: number, k: number, scores: number, heads: number, group: number, headDim: number, n: number, stride: number): void;
  /** out_h = Σ_j p[h·n + j] · v_j (out overwritten). */
  attn_mix(p: number, v: number, out: number, heads: number, group: number, valueDim: number, n: number, stride: number): void;
}

let compiled: WebAssembly.Module | undefined;

export function instantiateKernels(memory: WebAssembly.Memory): WasmKernels {
  compiled ??= new WebAssembly.Module(Buffer.from(wasmBase64, 'base64'));
  const instance = new WebAssembly.Instance(compiled, { env: { memory } });
  return instance.exports as unknown as WasmKernels;
}
