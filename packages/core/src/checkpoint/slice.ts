/**
 * Reading part of a tensor: index ranges along one dimension, nothing else.
 *
 * A tensor of shape [..outer, D, ..inner] (split dimension D) is read as `outer` runs per range, each
 * run `(end - start) * inner` elements long. Along dim 0 that is one contiguous read per range; along a
 * later dim it is a strided read of exactly the requested bytes — never the whole tensor.
 */
import { CheckpointError } from '../errors/index.js';
import type { Checkpoint } from './checkpoint.js';
import { bytesToF32 } from './convert.js';
import { DTYPE_BITS } from './dtype.js';
import type { TensorInfo } from './safetensors.js';

export type SliceRange = readonly [start: number, end: number];

export interface SliceRequest {
  /** The dimension the ranges index (0 = rows of an [out, in] weight). Default 0. */
  dim?: number;
  /** [start, end) ranges along `dim`, concatenated in this order. Default: the whole dimension. */
  ranges?: readonly SliceRange[];
}

export interface RawSlice {
  readonly shape: number[];
  readonly bytes: Uint8Array;
}

export interface F32Slice {
  readonly shape: number[];
  readonly data: Float32Array;
}

/** A contiguous piece of one file: what a slice reads in one go. */
export interface ByteRun {
  /** The file (TensorInfo.file: a path, or a URL for a checkpoint opened from byte sources). */
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/** Where a slice's bytes lie: its shape and the runs that, read in order and concatenated, are its bytes. */
export interface SliceLayout {
  readonly shape: number[];
  readonly byteLength: number;
  readonly runs: readonly ByteRun[];
}

/**
 * The runs of the file a slice reads, checked (a `bad-slice` error for a range outside the dimension,
 * an empty request or sub-byte elements) but not read: readSliceBytes reads them, and a checkpoint
 * opened from byte sources fetches them beforehand (source-checkpoint.ts).
 */
export function sliceLayout(info: TensorInfo, request: SliceRequest = {}): SliceLayout {
  const bits = DTYPE_BITS[info.dtype];
  if (bits % 8 !== 0) {
    throw new CheckpointError('bad-slice', { file: info.file, tensor: info.name, detail: `slicing ${info.dtype} (sub-byte elements) is not supported` });
  }
  const elementBytes = bits / 8;
  const shape = info.shape.length === 0 ? [1] : [...info.shape];
  const dim = request.dim ?? 0;
  if (!Number.isInteger(dim) || dim < 0 || dim >= shape.length) {
    throw new CheckpointError('bad-slice', { file: info.file, tensor: info.name, detail: `dimension ${dim} does not exist in shape [${info.shape.join(', ')}]` });
  }
  const size = shape[dim]!;
  // The default is the whole dimension; one of size 0 has no valid range, so read nothing.
  const requested = request.ranges ?? (size === 0 ? [] : [[0, size]]);
  if (request.ranges !== undefined && request.ranges.length === 0) {
    throw new CheckpointError('bad-slice', { file: info.file, tensor: info.name, detail: 'no ranges were requested' });
  }
  // Check the ranges as given, before touching ones are merged: merging first would let a reversed
  // or empty range hide inside its neighbour ([3, 1] then [1, 4] would pass as [3, 4]).
  for (const [start, end] of requested) {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > size || start >= end) {
      throw new CheckpointError('bad-slice', {
        file: info.file,
        tensor: info.name,
        detail: `range [${start}, ${end}) is outside dimension ${dim} of size ${size}`,
      });
    }
  }
  const ranges = mergeRanges(requested);
  const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
  const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
  const picked = ranges.reduce((n, [s, e]) => n + (e - s), 0);
  const rowBytes = inner * elementBytes;
  const runs: ByteRun[] = [];
  // A run of 0 bytes (a trailing dimension of size 0) reads nothing and is left out.
  if (rowBytes > 0) {
    for (let o = 0; o < outer; o++) {
      for (const [start, end] of ranges) runs.push({ file: info.file, offset: info.offset + (o * size + start) * rowBytes, length: (end - start) * rowBytes });
    }
  }
  const outShape = [...shape];
  outShape[dim] = picked;
  return { shape: info.shape.length === 0 ? [] : outShape, byteLength: outer * picked * rowBytes, runs };
}

/** Read the requested ranges of a tensor as raw little-endian bytes of its own dtype. */
export function readSliceBytes(ckpt: Checkpoint, tensor: TensorInfo | string, request: SliceRequest = {}): RawSlice {
  const info = typeof tensor === 'string' ? ckpt.tensor(tensor) : tensor;
  const layout = sliceLayout(info, request);
  const out = new Uint8Array(layout.byteLength);
  let at = 0;
  for (const run of layout.runs) {
    ckpt.readBytes(run.file, run.offset, run.length, out, at);
    at += run.length;
  }
  return { shape: layout.shape, bytes: out };
}

/** Read the requested ranges of a tensor, converted to f32 (from F32, F16, BF16 or F64). */
export function readSlice(ckpt: Checkpoint, tensor: TensorInfo | string, request: SliceRequest = {}): F32Slice {
  const info = typeof tensor === 'string' ? ckpt.tensor(tensor) : tensor;
  const raw = readSliceBytes(ckpt, info, request);
  try {
    return { shape: raw.shape, data: bytesToF32(raw.bytes, info.dtype) };
  } catch (cause) {
    throw new CheckpointError('bad-slice', { file: info.file, tensor: info.name, detail: `cannot convert ${info.dtype} to f32` }, { cause });
  }
}

/** Join touching ranges so each contiguous run is one read. */
function mergeRanges(ranges: readonly SliceRange[]): SliceRange[] {
  const merged: Array<[number, number]> = [];
  for (const [s, e] of ranges) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last[1] === s) last[1] = e;
    else merged.push([s, e]);
  }
  return merged;
}

/** Number of bytes a slice request reads (for planning and accounting). */
export function sliceByteLength(info: Pick<TensorInfo, 'dtype' | 'shape'>, request: SliceRequest = {}): number {
  const shape = info.shape.length === 0 ? [1] : info.shape;
  const dim = request.dim ?? 0;
  const total = shape.reduce((a, b) => a * b, 1);
  const size = shape[dim] ?? 1;
  const picked = (request.ranges ?? [[0, size]]).reduce((n, [s, e]) => n + (e - s), 0);
  return size === 0 ? 0 : ((total / size) * picked * DTYPE_BITS[info.dtype]) / 8;
}
