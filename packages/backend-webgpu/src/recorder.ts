/**
 * Records a rank's work into command encoders and submits it in bounded batches. Kernels never wait:
 * a dispatch is recorded and the rank moves on. The queue is submitted when a batch is full, before a
 * host write (`upload`), and at every point the host needs a result (download, collective, end of step).
 *
 * Parameters: each dispatch takes one 256-byte slot of a host array; at submit time the used slots are
 * written to one uniform buffer with `writeBuffer` and the batch is submitted right after. Reusing that
 * buffer for the next batch is safe because queue operations run in order: the next batch's
 * `writeBuffer` lands only after the previous submission has executed.
 */
import { TpError } from '@tp/core';
import { BufferUsage, MapMode } from './constants.js';
import { encodeParams, PARAM_SLOT_BYTES } from './kernel.js';
import type { Compiled } from './pipelines.js';
import type { GpuGuard } from './guard.js';

/** Dispatches per submission: bounds both the uniform buffer and the backlog a shutdown must drain. */
export const MAX_BATCH = 256;

export class Recorder {
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private slots = 0;
  private readonly params = new ArrayBuffer(MAX_BATCH * PARAM_SLOT_BYTES);
  private readonly paramBuffer: GPUBuffer;
  private readonly staging = new Map<number, GPUBuffer[]>();
  /** Counters for reports and the benchmark. */
  dispatches = 0;
  submits = 0;
  reads = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly guard: GpuGuard,
  ) {
    this.paramBuffer = guard.call('an allocation', () => device.createBuffer({ label: 'kernel parameters', size: MAX_BATCH * PARAM_SLOT_BYTES, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST }));
  }

  /** Work recorded and not yet submitted. */
  get pending(): boolean {
    return this.encoder !== undefined;
  }

  /** Record one dispatch (the caller runs it in a guarded section with the pipeline's compilation). */
  dispatch(kernel: Compiled, buffers: readonly GPUBuffer[], params: Readonly<Record<string, number>>, workgroups: readonly [number, number?, number?]): void {
    if (buffers.length !== kernel.def.bindings.length) throw new TpError('internal', `kernel ${kernel.def.name}: ${buffers.length} buffers for ${kernel.def.bindings.length} bindings`);
    if (this.slots === MAX_BATCH) this.submit();
    const slot = this.slots++;
    encodeParams(kernel.def, params, this.params, slot * PARAM_SLOT_BYTES);
    const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
    entries.push({ binding: buffers.length, resource: { buffer: this.paramBuffer, offset: slot * PARAM_SLOT_BYTES, size: PARAM_SLOT_BYTES } });
    const group = this.device.createBindGroup({ layout: kernel.layout, entries });
    const pass = this.computePass();
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
    this.dispatches++;
  }

  /** Copy bytes between buffers, in order with the recorded kernels. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.guard.call('a copy', () => {
      this.endPass();
      this.commandEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    });
  }

  /** Submit everything recorded. */
  submit(): void {
    const encoder = this.encoder;
    if (encoder === undefined) return;
    this.guard.call('a submission', () => {
      this.endPass();
      if (this.slots > 0) this.device.queue.writeBuffer(this.paramBuffer, 0, this.params, 0, this.slots * PARAM_SLOT_BYTES);
      this.device.queue.submit([encoder.finish()]);
    });
    this.encoder = undefined;
    this.slots = 0;
    this.submits++;
  }

  /** Submit, then resolve when the device has finished every submission. */
  async drain(): Promise<void> {
    await this.guard.wait('the end of a step', () => {
      this.submit();
      return this.device.queue.onSubmittedWorkDone();
    });
  }

  /**
   * The first `bytes` of `src` on the host: one copy into a mappable buffer, recorded after the work
   * that produces `src`, then one submission and one map. Resolves with a copy of the bytes.
   */
  async read(src: GPUBuffer, bytes: number): Promise<Uint8Array> {
    return this.guard.wait('a readback', () => this.readUnguarded(src, bytes));
  }

  private async readUnguarded(src: GPUBuffer, bytes: number): Promise<Uint8Array> {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const stage = this.staging.get(size)?.pop() ?? this.device.createBuffer({ label: 'readback', size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.copy(src, 0, stage, 0, size);
    this.submit();
    this.reads++;
    try {
      await stage.mapAsync(MapMode.READ, 0, size);
    } catch (error) {
      stage.destroy();
      throw error;
    }
    const out = new Uint8Array(stage.getMappedRange(0, size).slice(0, bytes));
    stage.unmap();
    let list = this.staging.get(size);
    if (list === undefined) this.staging.set(size, (list = []));
    if (list.length < 4) list.push(stage);
    else stage.destroy();
    return out;
  }

  destroy(): void {
    this.encoder = undefined;
    this.pass = undefined;
    this.paramBuffer.destroy();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
  }

  private commandEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder());
  }

  private computePass(): GPUComputePassEncoder {
    return (this.pass ??= this.commandEncoder().beginComputePass());
  }

  private endPass(): void {
    if (this.pass === undefined) return;
    this.pass.end();
    this.pass = undefined;
  }
}
