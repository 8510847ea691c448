/**
 * Element conversion between the storage dtypes, on upload and download. Half-precision weights stay
 * half in the heap; the matmul kernels widen them as they stream.
 */
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits, TpError, type StorageDtype } from '@tp/core';

function toF32(src: Uint8Array, dtype: StorageDtype, n: number): Float32Array {
  const aligned = src.byteOffset % 4 === 0 ? src : src.slice();
  if (dtype === 'f32') return new Float32Array(aligned.buffer, aligned.byteOffset, n);
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  return dtype === 'bf16' ? bf16ToF32(halves) : f16ToF32(halves);
}

/** Convert `n` elements of `from` (raw bytes) into `out` as `to`. A value f16 cannot hold is an error. */
export function convertHost(src: Uint8Array, from: StorageDtype, out: Uint8Array, to: StorageDtype, n: number): void {
  const values = toF32(src, from, n);
  if (to === 'f32') {
    new Float32Array(out.buffer, out.byteOffset, n).set(values);
    return;
  }
  const dst = new Uint16Array(out.buffer, out.byteOffset, n);
  if (to === 'bf16') {
    for (let i = 0; i < n; i++) dst[i] = f32ToBf16Bits(values[i]!);
    return;
  }
  for (let i = 0; i < n; i++) {
    const bits = f32ToF16Bits(values[i]!);
    if ((bits & 0x7c00) === 0x7c00 && Number.isFinite(values[i]!)) {
      throw new TpError('invalid-argument', `element ${i} (${values[i]}) is beyond f16's range (±65504); store these weights as bf16 or f32`);
    }
    dst[i] = bits;
  }
}

/** Widen `n` 16-bit elements starting at `from` into `out` at `at`. */
export function widenRow(src: Uint16Array, from: number, out: Float32Array, at: number, n: number, dtype: 'f16' | 'bf16'): void {
  const view = out.subarray(at, at + n);
  if (dtype === 'bf16') bf16ToF32(src.subarray(from, from + n), view);
  else f16ToF32(src.subarray(from, from + n), view);
}
