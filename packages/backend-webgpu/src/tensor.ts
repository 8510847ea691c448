/** A rank's tensors and KV caches: shapes and dtypes over GPU buffers. */
import { TpError, type DeviceDtype, type DeviceTensor, type KvCache, type StorageDtype } from '@tp/core';
import type { Block } from './memory.js';

/** Rows [rowStart, rowStart + rows) of a tensor split over several buffers. */
export interface Part {
  readonly buffer: GPUBuffer;
  readonly rowStart: number;
  readonly rows: number;
}

export class GpuTensor implements DeviceTensor {
  readonly numel: number;
  /** Set when freed (or released with its step or scope): using it afterwards is a bug the rank reports. */
  released = false;
  /**
   * The values of a small i32 tensor uploaded from the host (ids, orders), kept so that checks the
   * interface promises at enqueue (an index out of range) need no readback.
   */
  hostInts: Int32Array | undefined;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DeviceDtype,
    /**
     * One buffer, or for a tensor larger than one storage binding, consecutive blocks of `partRows`
     * rows each (the last may hold fewer).
     */
    readonly blocks: readonly Block[],
    /** Made inside a step: released when that step (a scope) ends, or if kept, when the enclosing one does. */
    readonly temporary: boolean,
    readonly partRows: number = Infinity,
  ) {
    this.numel = shape.reduce((a, b) => a * b, 1);
  }

  /** The tensor's buffer; only linear weights and embedding tables may be split over several. */
  get buffer(): GPUBuffer {
    if (this.blocks.length !== 1) {
      throw new TpError('kernel-invalid', `a ${this.dtype} [${this.shape.join(', ')}] tensor is larger than one storage binding: only linear weights and embedding tables may be`);
    }
    return this.blocks[0]!.buffer;
  }

  /** Its row blocks, in order (one for an unsplit tensor). */
  get parts(): Part[] {
    if (this.blocks.length === 1) return [{ buffer: this.blocks[0]!.buffer, rowStart: 0, rows: this.rows }];
    return this.blocks.map((b, i) => ({ buffer: b.buffer, rowStart: i * this.partRows, rows: Math.min(this.partRows, this.rows - i * this.partRows) }));
  }

  /** Rows of a 2-D view: the product of every dimension but the last (1 for a 1-D tensor). */
  get rows(): number {
    return this.shape.length <= 1 ? 1 : this.numel / this.cols;
  }

  get cols(): number {
    return this.shape[this.shape.length - 1] ?? 1;
  }

  /** Bytes of data (16-bit dtypes pack two elements per 32-bit word). */
  get byteLength(): number {
    return this.numel * (this.dtype === 'f16' || this.dtype === 'bf16' ? 2 : 4);
  }
}

/**
 * One attention layer's cache: keys [batch, capacity, kStride] and values [batch, capacity, vStride]
 * in the cache's dtype (f32, or 16-bit values two per word). `length` slots are written. A slot holds
 * kvHeads·headDim keys (kvHeads·valueDim values); a 16-bit cache rounds that up to even, so that every
 * slot starts on a 32-bit word (appends and copies then move whole words).
 */
export class GpuKvCache implements KvCache {
  capacity = 0;
  length = 0;
  k: GpuTensor | undefined;
  v: GpuTensor | undefined;
  readonly kStride: number;
  readonly vStride: number;

  constructor(
    readonly batch: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly valueDim: number,
    readonly dtype: StorageDtype,
  ) {
    const stride = (width: number) => (dtype === 'f32' ? width : width + (width % 2));
    this.kStride = stride(kvHeads * headDim);
    this.vStride = stride(kvHeads * valueDim);
  }

  /** Bytes of one slot of keys (values): a whole number of 32-bit words. */
  slotBytes(stride: number): number {
    return stride * (this.dtype === 'f32' ? 4 : 2);
  }
}
