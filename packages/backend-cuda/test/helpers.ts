/** Shared by the GPU-less tests: the built addon and fatbin (or why they are absent), seeded data, comparisons. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { loadFatbin, loadNative, type Native } from '../src/native.js';

export const packageRoot = fileURLToPath(new URL('..', import.meta.url));
export const addonPath = fileURLToPath(new URL('../dist/tp_cuda.node', import.meta.url));
export const fatbinPath = fileURLToPath(new URL('../dist/kernels.fatbin', import.meta.url));
export const distIndex = fileURLToPath(new URL('../dist/index.js', import.meta.url));

const native = loadNative();
/** The addon, or undefined (with `addonMissing` saying why) when the build had no C++ compiler. */
export const addon: Native | undefined = native.value;
export const addonMissing = native.error ? `the addon is not built: ${native.error}` : undefined;

const fatbin = loadFatbin();
export const fatbinBytes: Uint8Array | undefined = fatbin.value;
export const fatbinMissing = fatbin.error ? `the kernels are not built: ${fatbin.error}` : undefined;

export const distBuilt = existsSync(distIndex);

/** mulberry32, seeded. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(next: () => number, n: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * next());
}

/** |got - expected| ≤ rel · max |expected| (+ abs) everywhere, reporting the first element that is not. */
export function expectClose(what: string, got: ArrayLike<number>, expected: ArrayLike<number>, tol: { rel?: number; abs?: number; relOfMax?: number }): void {
  expect(got.length, `${what}: length`).toBe(expected.length);
  let max = 0;
  for (let i = 0; i < expected.length; i++) if (Number.isFinite(expected[i]!)) max = Math.max(max, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const g = got[i]!;
    const e = expected[i]!;
    if (g === e || (Number.isNaN(g) && Number.isNaN(e))) continue;
    const allowed = (tol.rel ?? 0) * Math.abs(e) + (tol.abs ?? 0) + (tol.relOfMax ?? 0) * max;
    if (!(Math.abs(g - e) <= allowed)) throw new Error(`${what}: element ${i}: got ${g}, expected ${e} (|Δ| ${Math.abs(g - e)} > ${allowed})`);
  }
}
