/**
 * The element types a tiny model can be written in, and whole-array conversion from f32. The scalar
 * converters in @tp/core allocate per call; these work on a shared 32-bit view and round to nearest
 * even, so the 134M-parameter preset converts in well under a second.
 */
import type { Dtype } from '@tp/core';

export const TINY_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type TinyDtype = (typeof TINY_DTYPES)[number];

/** The safetensors dtype and the name config.json gives it (`"dtype": "bfloat16"`). */
export const DTYPE_INFO: Record<TinyDtype, { safetensors: Dtype; torch: string; bytes: number }> = {
  f32: { safetensors: 'F32', torch: 'float32', bytes: 4 },
  f16: { safetensors: 'F16', torch: 'float16', bytes: 2 },
  bf16: { safetensors: 'BF16', torch: 'bfloat16', bytes: 2 },
};

/** IEEE binary16 bits of the f32 whose bits are `x` (round to nearest even, overflow to ±inf). */
function halfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the full significand down, then round
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const tie = 1 << (shift - 1);
    if (rest > tie || (rest === tie && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // a carry out of the mantissa correctly bumps the exponent (or reaches inf)
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfBits(bits[i]!);
  return out;
}

export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) out[i] = (x >>> 16) | 0x40; // keep NaN quiet
    else out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** Little-endian bytes of `values` in `dtype` (f32 reuses the array's own buffer). */
export function encodeF32(values: Float32Array, dtype: TinyDtype): Uint8Array {
  const typed = dtype === 'f32' ? values : dtype === 'f16' ? f32ArrayToF16(values) : f32ArrayToBf16(values);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}
