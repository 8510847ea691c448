/**
 * Device memory of one rank. Every tensor owns a whole GPUBuffer (no sub-allocation, so two tensors
 * never alias and each binds from offset 0). Activations come from a pool of size classes so a decode
 * step reuses the previous step's buffers instead of creating new ones; weights and other large
 * long-lived tensors get buffers of their exact size.
 *
 * Reuse is safe without waiting for the GPU because everything that touches a buffer is ordered on the
 * one queue: kernels are recorded in order, and `upload` submits recorded work before it writes (see
 * WebGpuRank.upload). Destroying is not: a destroyed buffer must not appear in unsubmitted work, so
 * destruction waits for the next point where the rank knows the queue is drained.
 */
import { TpError } from '@tp/core';
import { BufferUsage } from './constants.js';
import type { GpuGuard } from './guard.js';

export interface Block {
  readonly buffer: GPUBuffer;
  /** The size class it returns to, or undefined for an exact-size buffer (destroyed when freed). */
  readonly sizeClass: number | undefined;
}

/** Buffers up to this size are pooled by size class; larger ones are exact-size. */
const POOLED_MAX = 64 * 2 ** 20;
/** Pooled bytes kept across a step's end beyond what the step used. */
const POOL_SLACK = 256 * 2 ** 20;
const TENSOR_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** The size class of `bytes`: 256 bytes, then powers of two split into quarters (≤ 25% waste). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const top = 2 ** Math.ceil(Math.log2(bytes));
  const quarter = top / 8; // classes between top/2 and top, every top/8
  return Math.ceil(bytes / quarter) * quarter;
}

export class Memory {
  private readonly free = new Map<number, GPUBuffer[]>();
  private doomed: GPUBuffer[] = [];
  private liveBytes = 0;
  private pooledBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    /** The largest buffer one storage binding may cover. */
    readonly maxBinding: number,
    private readonly guard: GpuGuard,
  ) {}

  /** A buffer for `bytes` of tensor data (≥ 16 bytes, a multiple of 16, so vec4 views fit). */
  alloc(bytes: number, what: string): Block {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (size > this.maxBinding) {
      throw new TpError(
        'out-of-memory',
        `${what} needs ${size} bytes, more than one storage binding of this adapter holds (${this.maxBinding} bytes); use more ranks (a larger --tp) or half-precision storage`,
      );
    }
    const cls = size <= POOLED_MAX ? Math.min(sizeClass(size), this.maxBinding) : undefined;
    if (cls !== undefined) {
      const list = this.free.get(cls);
      const reused = list?.pop();
      if (reused !== undefined) {
        this.pooledBytes -= cls;
        this.liveBytes += cls;
        return { buffer: reused, sizeClass: cls };
      }
    }
    const buffer = this.create(cls ?? size, what);
    this.liveBytes += buffer.size;
    return { buffer, sizeClass: cls };
  }

  release(block: Block): void {
    this.liveBytes -= block.buffer.size;
    if (block.sizeClass === undefined) {
      this.doomed.push(block.buffer);
      return;
    }
    let list = this.free.get(block.sizeClass);
    if (list === undefined) this.free.set(block.sizeClass, (list = []));
    list.push(block.buffer);
    this.pooledBytes += block.sizeClass;
  }

  /**
   * Called when the queue is known to be drained (after onSubmittedWorkDone with nothing recorded since):
   * destroy freed exact-size buffers and trim the pool.
   */
  drained(): void {
    this.guard.call('freeing buffers', () => this.trim(), false);
  }

  private trim(): void {
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
    if (this.pooledBytes <= POOL_SLACK) return;
    // Largest classes first: they free the most for the fewest buffers.
    for (const cls of [...this.free.keys()].sort((a, b) => b - a)) {
      const list = this.free.get(cls)!;
      while (list.length > 0 && this.pooledBytes > POOL_SLACK) {
        list.pop()!.destroy();
        this.pooledBytes -= cls;
      }
    }
  }

  /** Bytes held: live tensors plus the pool. */
  get bytes(): number {
    return this.liveBytes + this.pooledBytes;
  }

  /** Destroy everything (the rank is being disposed and the queue is drained). */
  destroyAll(live: Iterable<GPUBuffer>): void {
    this.guard.call('freeing buffers', () => this.destroyEvery(live), false);
  }

  private destroyEvery(live: Iterable<GPUBuffer>): void {
    for (const b of live) b.destroy();
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
    this.liveBytes = this.pooledBytes = 0;
  }

  private create(size: number, what: string): GPUBuffer {
    return this.guard.call('an allocation', () => this.device.createBuffer({ label: what, size, usage: TENSOR_USAGE }));
  }
}
