/**
 * One rank's memory: a WebAssembly.Memory, so the WebAssembly kernels and the TypeScript ones see the
 * same bytes. Weights and KV caches are long-lived allocations (first-fit free list); everything a
 * forward pass creates goes in a step arena that is dropped in one go at the end of the step.
 */
import { TpError } from '@tp/core';

const PAGE = 65536;
const ALIGN = 64;
/** wasm32 addresses 4 GiB; V8 allows a Memory of 65536 pages. */
const MAX_PAGES = 65536;

const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export class Heap {
  readonly memory: WebAssembly.Memory;
  private top = ALIGN; // never hand out address 0
  private readonly free: Array<{ at: number; size: number }> = [];
  private arena: { at: number; size: number } | undefined;
  private arenaUsed = 0;
  private arenaPeak = 0;
  private stepDepth = 0;
  /** Where each open scope's allocations start: its arena position and its first overflow block. */
  private readonly scopes: Array<{ used: number; overflow: number }> = [];
  private f32: Float32Array;
  private i32: Int32Array;
  private u16: Uint16Array;
  private u8: Uint8Array;

  constructor(initialBytes = 16 * PAGE) {
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(initialBytes / PAGE), maximum: MAX_PAGES });
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
    this.u16 = new Uint16Array(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
  }

  /** A Float32Array over [byteOffset, byteOffset + 4·length): valid until the memory grows. */
  floats(byteOffset: number, length: number): Float32Array {
    if (this.f32.buffer !== this.memory.buffer) this.refresh();
    return this.f32.subarray(byteOffset >>> 2, (byteOffset >>> 2) + length);
  }

  ints(byteOffset: number, length: number): Int32Array {
    if (this.i32.buffer !== this.memory.buffer) this.refresh();
    return this.i32.subarray(byteOffset >>> 2, (byteOffset >>> 2) + length);
  }

  halves(byteOffset: number, length: number): Uint16Array {
    if (this.u16.buffer !== this.memory.buffer) this.refresh();
    return this.u16.subarray(byteOffset >>> 1, (byteOffset >>> 1) + length);
  }

  bytes(byteOffset: number, length: number): Uint8Array {
    if (this.u8.buffer !== this.memory.buffer) this.refresh();
    return this.u8.subarray(byteOffset, byteOffset + length);
  }

  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** Allocate: in the step arena during a step, long-lived otherwise. */
  alloc(bytes: number): number {
    const size = align(Math.max(bytes, 4));
    if (this.stepDepth > 0) return this.arenaAlloc(size);
    return this.longLived(size);
  }

  release(at: number, bytes: number): void {
    if (this.arena !== undefined && at >= this.arena.at && at < this.arena.at + this.arena.size) return; // freed with the step
    this.give({ at, size: align(Math.max(bytes, 4)) });
  }

  /** Run `fn` with its allocations long-lived even inside a step (a KV cache growing mid-step). */
  outsideStep<T>(fn: () => T): T {
    const depth = this.stepDepth;
    this.stepDepth = 0;
    try {
      return fn();
    } finally {
      this.stepDepth = depth;
    }
  }

  beginStep(): void {
    // A step inside a step is a scope: remember where its allocations start.
    if (this.stepDepth > 0) this.scopes.push({ used: this.arenaUsed, overflow: this.overflow.length });
    this.stepDepth++;
  }

  /** Steps open now (1: a step; more: scopes inside it). */
  get depth(): number {
    return this.stepDepth;
  }

  /**
   * End a scope (a step inside a step): everything it allocated is free again, except the block of
   * `keep` (its address and size), which now belongs to the enclosing step. A kept block in the arena
   * moves down to where the scope started, so the next scope reuses all the rest; the new address is
   * returned. (A kept overflow block stays where it is, freed with the step.)
   */
  endScope(keep?: { at: number; bytes: number }): number | undefined {
    const scope = this.scopes.pop();
    if (scope === undefined || this.stepDepth < 2) throw new TpError('internal', 'endScope without an open scope');
    this.stepDepth--;
    const arena = this.arena;
    const start = arena === undefined ? 0 : arena.at + scope.used;
    const end = arena === undefined ? 0 : arena.at + Math.min(this.arenaUsed, arena.size);
    const mine = this.overflow.splice(scope.overflow);
    this.arenaUsed = scope.used;
    let moved: number | undefined;
    if (keep !== undefined && arena !== undefined && keep.at >= start && keep.at < end) {
      if (keep.at !== start) new Uint8Array(this.memory.buffer).copyWithin(start, keep.at, keep.at + keep.bytes);
      this.arenaUsed = scope.used + align(Math.max(keep.bytes, 4));
      moved = start;
    } else if (keep !== undefined) {
      const i = mine.findIndex((b) => keep.at >= b.at && keep.at < b.at + b.size);
      if (i >= 0) {
        const [block] = mine.splice(i, 1);
        this.overflow.push(block!);
        this.arenaUsed = scope.used + block!.size;
      }
    }
    for (const block of mine) this.give(block);
    return moved;
  }

  endStep(): void {
    if (this.stepDepth > 1) {
      this.endScope();
      return;
    }
    if (--this.stepDepth > 0) return;
    this.arenaUsed = 0;
    for (const block of this.overflow.splice(0)) this.give(block);
    // Grow the arena to the step's high-water mark, so later steps allocate with a pointer bump.
    if (this.arena === undefined || this.arenaPeak > this.arena.size) {
      if (this.arena !== undefined) this.give(this.arena);
      this.arena = { at: this.longLived(align(this.arenaPeak * 1.25)), size: align(this.arenaPeak * 1.25) };
    }
  }

  private arenaAlloc(size: number): number {
    if (this.arena !== undefined && this.arenaUsed + size <= this.arena.size) {
      const at = this.arena.at + this.arenaUsed;
      this.arenaUsed += size;
      this.arenaPeak = Math.max(this.arenaPeak, this.arenaUsed);
      return at;
    }
    // Overflow: count it towards the peak (the next arena will fit it) and serve it long-lived.
    this.arenaUsed += size;
    this.arenaPeak = Math.max(this.arenaPeak, this.arenaUsed);
    const at = this.longLived(size);
    this.overflow.push({ at, size });
    return at;
  }

  /** Allocations a step made past the end of its arena: released with the step. */
  private readonly overflow: Array<{ at: number; size: number }> = [];

  /**
   * Return a block to the free list, merged with its free neighbours; free space at the top of the
   * memory lowers the top instead. Without this, a step that overflowed its arena (the first step
   * always does) left its blocks as fragments too small for the bigger arena that follows, and the
   * memory grew by the step's whole peak a second time (2.25× the peak instead of 1.25×).
   */
  private give(block: { at: number; size: number }): void {
    const free = this.free;
    let i = free.findIndex((b) => b.at > block.at);
    if (i < 0) i = free.length;
    free.splice(i, 0, { ...block });
    const next = free[i + 1];
    if (next !== undefined && free[i]!.at + free[i]!.size === next.at) {
      free[i]!.size += next.size;
      free.splice(i + 1, 1);
    }
    const prev = free[i - 1];
    if (prev !== undefined && prev.at + prev.size === free[i]!.at) {
      prev.size += free[i]!.size;
      free.splice(i, 1);
      i--;
    }
    const last = free[free.length - 1];
    if (last !== undefined && last.at + last.size === this.top) {
      this.top = last.at;
      free.pop();
    }
  }

  private longLived(size: number): number {
    const i = this.free.findIndex((b) => b.size >= size);
    if (i >= 0) {
      const block = this.free[i]!;
      if (block.size - size >= ALIGN) {
        block.at += size;
        block.size -= size;
        return block.at - size;
      }
      this.free.splice(i, 1);
      return block.at;
    }
    const at = this.top;
    this.top += size;
    if (this.top > this.memory.buffer.byteLength) {
      const pages = Math.ceil((this.top - this.memory.buffer.byteLength) / PAGE);
      const current = this.memory.buffer.byteLength / PAGE;
      if (current + pages > MAX_PAGES) {
        throw new RankMemoryError(this.top);
      }
      // Grow by what is needed plus at most 16 MiB: growing a wasm memory copies nothing (V8 reserves
      // the address space), and every page grown is reported as the rank's memory.
      this.memory.grow(Math.max(pages, Math.min(current, MAX_PAGES - current, 256)));
      this.refresh();
    }
    return at;
  }

  private refresh(): void {
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
    this.u16 = new Uint16Array(this.memory.buffer);
    this.u8 = new Uint8Array(this.memory.buffer);
  }
}

/** The 4 GiB of a wasm32 memory is full. */
export class RankMemoryError extends TpError {
  readonly neededBytes: number;

  constructor(neededBytes: number) {
    super(
      'out-of-memory',
      `a CPU rank can address 4 GiB of WebAssembly memory and this needs ${(neededBytes / 2 ** 30).toFixed(2)} GiB. ` +
        'If the weights do not fit, use more ranks (a larger --tp) or half-precision storage (--dtype bf16); if the KV cache grew past it (a long generation), ask for fewer new tokens (--max-new-tokens), a smaller batch or a half-precision KV cache (--kv-dtype bf16); more ranks help only when the kv heads can be split further',
    );
    this.name = 'RankMemoryError';
    this.neededBytes = neededBytes;
  }
}
