/**
 * Measurements for the GPU check (tools/device/check.sh): the device-to-device copy bandwidth that
 * decode speeds are compared with, and the bandwidth of the decode GEMV alone. They need a GPU.
 */
import { TpError, type StorageDtype } from '@tp/core';
import { translate } from './errors.js';
import { loadLibraries } from './libraries.js';
import type { CudaRank } from './rank.js';

/** Copy `bytes` between two device buffers `iterations` times: bytes read + written per second. */
export async function copyBandwidth(device = 0, bytes = 2 ** 30, iterations = 20): Promise<{ gbPerSecond: number; bytes: number; milliseconds: number }> {
  const libs = loadLibraries().libraries;
  if (!libs?.cuda.loaded) throw new TpError('backend-missing', 'the CUDA driver is not loaded');
  let ctx;
  try {
    ctx = new libs.native.Context(device, { uploadStagingBytes: 2 ** 20, downloadStagingBytes: 2 ** 20, workspaceBytes: 2 ** 20 });
  } catch (error) {
    throw translate(error, { device });
  }
  try {
    const a = ctx.alloc(bytes);
    const b = ctx.alloc(bytes);
    ctx.fill32(a, 0x3f800000, bytes / 4);
    ctx.copy(b, a, bytes);
    await ctx.notify();
    const started = performance.now();
    for (let i = 0; i < iterations; i++) ctx.copy(i % 2 ? a : b, i % 2 ? b : a, bytes);
    await ctx.notify();
    const milliseconds = performance.now() - started;
    ctx.free(a);
    ctx.free(b);
    await ctx.notify();
    return { gbPerSecond: (2 * bytes * iterations) / (milliseconds / 1000) / 1e9, bytes, milliseconds };
  } catch (error) {
    throw translate(error, { device });
  } finally {
    ctx.dispose();
  }
}

/** Random weights of `dtype` as raw bytes (the GEMV reads them; their values do not matter). */
function randomWeights(n: number, dtype: StorageDtype): Uint8Array {
  const bytes = new Uint8Array(n * (dtype === 'f32' ? 4 : 2));
  const words = new Uint16Array(bytes.buffer);
  let s = 0x12345678;
  for (let i = 0; i < words.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // small normal-ish finite values in every dtype: exponent near 1, random mantissa
    words[i] = dtype === 'f16' ? 0x3800 | (s >>> 22) : dtype === 'bf16' ? 0x3f00 | (s >>> 25) : i % 2 ? 0x3f00 | (s >>> 25) : s >>> 16;
  }
  return bytes;
}

/** y = x · wᵀ for x [M, K], w [N, K] of `dtype`, `iterations` times in one step: weight bytes read per second. */
export async function gemvBandwidth(rank: CudaRank, N: number, K: number, dtype: StorageDtype, M = 1, iterations = 50): Promise<{ gbPerSecond: number; microseconds: number; weightBytes: number }> {
  const w = rank.upload({ bytes: randomWeights(N * K, dtype), dtype, shape: [N, K] });
  const x = rank.upload({ bytes: new Uint8Array(Float32Array.from({ length: M * K }, (_, i) => ((i % 7) - 3) / 7).buffer), dtype: 'f32', shape: [M, K] });
  try {
    rank.beginStep();
    rank.linear(x, w);
    await rank.endStep();
    const started = performance.now();
    rank.beginStep();
    for (let i = 0; i < iterations; i++) rank.linear(x, w);
    await rank.endStep();
    const seconds = (performance.now() - started) / 1000;
    const weightBytes = N * K * (dtype === 'f32' ? 4 : 2);
    return { gbPerSecond: (weightBytes * iterations) / seconds / 1e9, microseconds: (seconds * 1e6) / iterations, weightBytes };
  } finally {
    rank.free(w);
    rank.free(x);
  }
}
