/**
 * Host-side conversion between storage dtypes on upload (round to nearest even, f16 overflow refused)
 * and widening on download. Weights normally upload in their own dtype and are never converted.
 */
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits, TpError, type StorageDtype } from '@tp/core';

function asF32(src: Uint8Array, dtype: StorageDtype, n: number): Float32Array {
  const aligned = src.byteOffset % 4 === 0 ? src : src.slice();
  if (dtype === 'f32') return new Float32Array(aligned.buffer, aligned.byteOffset, n);
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  return dtype === 'bf16' ? bf16ToF32(halves) : f16ToF32(halves);
}

/** `n` elements of `from` (raw bytes) as raw bytes of `to`. A value beyond f16's range is an error. */
export function convert(src: Uint8Array, from: StorageDtype, to: StorageDtype, n: number): Uint8Array {
  const values = asF32(src, from, n);
  if (to === 'f32') return new Uint8Array(Float32Array.from(values).buffer);
  const out = new Uint16Array(n);
  if (to === 'bf16') {
    for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(values[i]!);
  } else {
    for (let i = 0; i < n; i++) {
      const bits = f32ToF16Bits(values[i]!);
      if ((bits & 0x7c00) === 0x7c00 && Number.isFinite(values[i]!)) {
        throw new TpError('invalid-argument', `element ${i} (${values[i]}) is beyond f16's range (±65504); store these weights as bf16 or f32`);
      }
      out[i] = bits;
    }
  }
  return new Uint8Array(out.buffer);
}

/** Downloaded bytes of `dtype` as f32 (or i32). */
export function widen(buffer: ArrayBuffer, dtype: StorageDtype | 'i32', n: number): Float32Array | Int32Array {
  if (dtype === 'i32') return new Int32Array(buffer, 0, n);
  if (dtype === 'f32') return new Float32Array(buffer, 0, n);
  const halves = new Uint16Array(buffer, 0, n);
  return dtype === 'bf16' ? bf16ToF32(halves) : f16ToF32(halves);
}
