/**
 * Storage dtypes: what each weight is held as on the device. Compute (activations, accumulation) is
 * always f32; a matrix may be stored as f32, f16 or bf16 and is widened by the kernels, while vectors
 * (norm weights, biases) are held as f32. The planner calls `storageDtypeFor` for every weight it reads
 * and records the answer as `TensorPlan.storage`; the loader uploads each tensor in that dtype, so the
 * memory a plan reports is the memory the loader uses.
 */
import type { StorageDtype } from '../backend/index.js';
import type { Dtype } from '../checkpoint/index.js';
import { ArgumentError, DtypeError } from '../errors/index.js';

/** What a user asks for: a storage dtype, or `auto` (as stored in the checkpoint). */
export type StorageRequest = 'auto' | StorageDtype;

export const STORAGE_DTYPES: readonly StorageDtype[] = ['f32', 'f16', 'bf16'];
export const STORAGE_REQUESTS: readonly StorageRequest[] = ['auto', 'f32', 'f16', 'bf16'];

/** `auto`: the storage dtype a checkpoint dtype keeps (F64 has none narrower than f32 that is safe). */
const AS_STORED: Partial<Record<Dtype, StorageDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16', F64: 'f32' };

/** Bytes per element of a storage dtype. */
export function storageBytes(dtype: StorageDtype): number {
  return dtype === 'f32' ? 4 : 2;
}

/** True for checkpoint dtypes that hold floating-point weights (F32, F16, BF16, F64). */
export function isFloatWeightDtype(dtype: Dtype): boolean {
  return AS_STORED[dtype] !== undefined;
}

/** A storage request from a user or a script: case-insensitive, anything else is an ArgumentError. */
export function parseStorageRequest(value: unknown, argument = 'storageDtype'): StorageRequest {
  const v = typeof value === 'string' ? value.toLowerCase() : value;
  if (!(STORAGE_REQUESTS as readonly unknown[]).includes(v)) {
    throw new ArgumentError({ argument, detail: `must be one of ${STORAGE_REQUESTS.join(', ')}, got ${JSON.stringify(value)}` });
  }
  return v as StorageRequest;
}

/** A storage dtype (no `auto`): case-insensitive, anything else is an ArgumentError. */
export function parseStorageDtype(value: unknown, argument = 'kvDtype'): StorageDtype {
  const v = typeof value === 'string' ? value.toLowerCase() : value;
  if (!(STORAGE_DTYPES as readonly unknown[]).includes(v)) {
    throw new ArgumentError({ argument, detail: `must be one of ${STORAGE_DTYPES.join(', ')}, got ${JSON.stringify(value)}` });
  }
  return v as StorageDtype;
}

/** A backend's list of storage dtypes: at least one, each known; duplicates dropped, order kept. */
export function parseSupportedStorage(value: readonly unknown[] | undefined, argument = 'supportedStorage'): StorageDtype[] {
  if (value === undefined) return [...STORAGE_DTYPES];
  if (!Array.isArray(value) || value.length === 0) {
    throw new ArgumentError({ argument, detail: `must list at least one of ${STORAGE_DTYPES.join(', ')}` });
  }
  return [...new Set(value.map((v) => parseStorageDtype(v, argument)))];
}

const alternatives = (options: readonly StorageDtype[]) => options.map((d) => `--dtype ${d} (dtype: '${d}')`).join(' or ');

/**
 * The storage dtype of one floating-point weight.
 * - Vectors (rank < 2: norm weights, biases) are held as f32 whatever is asked, on every backend that
 *   stores f32: they are a sliver of the bytes, every kernel reads them as f32, and llama.cpp does the
 *   same. Nothing converts them to f16, so the bf16 → f16 refusal below does not apply to them. (On a
 *   backend without f32 they follow the rules for matrices.)
 * - Matrices (rank ≥ 2: matmul weights, embedding tables) take the request:
 *   - `auto` keeps the checkpoint's dtype when the backend stores it (F64 becomes f32), and widens to
 *     f32 otherwise.
 *   - An explicit dtype converts to it — except bf16 → f16, which is refused: a bf16 value can exceed
 *     f16's range (±65504), and the weight would silently become infinite.
 *   - A dtype the backend does not store is refused, with what it does store.
 * Non-float tensors (integer buffers, masks) are not weights to convert: a DtypeError, whatever their
 * rank. Every error is a `dtype-unsupported` DtypeError naming the tensor and what to use instead.
 */
