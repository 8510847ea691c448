/**
 * Collectives between WebGPU ranks. WebGPU cannot share a buffer between two devices (a copy across
 * devices fails validation), so every collective stages through host memory: one readback of the
 * rank's tensor, the host collective over SharedArrayBuffer (@tp/core's HostCollective: deadlines, and
 * an abort flag that names the failed rank), one `writeBuffer` of the result.
 *
 * Waiting: the host barrier blocks the thread in `Atomics.wait`, which stops Dawn from resolving
 * promises on this thread. That is harmless here because the barrier is entered only after this
 * rank's readback has resolved and nothing else of its GPU work is awaited: the rank has no pending GPU
 * promise while it blocks, and the other ranks' devices are driven by their own threads.
 */
import { HostCollective, type Collective, type DeviceTensor, type HostCollectiveInit } from '@tp/core';
import type { GpuTensor } from './tensor.js';

/** What the collective needs from its rank. */
export interface Staging {
  /** The tensor's elements on the host, after every recorded write to it. */
  readF32(t: GpuTensor): Promise<Float32Array>;
  /** Overwrite the tensor's elements (ordered after everything recorded so far). */
  writeF32(t: GpuTensor, values: Float32Array): void;
  /** A new f32 tensor (in the current step, if any). */
  newTensor(shape: readonly number[]): GpuTensor;
  /** Submit what is recorded and wait until the device has run it. */
  drain(): Promise<void>;
}

/**
 * Time spent in collectives, for the benchmark (ms): readback, host exchange (the barrier included:
 * waiting for the slowest rank), upload. When profiling, the kernels recorded before the collective
 * are first run to completion and timed apart (kernelMs), so that readMs is the transfer alone.
 */
export interface CollectiveTimes {
  calls: number;
  kernelMs: number;
  readMs: number;
  hostMs: number;
  writeMs: number;
}

export class GpuCollective implements Collective {
  private readonly host: HostCollective;
  private readonly slotFloats: number;
  readonly times: CollectiveTimes = { calls: 0, kernelMs: 0, readMs: 0, hostMs: 0, writeMs: 0 };

  constructor(
    init: HostCollectiveInit,
    private readonly rank: number,
    private readonly world: number,
    private readonly staging: Staging,
    /** Drain before each readback to time kernels and transfers apart (costs one more wait). */
    private readonly profile = false,
  ) {
    this.host = new HostCollective(init, rank, world);
    this.slotFloats = init.slotFloats;
  }

  async allReduce(t: DeviceTensor): Promise<void> {
    if (this.world === 1) return;
    const x = t as GpuTensor;
    const values = await this.timedRead(x);
    this.timedHost(() => this.host.allReduce(values));
    this.timedWrite(() => this.staging.writeF32(x, values));
  }

  async allGather(t: DeviceTensor): Promise<DeviceTensor> {
    const x = t as GpuTensor;
    const values = await this.timedRead(x);
    const rows = x.rows;
    const cols = x.cols;
    // One host all-gather per block of whole rows that fits the slot; widths may differ per rank.
    const chunkRows = Math.max(1, Math.floor(this.slotFloats / Math.max(1, cols)));
    let out: Float32Array | undefined;
    let widths: number[] = [];
    this.timedHost(() => {
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const r1 = Math.min(rows, r0 + chunkRows);
        const parts = this.host.allGather(values.subarray(r0 * cols, r1 * cols));
        if (out === undefined) {
          widths = parts.map((p) => p.length / (r1 - r0));
          out = new Float32Array(rows * widths.reduce((a, b) => a + b, 0));
        }
        const total = out.length / rows;
        for (let r = r0; r < r1; r++) {
          let at = r * total;
          parts.forEach((p, k) => {
            const w = widths[k]!;
            out!.set(p.subarray((r - r0) * w, (r - r0 + 1) * w), at);
            at += w;
          });
        }
      }
    });
    const total = widths.reduce((a, b) => a + b, 0);
    const y = this.staging.newTensor(x.shape.length <= 1 ? [total] : [...x.shape.slice(0, -1), total]);
    this.timedWrite(() => this.staging.writeF32(y, out!));
    return y;
  }

  async broadcast(t: DeviceTensor, root: number): Promise<void> {
    if (this.world === 1) return;
    const x = t as GpuTensor;
    // Only the root's values matter; the others receive into a host buffer of the right size.
    const values = this.rank === root ? await this.timedRead(x) : new Float32Array(x.numel);
    this.timedHost(() => this.host.broadcast(values, root));
    if (this.rank !== root) this.timedWrite(() => this.staging.writeF32(x, values));
  }

  async barrier(): Promise<void> {
    this.host.barrier();
  }

  private async timedRead(x: GpuTensor): Promise<Float32Array> {
    if (this.profile) {
      const drained = performance.now();
      await this.staging.drain();
      this.times.kernelMs += performance.now() - drained;
    }
    const started = performance.now();
    const values = await this.staging.readF32(x);
    this.times.calls++;
    this.times.readMs += performance.now() - started;
    return values;
  }

  private timedHost(fn: () => void): void {
    const started = performance.now();
    try {
      fn();
    } finally {
      this.times.hostMs += performance.now() - started;
    }
  }

  private timedWrite(fn: () => void): void {
    const started = performance.now();
    fn();
    this.times.writeMs += performance.now() - started;
  }
}
