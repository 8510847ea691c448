/**
 * How CUDA ranks communicate. The coordinator picks one mechanism per session (createCudaCommunicator):
 *
 * - `nccl`: one NCCL communicator per rank from a unique id made on the coordinator, created
 *   non-blocking and polled; collectives run on the rank's stream and return once enqueued. While a
 *   rank waits (download, endStep) its watchdog asks `health()`: a peer that called
 *   abortCommunicator, or a collective pending longer than the timeout, aborts the communicator
 *   (ncclCommAbort) and fails the wait naming the rank at fault (the one whose collective count
 *   lags, for a timeout).
 * - `device`: ranks in this process exchange device pointers and events through shared memory; each
 *   rank's stream waits on the others' events and a kernel reads their buffers directly (same GPU,
 *   or peers with access enabled), summing in rank order so every rank gets the same bits. Two host
 *   barriers per operation (core's HostCollective: deadlines, aborts, the missing rank named) keep
 *   buffers alive until everyone has read them. This is how TP > 1 runs on one GPU when NCCL refuses
 *   two ranks per device (NCCL < 2.30).
 *
 * Both use the host collective for barrier() and for exchanging all-gather widths.
 */
import { abortHostCollective, createHostCollectiveInit, HostCollective, RankFailedError, TpError, type CommunicatorInit, type DeviceTensor, type HostCollectiveInit } from '@tp/core';
import type { CudaCollective, CudaTensor, RankDevice } from './rank.js';
import type { Native, NativeComm } from './native.js';

export type CollectiveMode = 'nccl' | 'device';

export interface CudaCommunicatorInit extends CommunicatorInit {
  readonly kind: 'cuda';
  readonly mode: CollectiveMode;
  /** The GPU of each rank. */
  readonly devices: readonly number[];
  readonly host: HostCollectiveInit;
  /** BigInt64 [world × 4]: each rank's pointer, two events and a width, per operation. */
  readonly slots: SharedArrayBuffer;
  /** Int32 [1 + world]: [0] = 1 + the rank that aborted (0: none); [1 + r] = collectives rank r entered. */
  readonly flags: SharedArrayBuffer;
  /** ncclGetUniqueId's 128 bytes (nccl mode). */
  readonly ncclId?: Uint8Array;
}

const FIELDS = 4;
const PTR = 0;
const READY = 1;
const DONE = 2;
const WIDTH = 3;

export function createCudaCommunicator(world: number, timeoutMs: number, mode: CollectiveMode, devices: readonly number[], ncclId?: Uint8Array): CudaCommunicatorInit {
  if (devices.length !== world) throw new TpError('tp-invalid', `${world} ranks but ${devices.length} devices were given`);
  return {
    kind: 'cuda',
    world,
    timeoutMs,
    mode,
    devices: [...devices],
    host: createHostCollectiveInit(world, 16, timeoutMs),
    slots: new SharedArrayBuffer(world * FIELDS * 8),
    flags: new SharedArrayBuffer((1 + world) * 4),
    ...(ncclId ? { ncclId } : {}),
  };
}

export function abortCudaCommunicator(init: CudaCommunicatorInit, rank: number): void {
  Atomics.compareExchange(new Int32Array(init.flags), 0, 0, rank + 1);
  abortHostCollective(init.host, rank);
}

/** The mechanism for a placement of ranks on GPUs: see the file comment. */
export function chooseMode(requested: string | undefined, devices: readonly number[], ncclVersion: number | undefined): CollectiveMode {
  const distinct = new Set(devices).size === devices.length;
  if (requested === 'nccl' || requested === 'device') return requested;
  if (devices.length === 1 || ncclVersion === undefined) return 'device';
  // NCCL < 2.30 refuses two ranks on one GPU; from 2.30 it allows it with NCCL_MULTI_RANK_GPU_ENABLE=1.
  return distinct || ncclVersion >= 23000 ? 'nccl' : 'device';
}

abstract class Base implements CudaCollective {
  protected readonly host: HostCollective;
  protected readonly slots: BigInt64Array;
  protected readonly flags: Int32Array;

  constructor(
    protected readonly r: RankDevice,
    protected readonly init: CudaCommunicatorInit,
  ) {
    this.host = new HostCollective(init.host, r.rank, init.world);
    this.slots = new BigInt64Array(init.slots);
    this.flags = new Int32Array(init.flags);
  }

  get world(): number {
    return this.init.world;
  }

  protected slot(rank: number, field: number): number {
    return Number(Atomics.load(this.slots, rank * FIELDS + field));
  }

