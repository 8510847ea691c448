/**
 * Every element type of the safetensors format, with its width in bits. Sub-byte types (F4, F6_*)
 * exist in the format; a tensor of them must end on a byte boundary.
 */
export const DTYPE_BITS = {
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E4M3FN: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  I64: 64,
  U64: 64,
  F64: 64,
  C64: 64,
} as const;

export type Dtype = keyof typeof DTYPE_BITS;

export const DTYPES = Object.keys(DTYPE_BITS) as Dtype[];

export function isDtype(name: unknown): name is Dtype {
  return typeof name === 'string' && Object.hasOwn(DTYPE_BITS, name);
}

/** Bytes per element for whole-byte types; fractional for sub-byte ones. */
export function bytesPerElement(dtype: Dtype): number {
  return DTYPE_BITS[dtype] / 8;
}

/** Element types we can turn into f32 for compute. */
export const FLOAT_DTYPES: readonly Dtype[] = ['F32', 'F16', 'BF16', 'F64'];
