import type { DeviceTensor } from '@tp/core';
import type { Heap } from './heap.js';

/** A tensor in a rank's heap: f32, row-major. */
export class CpuTensor implements DeviceTensor {
  readonly dtype = 'f32' as const;
  readonly length: number;

  constructor(
    readonly heap: Heap,
    readonly offset: number,
    readonly shape: readonly number[],
  ) {
    this.length = shape.reduce((a, b) => a * b, 1);
  }

  /** A view of the elements. Take views after allocating outputs: growing the heap invalidates them. */
  data(): Float32Array {
    return this.heap.floats(this.offset, this.length);
  }

  get rows(): number {
    return this.shape.length === 1 ? 1 : this.shape[0]!;
  }

  get cols(): number {
    return this.shape[this.shape.length - 1]!;
  }
}
