/**
 * Host-side conversion between the storage dtypes, done once when a tensor is uploaded: the device
 * keeps f16 and bf16 as 16-bit values (kernels widen them as they read) and never converts on upload.
 * Rounding is to nearest, ties to even, as torch's `.to(dtype)` does.
 */
import { TpError, type DeviceDtype, type StorageDtype } from '@tp/core';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f16 bit pattern nearest to the f32 `bits` (ties to even); overflow gives ±Infinity. */
function f16FromF32Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // Inf, NaN
  const e = exponent - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // A subnormal f16 (or zero): shift the full significand into the 10-bit field.
    if (e < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - e;
    const kept = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (kept + (rest > half || (rest === half && (kept & 1) === 1) ? 1 : 0));
  }
  const kept = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the right result (up to Infinity).
  return sign | (kept + (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? 1 : 0));
}

/** The bf16 bit pattern nearest to the f32 `bits` (ties to even); NaN stays a quiet NaN. */
function bf16FromF32Bits(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

const F16_VALUES = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    table[h] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m === 0 ? sign * Infinity : Number.NaN) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
})();

/** `n` elements of `dtype` in `bytes`, as f32 bit patterns (a view when already f32 and aligned). */
function asF32Bits(bytes: Uint8Array, dtype: StorageDtype, n: number): Uint32Array {
  if (dtype === 'f32') {
    const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return new Uint32Array(aligned.buffer, aligned.byteOffset, n);
  }
  const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
  const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  const out = new Float32Array(n);
  if (dtype === 'bf16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = halves[i]! << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = F16_VALUES[halves[i]!]!;
  }
  return new Uint32Array(out.buffer);
}

/**
 * The bytes a tensor of `n` elements of `from` is stored as on the device when kept as `to`, padded
 * to a multiple of 4 bytes (what `writeBuffer` copies). A finite value beyond f16's range is an error.
 */
export function deviceBytes(bytes: Uint8Array, from: DeviceDtype, to: DeviceDtype, n: number): Uint8Array {
  const size = n * (to === 'f32' || to === 'i32' ? 4 : 2);
  const padded = (size + 3) & ~3;
  if (from === to) {
    if (padded === size && bytes.byteOffset % 4 === 0) return bytes.subarray(0, size);
    const out = new Uint8Array(padded);
    out.set(bytes.subarray(0, size));
    return out;
  }
  if (from === 'i32' || to === 'i32') throw new TpError('invalid-argument', `cannot store ${from} data as ${to}`);
  const src = asF32Bits(bytes, from, n);
  const out = new Uint8Array(padded);
  if (to === 'f32') {
    new Uint32Array(out.buffer, 0, n).set(src);
    return out;
  }
  const dst = new Uint16Array(out.buffer, 0, n);
  if (to === 'bf16') {
    for (let i = 0; i < n; i++) dst[i] = bf16FromF32Bits(src[i]!);
    return out;
  }
  for (let i = 0; i < n; i++) {
    const h = f16FromF32Bits(src[i]!);
    if ((h & 0x7fff) === 0x7c00 && (src[i]! & 0x7f800000) !== 0x7f800000) {
      u32[0] = src[i]!;
      throw new TpError('invalid-argument', `element ${i} (${f32[0]}) is beyond f16's range (±65504); store these weights as bf16 or f32`);
    }
    dst[i] = h;
  }
  return out;
}

/** Widen `n` elements of a device tensor's bytes (`f16`/`bf16`/`f32`) to f32, or copy i32. */
export function hostValues(bytes: Uint8Array, dtype: DeviceDtype, n: number): Float32Array | Int32Array {
  if (dtype === 'i32') return new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 4));
  if (dtype === 'f32') return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n * 4));
  return new Float32Array(asF32Bits(bytes, dtype, n).buffer.slice(0, n * 4));
}
