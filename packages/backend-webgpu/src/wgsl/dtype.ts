/**
 * How kernels read tensors of each storage dtype, all widened to f32:
 * - f32 as `array<f32>` (or `array<vec4<f32>>` for vec4 loads);
 * - f16 as `array<f16>` when the device has shader-f16, else two halves per u32 widened with
 *   `unpack2x16float`;
 * - bf16 always two per u32: a bf16 is the top half of an f32, so a shift (or a mask) widens it.
 * The bytes are the same in every case (little-endian 16-bit values), so only the shader's view of a
 * buffer depends on the device.
 */
import type { StorageDtype } from '@tp/core';
import type { Binding } from '../kernel.js';

export interface DtypeView {
  /** The storage binding's WGSL type. */
  binding: Binding;
  /** WGSL helpers: `fn {name}At(i: u32) -> f32` and, when `vec4`, `fn {name}Vec4(i4: u32) -> vec4f`. */
  code: string;
  f16: boolean;
  /** A short tag for kernel names. */
  tag: string;
}

/**
 * The view of a read-only tensor `name` stored as `dtype`. With `vec4`, the buffer is bound as vectors
 * and `{name}Vec4(i4)` loads elements 4·i4 … 4·i4+3 (the caller guarantees 4-element alignment);
 * `{name}At(i)` works in both.
 */
export function dtypeView(name: string, dtype: StorageDtype, nativeF16: boolean, vec4 = false): DtypeView {
  const tag = `${dtype}${dtype === 'f16' && !nativeF16 ? 'p' : ''}${vec4 ? 'v4' : ''}`;
  if (dtype === 'f32') {
    if (vec4) {
      return {
        binding: { name, type: 'array<vec4<f32>>' },
        code: `fn ${name}Vec4(i4: u32) -> vec4f { return ${name}[i4]; }\nfn ${name}At(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }`,
        f16: false,
        tag,
      };
    }
    return { binding: { name, type: 'array<f32>' }, code: `fn ${name}At(i: u32) -> f32 { return ${name}[i]; }`, f16: false, tag };
  }
  if (dtype === 'f16' && nativeF16) {
    if (vec4) {
      return {
        binding: { name, type: 'array<vec4<f16>>' },
        code: `fn ${name}Vec4(i4: u32) -> vec4f { return vec4f(${name}[i4]); }\nfn ${name}At(i: u32) -> f32 { return f32(${name}[i >> 2u][i & 3u]); }`,
        f16: true,
        tag,
      };
    }
    return { binding: { name, type: 'array<f16>' }, code: `fn ${name}At(i: u32) -> f32 { return f32(${name}[i]); }`, f16: true, tag };
  }
  // Two 16-bit values per u32, the lower-addressed one in the low half (little-endian).
  const widenPair =
    dtype === 'f16'
      ? `fn ${name}Pair(w: u32) -> vec2f { return unpack2x16float(w); }`
      : `fn ${name}Pair(w: u32) -> vec2f { return vec2f(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u)); }`;
  if (vec4) {
    return {
      binding: { name, type: 'array<vec2<u32>>' },
      code: `${widenPair}\nfn ${name}Vec4(i4: u32) -> vec4f { let w = ${name}[i4]; return vec4f(${name}Pair(w.x), ${name}Pair(w.y)); }\nfn ${name}At(i: u32) -> f32 { return ${name}Pair(${name}[i >> 2u][(i >> 1u) & 1u])[i & 1u]; }`,
      f16: false,
      tag,
    };
  }
  return {
    binding: { name, type: 'array<u32>' },
    code: `${widenPair}\nfn ${name}At(i: u32) -> f32 { return ${name}Pair(${name}[i >> 1u])[i & 1u]; }`,
    f16: false,
    tag,
  };
}

/**
 * WGSL that rounds f32 bit patterns to 16-bit ones, to nearest with ties to even, exactly as the host
 * does on upload (convert.ts) and torch's `.to(dtype)`: `f16Bits(bits)` (overflow gives ±Infinity,
 * NaN stays NaN) and `bf16Bits(bits)` (NaN stays a quiet NaN). Integer arithmetic on the bits, not
 * `pack2x16float` or an f16 cast: WGSL lets those round either way and flush subnormals, and a KV cache
 * must hold what the reference computes with.
 */
export const ROUND_HALF = /* wgsl */ `
fn f16Bits(bits: u32) -> u32 {
  let sign = (bits >> 16u) & 0x8000u;
  let exponent = (bits >> 23u) & 0xffu;
  let mantissa = bits & 0x7fffffu;
  if (exponent == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mantissa != 0u); }
  let e = i32(exponent) - 112;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    // A subnormal f16 (or zero): the full significand shifted into the 10-bit field.
    if (e < -10) { return sign; }
    let significand = mantissa | 0x800000u;
    let shift = u32(14 - e);
    let kept = significand >> shift;
    let rest = significand & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    return sign | (kept + select(0u, 1u, rest > half || (rest == half && (kept & 1u) == 1u)));
  }
  let kept = (u32(e) << 10u) | (mantissa >> 13u);
  let rest = mantissa & 0x1fffu;
  // A carry out of the mantissa bumps the exponent: the right result, up to Infinity.
  return sign | (kept + select(0u, 1u, rest > 0x1000u || (rest == 0x1000u && (kept & 1u) == 1u)));
}
fn bf16Bits(bits: u32) -> u32 {
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0u) { return ((bits >> 16u) | 0x40u) & 0xffffu; }
  return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}`;

/** Bytes per element of a storage dtype on the device. */
export function elementBytes(dtype: StorageDtype): number {
  return dtype === 'f32' ? 4 : 2;
}