  protected publish(field: number, value: number): void {
    Atomics.store(this.slots, this.r.rank * FIELDS + field, BigInt(value));
  }

  protected enter(op: string): void {
    this.checkAbort(op);
    Atomics.add(this.flags, 1 + this.r.rank, 1);
  }

  protected checkAbort(op: string): void {
    const failed = Atomics.load(this.flags, 0);
    if (failed !== 0) throw new RankFailedError('rank-failed', failed - 1, op, `rank ${failed - 1} failed; rank ${this.r.rank} stopped in ${op}`);
  }

  private exchanges = 0;

  /**
   * Widths (last dimension) of every rank's tensor for an all-gather, through the host. One barrier:
   * consecutive exchanges alternate fields, so a rank never overwrites a width a slower one still reads.
   */
  protected exchangeWidths(t: CudaTensor): number[] {
    const field = this.exchanges++ % 2 === 0 ? WIDTH : PTR;
    this.publish(field, t.cols);
    this.host.barrier('all-gather');
    return Array.from({ length: this.world }, (_, j) => this.slot(j, field));
  }

  protected gatheredTensor(t: CudaTensor, total: number): CudaTensor {
    return this.r.tensor(t.shape.length <= 1 ? [total] : [...t.shape.slice(0, -1), total]);
  }

  async barrier(): Promise<void> {
    this.checkAbort('barrier');
    this.host.barrier('barrier');
  }

  health(op: string): TpError | undefined {
    const failed = Atomics.load(this.flags, 0);
    if (failed !== 0 && failed - 1 !== this.r.rank) {
      this.onAbort();
      return new RankFailedError('rank-failed', failed - 1, op, `rank ${failed - 1} failed; rank ${this.r.rank} stopped in ${op}`);
    }
    return undefined;
  }

  /** Stop device work that waits on peers (NCCL: abort the communicator). */
  protected onAbort(): void {}

  abstract allReduce(t: DeviceTensor): Promise<void>;
  abstract allGather(t: DeviceTensor): Promise<DeviceTensor>;
  abstract broadcast(t: DeviceTensor, root: number): Promise<void>;
  abstract dispose(): Promise<void>;
}

/** Ranks of one process on one GPU (or GPUs with peer access): see the file comment. */
export class DeviceCollective extends Base {
  private readonly ready: number;
  private readonly done: number;

  constructor(r: RankDevice, init: CudaCommunicatorInit) {
    super(r, init);
    for (const d of new Set(init.devices)) if (d !== r.device) r.call(() => r.ctx.enablePeer(d));
    this.ready = r.call(() => r.ctx.eventCreate());
    this.done = r.call(() => r.ctx.eventCreate());
  }

  /** Publish this rank's buffer and ready point, then wait (host) for all ranks to have done so. */
  private arrive(op: string, ptr: number, width = 0): void {
    this.r.call(() => this.r.ctx.eventRecord(this.ready));
    this.publish(PTR, ptr);
    this.publish(READY, this.ready);
    this.publish(WIDTH, width);
    this.host.barrier(op);
  }

  /** After reading the others' buffers: publish, barrier, and make this stream wait for everyone's reads. */
  private leave(op: string, ranks: readonly number[]): void {
    this.r.call(() => this.r.ctx.eventRecord(this.done));
    this.publish(DONE, this.done);
    this.host.barrier(op);
    for (const j of ranks) if (j !== this.r.rank) this.r.call(() => this.r.ctx.waitEvent(this.slot(j, DONE)));
  }

  private waitReady(ranks: readonly number[]): void {
    for (const j of ranks) if (j !== this.r.rank) this.r.call(() => this.r.ctx.waitEvent(this.slot(j, READY)));
  }

  private all(): number[] {
    return Array.from({ length: this.world }, (_, j) => j);
  }

  async allReduce(t: DeviceTensor): Promise<void> {
    const x = t as CudaTensor;
    this.enter('all-reduce');
    if (this.world === 1) return;
    const n = x.length;
    this.arrive('all-reduce', x.ptr);
    const ranks = this.all();
    this.waitReady(ranks);
    const sum = this.r.scratch(n * 4);
    // Every rank sums in rank order, 8 buffers per pass (the running sum is the next pass's first).
    const pointers = ranks.map((j) => this.slot(j, PTR));
    const blocks = Math.max(1, Math.min(Math.ceil(n / 256), 4096));
    for (let next = 0; next < pointers.length; ) {
      const group = next === 0 ? pointers.slice(0, 8) : [sum, ...pointers.slice(next, next + 7)];
      next += next === 0 ? group.length : group.length - 1;
      this.r.launch('tp_reduce_sum', [blocks], 256, [sum, ...group, ...Array<number>(8 - group.length).fill(0), group.length, n]);
    }
    this.leave('all-reduce', ranks);
    this.r.call(() => this.r.ctx.copy(x.ptr, sum, n * 4));
    this.r.release(sum);
  }

