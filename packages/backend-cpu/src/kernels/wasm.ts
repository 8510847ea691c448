/**
 * The WebAssembly SIMD kernels, instantiated once per rank over the rank's own heap memory.
 */
import { wasmBase64 } from './generated/kernels.js';

export interface WasmKernels {
  /** y[M, N] = x[M, K] · w[N, K]ᵀ (+ b): byte offsets in the heap; b = 0 for no bias. */
  matmul(x: number, w: number, b: number, y: number, M: number, K: number, N: number): void;
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
