import type { DeviceDtype, DeviceTensor } from '@tp/core';
import { DEVICE_DTYPE_BYTES, TpError } from '@tp/core';
import type { Heap } from './heap.js';

/** A tensor in a rank's heap, row-major: f32 activations, f32/f16/bf16 weights, i32 ids and masks. */
export class CpuTensor implements DeviceTensor {
  readonly length: number;

  constructor(
    readonly heap: Heap,
    /** Where the elements are; a scope's endStep moves the tensor it keeps (to reuse the rest). */
    public offset: number,
    readonly shape: readonly number[],
    readonly dtype: DeviceDtype = 'f32',
  ) {
    this.length = shape.reduce((a, b) => a * b, 1);
  }

  get byteLength(): number {
    return this.length * DEVICE_DTYPE_BYTES[this.dtype];
  }

  /** The f32 elements. Take views after allocating outputs: growing the heap invalidates them. */
  data(): Float32Array {
    if (this.dtype !== 'f32') throw new TpError('kernel-invalid', `a ${this.dtype} tensor has no f32 view`);
    return this.heap.floats(this.offset, this.length);
  }

  /** The i32 elements (ids, positions, masks). */
  ints(): Int32Array {
    if (this.dtype !== 'i32') throw new TpError('kernel-invalid', `a ${this.dtype} tensor has no i32 view`);
    return this.heap.ints(this.offset, this.length);
  }

  /** The 16-bit elements of an f16 or bf16 tensor. */
  halves(): Uint16Array {
    if (this.dtype !== 'f16' && this.dtype !== 'bf16') throw new TpError('kernel-invalid', `a ${this.dtype} tensor has no 16-bit view`);
    return this.heap.halves(this.offset, this.length);
  }

  get rows(): number {
    return this.shape.length === 1 ? 1 : this.shape[0]!;
  }

  get cols(): number {
    return this.shape[this.shape.length - 1]!;
  }
}