  async allGather(t: DeviceTensor): Promise<DeviceTensor> {
    const x = t as CudaTensor;
    this.enter('all-gather');
    if (this.world === 1) {
      const y = this.gatheredTensor(x, x.cols);
      this.r.call(() => this.r.ctx.copy(y.ptr, x.ptr, x.bytes));
      return y;
    }
    this.arrive('all-gather', x.ptr, x.cols);
    const ranks = this.all();
    const widths = ranks.map((j) => this.slot(j, WIDTH));
    const total = widths.reduce((a, b) => a + b, 0);
    const rows = x.rows;
    const y = this.gatheredTensor(x, total);
    this.waitReady(ranks);
    let at = 0;
    for (const j of ranks) {
      const ptr = j === this.r.rank ? x.ptr : this.slot(j, PTR);
      if (rows * widths[j]! > 0) this.r.launch('tp_copy_columns', [Math.max(1, Math.min(Math.ceil((rows * widths[j]!) / 256), 4096))], 256, [y.ptr, total, at, ptr, widths[j]!, 0, rows, widths[j]!]);
      at += widths[j]!;
    }
    this.leave('all-gather', ranks);
    return y;
  }

  async broadcast(t: DeviceTensor, root: number): Promise<void> {
    const x = t as CudaTensor;
    this.enter('broadcast');
    if (this.world === 1) return;
    this.arrive('broadcast', x.ptr);
    const ranks = this.all();
    if (this.r.rank !== root) {
      this.waitReady([root]);
      const src = this.slot(root, PTR);
      if (x.length > 0) this.r.launch('tp_copy_columns', [Math.max(1, Math.min(Math.ceil(x.length / 256), 4096))], 256, [x.ptr, x.length, 0, src, x.length, 0, 1, x.length]);
    }
    // The root keeps its buffer until every rank has copied it.
    this.leave('broadcast', this.r.rank === root ? ranks : []);
  }

  async dispose(): Promise<void> {
    this.r.call(() => {
      this.r.ctx.synchronize();
      this.r.ctx.eventDestroy(this.ready);
      this.r.ctx.eventDestroy(this.done);
    });
  }
}

const NCCL_IN_PROGRESS = 7;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One NCCL communicator per rank (see the file comment). */
export class NcclCollective extends Base {
  private comm: NativeComm | undefined;
  /** The collective the stream may still be waiting in: its name, this rank's count then, when it was enqueued. */
  private pending: { op: string; count: number; at: number } | undefined;

  private constructor(r: RankDevice, init: CudaCommunicatorInit) {
    super(r, init);
  }

  /** ncclCommInitRankConfig (non-blocking), polled until ready, the timeout, or a peer's abort. */
  static async create(r: RankDevice, init: CudaCommunicatorInit, native: Native): Promise<NcclCollective> {
    const c = new NcclCollective(r, init);
    if (init.ncclId === undefined) throw new TpError('internal', 'an NCCL communicator without a unique id');
    c.comm = r.call(() => new native.NcclComm(r.ctx, init.ncclId!, init.world, r.rank));
    const deadline = Date.now() + Math.max(init.timeoutMs, 30_000);
    let abortSeen: number | undefined;
    for (let delay = 1; ; delay = Math.min(50, delay * 2)) {
      const state = r.call(() => c.comm!.status());
      if (state !== NCCL_IN_PROGRESS) break;
      // A peer that failed after its own init still let ours complete: give it a moment, so the
      // failure surfaces in the collective that waits for that peer (as it would with any backend).
      const failed = Atomics.load(c.flags, 0);
      if (failed !== 0) abortSeen ??= Date.now();
      if (failed !== 0 && Date.now() - abortSeen! > 2000) {
        c.onAbort();
        throw new RankFailedError('rank-failed', failed - 1, 'ncclCommInitRankConfig', `rank ${failed - 1} failed while rank ${r.rank} was creating its NCCL communicator`);
      }
      if (Date.now() > deadline) {
        c.onAbort();
        throw new RankFailedError('timeout', -1, 'ncclCommInitRankConfig', `rank ${r.rank}: the NCCL communicator was not ready after ${Math.max(init.timeoutMs, 30_000)} ms (a rank did not start?)`);
      }
      await sleep(delay);
    }
    return c;
  }

