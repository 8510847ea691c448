/** The CPU rank's collectives: host collectives over SharedArrayBuffer, on tensors in the rank's heap. */
import { HostCollective, type Collective, type DeviceTensor, type HostCollectiveInit } from '@tp/core';
import type { Heap } from './heap.js';
import { CpuTensor } from './tensor.js';

export class CpuCollective implements Collective {
  private readonly host: HostCollective;

  constructor(
    init: HostCollectiveInit,
    rank: number,
    world: number,
    private readonly heap: Heap,
    private readonly slotFloats: number,
  ) {
    this.host = new HostCollective(init, rank, world);
  }

  async allReduce(t: DeviceTensor): Promise<void> {
    if (this.host.world > 1) this.host.allReduce((t as CpuTensor).data());
  }

  async allGather(t: DeviceTensor): Promise<DeviceTensor> {
    const x = t as CpuTensor;
    const rows = x.length / x.cols;
    // Gather rows in chunks that fit a slot; widths may differ between ranks.
    const chunkRows = Math.max(1, Math.floor(this.slotFloats / Math.max(1, x.cols)));
    let out: CpuTensor | undefined;
    let widths: number[] = [];
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const r1 = Math.min(rows, r0 + chunkRows);
      const parts = this.host.allGather(x.data().slice(r0 * x.cols, r1 * x.cols));
      if (out === undefined) {
        widths = parts.map((p) => p.length / (r1 - r0));
        const total = widths.reduce((a, b) => a + b, 0);
        // Concatenated along the last dimension: a 1-D tensor stays 1-D.
        out = new CpuTensor(this.heap, this.heap.alloc(rows * total * 4), x.shape.length === 1 ? [total] : [...x.shape.slice(0, -1), total]);
      }
      const y = out.data();
      const total = out.cols;
      for (let r = r0; r < r1; r++) {
        let at = 0;
        parts.forEach((p, k) => {
          const w = widths[k]!;
          y.set(p.subarray((r - r0) * w, (r - r0 + 1) * w), r * total + at);
          at += w;
        });
      }
    }
    return out!;
  }

  async broadcast(t: DeviceTensor, root: number): Promise<void> {
    if (this.host.world > 1) this.host.broadcast((t as CpuTensor).data(), root);
  }

  async barrier(): Promise<void> {
    this.host.barrier();
  }
}
