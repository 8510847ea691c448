/**
 * Collectives between worker threads over SharedArrayBuffer + Atomics, for backends whose ranks share
 * one host (the CPU backend; WebGPU stages through here). Every wait has a deadline and watches an
 * abort flag, so a dead or stuck rank becomes an error naming the rank — never a hang.
 *
 * Each rank owns a slot of `slotFloats` floats in each of two data regions. An operation writes the
 * rank's slot, passes one barrier, then reads the slots it needs. Consecutive operations alternate
 * regions, so the barrier of operation k+1 also guarantees everyone finished reading operation k before
 * anyone overwrites its region at k+2: one barrier per operation. Larger buffers go in chunks.
 */
import { TpError } from '../errors/index.js';
import type { HostCollectiveInit } from './types.js';

// control layout (Int32)
const ABORT = 0; // 0, or 1 + the rank that failed
const COUNT = 1; // arrivals at the current barrier
const GENERATION = 2; // barriers completed
// Per region and rank: floats written by the last all-gather in that region. Double-buffered like the
// data, so a rank that starts the next all-gather cannot overwrite a length a slower rank still reads.
const LENGTHS = 8;
const ARRIVALS = 8 + 2 * 256; // per rank: barriers this rank has reached
const CONTROL_INTS = 8 + 3 * 256;
export const MAX_HOST_RANKS = 256;

export class RankFailedError extends TpError {
  readonly rank: number;
  readonly op: string;

  constructor(code: 'rank-failed' | 'timeout', rank: number, op: string, message: string) {
    super(code, message);
    this.name = 'RankFailedError';
    this.rank = rank;
    this.op = op;
  }
}

export function createHostCollectiveInit(world: number, slotFloats: number, timeoutMs: number): HostCollectiveInit {
  if (world > MAX_HOST_RANKS) throw new TpError('tp-invalid', `at most ${MAX_HOST_RANKS} ranks share a host, not ${world}`);
  return {
    kind: 'host',
    world,
    control: new SharedArrayBuffer(CONTROL_INTS * 4),
    data: new SharedArrayBuffer(2 * world * slotFloats * 4),
    slotFloats,
    timeoutMs,
  };
}

/** Mark the collective as failed because of `rank`: every waiter wakes up and throws. */
export function abortHostCollective(init: HostCollectiveInit, rank: number): void {
  const control = new Int32Array(init.control);
  Atomics.compareExchange(control, ABORT, 0, rank + 1);
  Atomics.add(control, GENERATION, 0);
  Atomics.notify(control, GENERATION);
}

export class HostCollective {
  private readonly control: Int32Array;
  private readonly data: Float32Array;
  private readonly slot: number;
  private operations = 0;

  constructor(
    private readonly init: HostCollectiveInit,
    readonly rank: number,
    readonly world: number,
  ) {
    this.control = new Int32Array(init.control);
    this.data = new Float32Array(init.data);
    this.slot = init.slotFloats;
  }

  /** Sum `values` over all ranks, in place. */
  allReduce(values: Float32Array): void {
    for (let at = 0; at < values.length; at += this.slot) {
      const chunk = values.subarray(at, Math.min(values.length, at + this.slot));
      const region = this.region();
      region.set(chunk, this.rank * this.slot);
      this.barrier('all-reduce');
      const n = chunk.length;
      // Every rank sums in the same order, so every rank gets bit-identical results.
      chunk.set(region.subarray(0, n));
      for (let r = 1; r < this.world; r++) {
        const base = r * this.slot;
        for (let i = 0; i < n; i++) chunk[i]! += region[base + i]!;
      }
    }
  }

  /** Every rank's `values` (widths may differ), concatenated in rank order. */
  allGather(values: Float32Array): Float32Array[] {
    if (values.length > this.slot) throw new TpError('internal', `all-gather of ${values.length} floats exceeds the ${this.slot}-float slot`);
    const lengths = LENGTHS + (this.operations % 2) * MAX_HOST_RANKS;
    const region = this.region();
    region.set(values, this.rank * this.slot);
    Atomics.store(this.control, lengths + this.rank, values.length);
    this.barrier('all-gather');
    return Array.from({ length: this.world }, (_, r) => region.slice(r * this.slot, r * this.slot + Atomics.load(this.control, lengths + r)));
  }

  broadcast(values: Float32Array, root: number): void {
    for (let at = 0; at < values.length; at += this.slot) {
      const chunk = values.subarray(at, Math.min(values.length, at + this.slot));
      const region = this.region();
      if (this.rank === root) region.set(chunk, root * this.slot);
      this.barrier('broadcast');
      if (this.rank !== root) chunk.set(region.subarray(root * this.slot, root * this.slot + chunk.length));
    }
  }

  barrier(op = 'barrier'): void {
    const control = this.control;
    const generation = Atomics.load(control, GENERATION);
    Atomics.add(control, ARRIVALS + this.rank, 1);
    if (Atomics.add(control, COUNT, 1) + 1 === this.world) {
      Atomics.store(control, COUNT, 0);
      Atomics.add(control, GENERATION, 1);
      Atomics.notify(control, GENERATION);
      this.checkAbort(op);
      return;
    }
    // Spin briefly (the other ranks are usually microseconds away), then sleep in short slices so the
    // abort flag and the deadline are checked while waiting.
    for (let spin = 0; spin < 4000; spin++) {
      if (Atomics.load(control, GENERATION) !== generation) return this.checkAbort(op);
    }
    const deadline = Date.now() + this.init.timeoutMs;
    while (Atomics.load(control, GENERATION) === generation) {
      this.checkAbort(op);
      if (Date.now() > deadline) {
        const mine = Atomics.load(control, ARRIVALS + this.rank);
        const missing = Array.from({ length: this.world }, (_, r) => r).filter((r) => Atomics.load(control, ARRIVALS + r) < mine);
        throw new RankFailedError(
          'timeout',
          missing[0] ?? -1,
          op,
          `rank ${this.rank} waited ${this.init.timeoutMs} ms in ${op} for rank${missing.length === 1 ? '' : 's'} ${missing.join(', ')}, which never arrived`,
        );
      }
      Atomics.wait(control, GENERATION, generation, 50);
    }
    this.checkAbort(op);
  }

  private checkAbort(op: string): void {
    const failed = Atomics.load(this.control, ABORT);
    if (failed !== 0) {
      throw new RankFailedError('rank-failed', failed - 1, op, `rank ${failed - 1} failed; rank ${this.rank} stopped in ${op}`);
    }
  }

  private region(): Float32Array {
    const which = this.operations++ % 2;
    const size = this.world * this.slot;
    return this.data.subarray(which * size, (which + 1) * size);
  }
}
