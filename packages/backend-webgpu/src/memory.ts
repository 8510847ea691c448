/**
 * Device memory of one rank. Every tensor owns a whole GPUBuffer (no sub-allocation, so two tensors
 * never alias and each binds from offset 0). Activations come from a pool of size classes so a decode
 * step reuses the previous step's buffers instead of creating new ones; weights and other large
 * long-lived tensors get buffers of their exact size.
 *
 * Reuse is safe without waiting for the GPU because everything that touches a buffer is ordered on the
 * one queue: kernels are recorded in order, and `upload` submits recorded work before it writes (see
 * WebGpuRank.write). So a buffer released while recorded or submitted work still reads it (a nested
 * step's end, `free` in the middle of a step) goes back to the pool at once, and the next tensor to take
 * it is written only after those reads. Nothing else ties a buffer to the GPU's progress: tensor
 * buffers are never mapped (readbacks copy into the recorder's own staging buffers), bind groups are
 * made per dispatch and never cached, and kernel parameters live in the recorder's uniform buffer, not
 * in tensors.
 *
 * Destroying is not safe before the queue drains: a destroyed buffer must not appear in unsubmitted
 * work, so freed exact-size buffers (and the pool's trimmings) are destroyed only at the next point where
 * the rank knows the queue is drained (the outermost step's end). Until then a freed exact-size buffer
 * may be taken again by a tensor of the same size, as a pooled one is, so that scopes of one step that
 * free a large temporary each do not hold one each.
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
  /** Freed exact-size buffers, destroyed when the queue drains (or taken again before). */
  private doomed: GPUBuffer[] = [];
  private liveBytes = 0;
  private pooledBytes = 0;
  private doomedBytes = 0;

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
    } else {
      const at = this.doomed.findIndex((b) => b.size === size);
      if (at >= 0) {
        const [reused] = this.doomed.splice(at, 1);
        this.doomedBytes -= size;
        this.liveBytes += size;
        return { buffer: reused!, sizeClass: undefined };
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
      this.doomedBytes += block.buffer.size;
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
    this.doomedBytes = 0;
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

  /** Bytes held: live tensors, the pool, and freed exact-size buffers not yet destroyed. */
  get bytes(): number {
    return this.liveBytes + this.pooledBytes + this.doomedBytes;
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
    this.liveBytes = this.pooledBytes = this.doomedBytes = 0;
  }

  private create(size: number, what: string): GPUBuffer {
    return this.guard.call('an allocation', () => this.device.createBuffer({ label: what, size, usage: TENSOR_USAGE }));
  }
}
