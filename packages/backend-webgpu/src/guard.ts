/**
 * Lets a failed session end without aborting the process. When a rank fails, the coordinator
 * terminates every rank's thread at once, and Dawn does not survive a thread terminated in the middle
 * of its work: with one of its promises pending (mapAsync, onSubmittedWorkDone…) the process aborts
 * ("Promise not resolved or rejected"), and inside a native call it dies with "FATAL ERROR:
 * napi_throw". Both were seen in tests here.
 *
 * So every native call and every GPU wait of a rank runs in a *section*, counted per rank in shared
 * memory. The failing rank (abortCommunicator runs in its thread before it reports) raises a flag and
 * waits until no other rank is inside a section; a rank that sees the flag enters no new section (it
 * throws instead), so soon every other rank is either running plain JavaScript, blocked in a host
 * barrier, or idle — all safe to terminate. A refusing rank first waits (up to a second) until the
 * failing rank is done waiting, so that the failing rank's report, the real cause, arrives first.
 *
 * The order makes it sound: a rank counts itself in *before* reading the flag, and the failing rank
 * raises the flag *before* reading the counts, so either the rank sees the flag, or the failing rank
 * sees its count and waits for it (Atomics are sequentially consistent).
 */
import { RankFailedError } from '@tp/core';

// Int32 layout: [FAILED] 0, or 1 + the rank that failed; [SETTLED] 1 once the failing rank is done
// waiting (it reports right after); [RANKS + r] the sections rank r is inside.
const FAILED = 0;
const SETTLED = 1;
const RANKS = 2;

export function createGuardBuffer(world: number): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * (RANKS + world));
}

/** How long a failing rank waits for the others to leave their sections before reporting anyway. */
const SETTLE_MS = 3000;
/** How long a refusing rank waits for the failing rank to report first (its error is the cause). */
const REPORT_FIRST_MS = 1000;

/** Raise the flag for `failed` and wait (bounded) until no other rank is inside a section. */
export function abortGuard(buffer: SharedArrayBuffer, failed: number): void {
  const view = new Int32Array(buffer);
  Atomics.compareExchange(view, FAILED, 0, failed + 1);
  const deadline = Date.now() + SETTLE_MS;
  for (let r = 0; r < view.length - RANKS; r++) {
    if (r === failed) continue;
    for (;;) {
      const inside = Atomics.load(view, RANKS + r);
      const left = deadline - Date.now();
      if (inside === 0 || left <= 0) break;
      Atomics.wait(view, RANKS + r, inside, left);
    }
  }
  Atomics.store(view, SETTLED, 1);
  Atomics.notify(view, SETTLED);
}

export class GpuGuard {
  private readonly view: Int32Array;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly rank: number,
  ) {
    this.view = new Int32Array(buffer);
  }

  /** The rank that failed, or undefined. */
  get failed(): number | undefined {
    const v = Atomics.load(this.view, FAILED);
    return v === 0 ? undefined : v - 1;
  }

  /**
   * Run native calls in a section. After another rank failed it throws instead (`refuse`), or runs
   * anyway (cleanup that must happen: destroying buffers and the device).
   */
  call<T>(op: string, fn: () => T, refuse = true): T {
    this.enter(op, refuse);
    try {
      return fn();
    } finally {
      this.leave();
    }
  }

  /** Start a GPU wait in a section (refused after another rank failed). */
  async wait<T>(op: string, start: () => Promise<T>): Promise<T> {
    this.enter(op, true);
    try {
      return await start();
    } finally {
      this.leave();
    }
  }

  /** A GPU promise that must settle whatever happens (the device's loss notice, in dispose). */
  track<T>(promise: Promise<T>): Promise<T> {
    this.enter('', false);
    return promise.finally(() => this.leave());
  }

  private enter(op: string, refuse: boolean): void {
    Atomics.add(this.view, RANKS + this.rank, 1);
    const failed = refuse ? this.failed : undefined;
    if (failed !== undefined) {
      this.leave();
      // Let the failing rank report first, so that the request fails with its error, not this one.
      try {
        Atomics.wait(this.view, SETTLED, 0, REPORT_FIRST_MS);
      } catch {
        // A browser's main thread may not block; it only loses the ordering.
      }
      throw new RankFailedError('rank-failed', failed, op, `rank ${failed} failed; rank ${this.rank} stopped before ${op}`);
    }
  }

  private leave(): void {
    Atomics.sub(this.view, RANKS + this.rank, 1);
    Atomics.notify(this.view, RANKS + this.rank);
  }
}