export function storageDtypeFor(
  tensor: { readonly name: string; readonly dtype: Dtype; readonly shape: readonly number[] },
  requested: StorageRequest = 'auto',
  supported: readonly StorageDtype[] = STORAGE_DTYPES,
  /** What `auto` holds a stored dtype as when the backend measured another faster (CPU: f16 → f32). */
  autoStorage: Readonly<Partial<Record<StorageDtype, StorageDtype>>> = {},
): StorageDtype {
  const request = parseStorageRequest(requested);
  const backend = parseSupportedStorage(supported);
  const stored = AS_STORED[tensor.dtype];
  if (stored === undefined) {
    throw new DtypeError({
      tensor: tensor.name,
      dtype: tensor.dtype,
      requested: request,
      supported: backend,
      detail: `it is ${tensor.dtype}, not a floating-point weight, so it has no storage dtype`,
      hint: 'Only F32, F16, BF16 and F64 tensors are converted; a tensor the model reads must be one of these (convert the checkpoint)',
    });
  }
  if (tensor.shape.length < 2 && backend.includes('f32')) return 'f32';
  if (request === 'auto') {
    const preferred = autoStorage[stored];
    if (preferred !== undefined && backend.includes(preferred)) return preferred;
    if (backend.includes(stored)) return stored;
    if (backend.includes('f32')) return 'f32';
    const usable = backend.filter((d) => !(tensor.dtype === 'BF16' && d === 'f16'));
    throw new DtypeError({
      tensor: tensor.name,
      dtype: tensor.dtype,
      requested: request,
      supported: backend,
      detail: `it is stored as ${tensor.dtype} and the backend stores only ${backend.join(', ')} weights, so auto can neither keep it as ${stored} nor widen it to f32`,
      hint: usable.length > 0 ? `Ask for a storage dtype the backend has: ${alternatives(usable)}` : 'Use a backend that stores f32 or bf16 weights',
    });
  }
  if (tensor.dtype === 'BF16' && request === 'f16') {
    const instead = (['bf16', 'f32'] as const).filter((d) => backend.includes(d));
    throw new DtypeError({
      tensor: tensor.name,
      dtype: tensor.dtype,
      requested: request,
      supported: backend,
      detail: 'it is stored as BF16 and a bf16 value can exceed the range of f16 (±65504), so tp does not convert it to f16',
      hint: instead.length > 0 ? `Use ${alternatives(instead)} instead (auto keeps it as stored)` : 'Use a backend that stores bf16 or f32 weights',
    });
  }
  if (!backend.includes(request)) {
    throw new DtypeError({
      tensor: tensor.name,
      dtype: tensor.dtype,
      requested: request,
      supported: backend,
      detail: `the backend does not store ${request} weights (it stores ${backend.join(', ')})`,
      hint: `Use ${alternatives(backend.filter((d) => !(tensor.dtype === 'BF16' && d === 'f16')))}, or auto`,
    });
  }
  return request;
}

/** The KV-cache dtype, checked against what the backend's KV cache takes. */
export function kvStorageDtype(requested: unknown, supported: readonly StorageDtype[] = STORAGE_DTYPES): StorageDtype {
  const kv = parseStorageDtype(requested ?? 'f32', 'kvDtype');
  const backend = parseSupportedStorage(supported, 'supportedKv');
  if (!backend.includes(kv)) {
    throw new DtypeError({
      requested: kv,
      supported: backend,
      detail: `the backend cannot hold the KV cache as ${kv} (it stores ${backend.join(', ')})`,
      hint: `Use ${backend.map((d) => `--kv-dtype ${d} (kvDtype: '${d}')`).join(' or ')}`,
    });
  }
  return kv;
}