  /** Call an NCCL operation; a non-blocking communicator may answer "in progress" while it enqueues. */
  private async run(op: string, fn: (comm: NativeComm) => number): Promise<void> {
    const comm = this.comm;
    if (comm === undefined) throw new TpError('invalid-argument', `rank ${this.r.rank}: the NCCL communicator was aborted or destroyed`);
    this.enter(op);
    let state = this.r.call(() => fn(comm));
    for (let spins = 0; state === NCCL_IN_PROGRESS; spins++) {
      if (spins > 64) await sleep(1);
      const problem = this.health(op);
      if (problem) throw problem;
      state = this.r.call(() => comm.status());
    }
    this.pending = { op, count: Atomics.load(this.flags, 1 + this.r.rank), at: Date.now() };
  }

  async allReduce(t: DeviceTensor): Promise<void> {
    const x = t as CudaTensor;
    await this.run('all-reduce', (c) => c.allReduce(x.ptr, x.length));
  }

  async allGather(t: DeviceTensor): Promise<DeviceTensor> {
    const x = t as CudaTensor;
    this.checkAbort('all-gather');
    const widths = this.exchangeWidths(x);
    const max = Math.max(...widths);
    const total = widths.reduce((a, b) => a + b, 0);
    const rows = x.rows;
    // NCCL gathers equal counts: pad each rank's rows to the widest, gather, then lay the columns out.
    let send = x.ptr;
    let padded: number | undefined;
    if (x.cols !== max) {
      padded = this.r.scratch(rows * max * 4);
      this.r.launch('tp_copy_columns', [Math.max(1, Math.min(Math.ceil((rows * x.cols) / 256), 4096))], 256, [padded, max, 0, x.ptr, x.cols, 0, rows, x.cols]);
      send = padded;
    }
    const gathered = this.r.scratch(this.world * rows * max * 4);
    await this.run('all-gather', (c) => c.allGather(send, gathered, rows * max));
    const y = this.gatheredTensor(x, total);
    let at = 0;
    for (let j = 0; j < this.world; j++) {
      if (rows * widths[j]! > 0) {
        this.r.launch('tp_copy_columns', [Math.max(1, Math.min(Math.ceil((rows * widths[j]!) / 256), 4096))], 256, [y.ptr, total, at, gathered + j * rows * max * 4, max, 0, rows, widths[j]!]);
      }
      at += widths[j]!;
    }
    if (padded !== undefined) this.r.release(padded);
    this.r.release(gathered);
    return y;
  }

  async broadcast(t: DeviceTensor, root: number): Promise<void> {
    const x = t as CudaTensor;
    await this.run('broadcast', (c) => c.broadcast(x.ptr, x.length, root));
  }

  override health(op: string): TpError | undefined {
    const aborted = super.health(op);
    if (aborted) return aborted;
    const p = this.pending;
    if (p === undefined || Date.now() - p.at <= this.init.timeoutMs) return undefined;
    // Overdue: if the stream is idle the collective finished; otherwise name whoever never entered it.
    if (this.r.call(() => this.r.ctx.query()) === 0) {
      this.pending = undefined;
      return undefined;
    }
    const late = Array.from({ length: this.world }, (_, j) => j).filter((j) => Atomics.load(this.flags, 1 + j) < p.count);
    if (late.length === 0) return undefined; // everyone entered: NCCL is slow, not stuck on a peer
    this.onAbort();
    return new RankFailedError(
      'timeout',
      late[0]!,
      op,
      `rank ${this.r.rank} waited ${this.init.timeoutMs} ms in ${p.op} for rank${late.length === 1 ? '' : 's'} ${late.join(', ')}, which never joined it`,
    );
  }

  protected override onAbort(): void {
    const comm = this.comm;
    this.comm = undefined;
    if (comm) {
      try {
        comm.abort();
      } catch {
        // aborting is best effort: the rank is failing anyway
      }
    }
  }

  /**
   * Tear down locally: wait for this rank's stream, then ncclCommAbort — it frees the communicator
   * without a collective handshake, so a rank that disposes never waits for its peers (ncclCommDestroy
   * may, and destruction order across ranks is unpredictable).
   */
  async dispose(): Promise<void> {
    const comm = this.comm;
    this.comm = undefined;
    if (comm === undefined) return;
    if (Atomics.load(this.flags, 0) === 0) {
      try {
        this.r.call(() => this.r.ctx.synchronize());
      } finally {
        comm.abort();
      }
    } else {
      comm.abort();
    }
  }
}
