/**
 * The buffer pool's bookkeeping, on a stand-in device (no GPU needed): what nested steps rely on when
 * they release a scope's buffers before the queue has drained.
 */
import { describe, expect, it } from 'vitest';
import { createGuardBuffer, GpuGuard } from '../src/guard.js';
import { Memory } from '../src/memory.js';

/** A device that only creates buffers, recording which were destroyed. */
function fakeDevice() {
  const destroyed = new Set<unknown>();
  let created = 0;
  const device = {
    createBuffer: ({ size }: { size: number }) => {
      created++;
      const buffer = { size, destroy: () => destroyed.add(buffer) };
      return buffer;
    },
  };
  return { device: device as unknown as GPUDevice, destroyed, created: () => created };
}

const MiB = 2 ** 20;

describe('Memory', () => {
  it('a freed pooled buffer is taken again at once by the same size class, before any drain', () => {
    const { device, created } = fakeDevice();
    const memory = new Memory(device, 1024 * MiB, new GpuGuard(createGuardBuffer(1), 0));
    const a = memory.alloc(MiB, 'a');
    memory.release(a);
    const b = memory.alloc(MiB - 100, 'b');
    expect(b.buffer).toBe(a.buffer);
    expect(created()).toBe(1);
    expect(memory.bytes).toBe(MiB);
  });

  it('a freed exact-size buffer counts until the queue drains, is taken again by the same size meanwhile, and is destroyed at the drain', () => {
    const { device, destroyed, created } = fakeDevice();
    const memory = new Memory(device, 1024 * MiB, new GpuGuard(createGuardBuffer(1), 0));
    const big = 100 * MiB; // above the pooled sizes
    // Ten scopes, each freeing one large temporary before the queue drains: one buffer serves them all.
    let last = memory.alloc(big, 'scope 0');
    for (let i = 1; i < 10; i++) {
      memory.release(last);
      expect(memory.bytes).toBe(big); // freed, not yet destroyed: still held
      last = memory.alloc(big, `scope ${i}`);
    }
    expect(created()).toBe(1);
    // Another size is not served by it.
    const other = memory.alloc(big + 16, 'other');
    expect(other.buffer).not.toBe(last.buffer);
    memory.release(last);
    memory.release(other);
    expect(memory.bytes).toBe(2 * big + 16);
    expect(destroyed.size).toBe(0);
    memory.drained();
    expect(destroyed.has(last.buffer)).toBe(true);
    expect(destroyed.has(other.buffer)).toBe(true);
    expect(memory.bytes).toBe(0);
  });
});
