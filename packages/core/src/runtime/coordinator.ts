/**
 * The coordinator's side of the rank messages (messages.ts), wherever the ranks run: Node's worker
 * threads (session.ts) or a page's Web Workers (web-session.ts). Every rank gets each message and
 * answers `done`; rank 0's result is the answer. Requests run one at a time (`serial`). The first
 * failure wins: a rank's error (rebuilt by rank-errors.ts, the failing rank's own report preferred)
 * rejects every pending request and the loading, and stops every rank; nothing hangs. Browser-safe.
 */
import type { StepInput, StepResult } from './engine.js';
import type { FromWorker, ToWorker, WorkerStats } from './messages.js';
import { failWithCause } from './rank-errors.js';

export interface LoadProgressEvent {
  rank: number;
  bytesRead: number;
  bytesTotal: number;
}

/** What each rank reported when its shard was loaded. */
export interface RankLoad {
  rank: number;
  bytesRead: number;
  loadMs: number;
}

/** How the coordinator reaches one rank: a worker thread, a Web Worker. */
export interface RankLink {
  post(message: ToWorker): void;
  /** Stop the rank now (after a failure). */
  terminate(): void;
  /** Node: whether the rank keeps the process alive (busy while a request is pending). */
  hold?(busy: boolean): void;
}

export interface RankAnswer {
  result?: StepResult;
  stats?: WorkerStats[];
}

interface Pending {
  waiting: Set<number>;
  resolve: (answer: RankAnswer) => void;
  reject: (error: Error) => void;
  result?: StepResult;
  stats: WorkerStats[];
}

export class RankCoordinator {
  /** Every rank's load report, by rank, once all are ready; rejects with the first failure. */
  readonly ready: Promise<RankLoad[]>;
  private settleReady!: { resolve: (loads: RankLoad[]) => void; reject: (error: Error) => void };
  private readonly loads = new Map<number, RankLoad>();
  private loaded = false;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();
  private endedWith: Error | undefined;
  private broken = false;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly links: readonly RankLink[],
    private readonly onProgress?: (event: LoadProgressEvent) => void,
  ) {
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    // A load that fails before anyone awaits `ready` is not an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  get world(): number {
    return this.links.length;
  }

  /** Whether every rank has loaded its shard. */
  get isReady(): boolean {
    return this.loaded;
  }

  /** What ended the ranks: the first failure, or `close`'s error; undefined while they serve. */
  get ended(): Error | undefined {
    return this.endedWith;
  }

  /** Whether a rank failed (the ranks were then stopped). */
  get hasFailed(): boolean {
    return this.broken;
  }

  /** A message from rank `m.rank`. */
  receive(m: FromWorker): void {
    switch (m.type) {
      case 'progress':
        if (!this.loaded && !this.broken) this.onProgress?.({ rank: m.rank, bytesRead: m.bytesRead, bytesTotal: m.bytesTotal });
        break;
      case 'ready':
        if (this.loaded || this.broken) break;
        this.loads.set(m.rank, { rank: m.rank, bytesRead: m.bytesRead, loadMs: m.loadMs });
        if (this.loads.size === this.links.length) {
          this.loaded = true;
          this.idle();
          this.settleReady.resolve([...this.loads.values()].sort((a, b) => a.rank - b.rank));
        }
        break;
      case 'done': {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        if (m.result) p.result = m.result;
        if (m.stats) p.stats[m.rank] = m.stats;
        p.waiting.delete(m.rank);
        if (p.waiting.size === 0) {
          this.pending.delete(m.id);
          this.idle();
          p.resolve({ ...(p.result ? { result: p.result } : {}), stats: p.stats });
        }
        break;
      }
      case 'error':
        failWithCause(m.rank, m.error, (e) => this.fail(e));
        break;
    }
  }

  /**
   * A rank failed (or its worker died): the first failure wins. Every pending request and the loading
   * reject with it and every rank is stopped — also after `close`, so a rank that fails while the
   * ranks are being released does not leave a request waiting.
   */
  fail(error: Error): void {
    if (this.broken) return;
    this.broken = true;
    this.endedWith ??= error;
    this.settleReady.reject(error);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.drained();
    for (const link of this.links) link.terminate();
  }

  /**
   * End the ranks' service without failing them (dispose): requests not yet sent reject with `error`,
   * those in flight still get their answers. Returns whether the ranks were healthy until now.
   */
  close(error: Error): boolean {
    const healthy = this.endedWith === undefined;
    this.endedWith ??= error;
    return healthy;
  }

  /** Resolves once no request is in flight (at once when none is). */
  whenDrained(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Run `fn` after the requests before it, refused once the ranks have ended. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.endedWith) throw this.endedWith;
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Send every rank `message` (its id assigned here) and wait for every rank's `done`. */
  call(message: ToWorker): Promise<RankAnswer> {
    if (this.endedWith) return Promise.reject(this.endedWith);
    return this.send(message);
  }

  /**
   * `call`, even after `close` (the dispose message itself); refused only once a rank has failed.
   * Dispose is the last message a rank answers.
   */
  send(message: ToWorker): Promise<RankAnswer> {
    if (this.broken) return Promise.reject(this.endedWith);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { waiting: new Set(this.links.map((_, r) => r)), resolve, reject, stats: [] });
      // Busy ranks keep a Node process alive; idle ones do not (a script that forgets dispose() exits).
      for (const link of this.links) link.hold?.(true);
      for (const link of this.links) link.post({ ...message, id });
    });
  }

  /** Fresh KV caches for `batch` sequences on every rank. */
  async reset(batch: number): Promise<void> {
    await this.call({ type: 'reset', id: 0, batch });
  }

  /** One step on every rank: rank 0's result. */
  async forward(step: StepInput): Promise<StepResult> {
    return (await this.call({ type: 'forward', id: 0, step })).result ?? {};
  }

  private idle(): void {
    if (this.pending.size > 0) return;
    for (const link of this.links) link.hold?.(false);
    this.drained();
  }

  private drained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
