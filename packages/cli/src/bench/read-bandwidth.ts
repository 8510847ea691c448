/**
 * The machine's read bandwidth, measured once by `tp bench`: one worker thread per core, each with a
 * buffer of its own (256 MiB, or 1 GiB split over the threads past 4, at least 16 MiB), every byte written
 * once beforehand so that each page is real memory, then all threads released together, each summing
 * its buffer over and over in a WebAssembly SIMD loop (four 16-byte loads per iteration into four
 * accumulators; a plain typed-array loop where WebAssembly SIMD is missing) for a fixed time. Only
 * reads are counted: the loop writes nothing to memory (its sums stay in registers). Bandwidth = bytes
 * summed by all threads ÷ the time from the first thread's start to the last thread's end.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

export interface ReadBandwidth {
  /** Bytes read per second by all threads together, in GB/s (1e9 bytes/s). */
  gb_per_s: number;
  threads: number;
  bytes_per_thread: number;
  /** Seconds each thread read for. */
  seconds: number;
  /** `wasm-simd` or `typed-array`. */
  method: 'wasm-simd' | 'typed-array';
}

/**
 * `sum(p, end)`: i32x4 sums of the 16-byte words in [p, end), four at a time (end − p a multiple of 64),
 * over an imported memory. Written out by hand: (module (import "e" "m" (memory 1))
 * (func (export "sum") (param i32 i32) (result i32) (local v128 v128 v128 v128)
 *   loop  acc_j += v128.load offset=16j (p) for j in 0..3;  p += 64;  br_if p < end  end
 *   i32x4.extract_lane 0 (acc0 + acc1 + acc2 + acc3)))
 */
export function readLoopWasm(): Uint8Array {
  const accumulate = (local: number, offset: number) => [0x20, local, 0x20, 0x00, 0xfd, 0x00, 0x04, offset, 0xfd, 0xae, 0x01, 0x21, local];
  const body = [
    0x01, 0x04, 0x7b, // 4 locals of v128
    0x03, 0x40, // loop
    ...accumulate(2, 0x00),
    ...accumulate(3, 0x10),
    ...accumulate(4, 0x20),
    ...accumulate(5, 0x30),
    0x20, 0x00, 0x41, 0xc0, 0x00, 0x6a, 0x22, 0x00, // p = p + 64 (tee)
    0x20, 0x01, 0x49, 0x0d, 0x00, // br_if 0 (p < end)
    0x0b, // end loop
    0x20, 0x02, 0x20, 0x03, 0xfd, 0xae, 0x01, 0x20, 0x04, 0xfd, 0xae, 0x01, 0x20, 0x05, 0xfd, 0xae, 0x01,
    0xfd, 0x1b, 0x00, // i32x4.extract_lane 0
    0x0b, // end func
  ];
  const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]), // type: (i32, i32) -> i32
    ...section(2, [0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x00, 0x01]), // import "e" "m": memory, min 1 page
    ...section(3, [0x01, 0x00]), // one function of type 0
    ...section(7, [0x01, 0x03, 0x73, 0x75, 0x6d, 0x00, 0x00]), // export "sum"
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { bytes, wasm, control, durationMs } = workerData;
const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
new Uint8Array(memory.buffer, 0, bytes).fill(1);
let read;
if (wasm) {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(wasm), { e: { m: memory } });
  const sum = instance.exports.sum;
  read = () => sum(0, bytes);
} else {
  const v = new Int32Array(memory.buffer, 0, bytes >> 2);
  read = () => {
    let a = 0, b = 0, c = 0, d = 0;
    for (let i = 0; i < v.length; i += 4) { a = (a + v[i]) | 0; b = (b + v[i + 1]) | 0; c = (c + v[i + 2]) | 0; d = (d + v[i + 3]) | 0; }
    return (a + b + c + d) | 0;
  };
}
let acc = read();
parentPort.postMessage({ type: 'ready' });
Atomics.wait(control, 0, 0);
const start = performance.timeOrigin + performance.now();
let passes = 0;
do { acc = (acc + read()) | 0; passes++; } while (performance.timeOrigin + performance.now() - start < durationMs);
const end = performance.timeOrigin + performance.now();
parentPort.postMessage({ type: 'done', passes, start, end, acc });
`;

export interface ReadBandwidthOptions {
  threads?: number;
  bytesPerThread?: number;
  durationMs?: number;
  /** Force the typed-array loop (tests). */
  typedArray?: boolean;
}

/** Measure the read bandwidth of all cores together (about `durationMs` plus filling the buffers). */
export async function measureReadBandwidth(options: ReadBandwidthOptions = {}): Promise<ReadBandwidth> {
  const threads = options.threads ?? os.availableParallelism();
  // 256 MiB per thread, at most 1 GiB in all (at least 16 MiB each): beyond the last-level cache of
  // the machines tp runs on (a server's L3 can hold several hundred MiB).
  const perThread = options.bytesPerThread ?? Math.max(16 * 2 ** 20, Math.min(256 * 2 ** 20, Math.floor(2 ** 30 / threads / 2 ** 20) * 2 ** 20));
  const bytes = Math.ceil(perThread / 65536) * 65536;
  const durationMs = options.durationMs ?? 400;
  const wasmBytes = readLoopWasm();
  // (The CLI's TypeScript lib has no WebAssembly types; Node has WebAssembly.)
  const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } };
  const wasm = !options.typedArray && wasmApi.validate(wasmBytes) ? wasmBytes : undefined;
  const control = new Int32Array(new SharedArrayBuffer(4));
  const workers: Worker[] = [];
  try {
    const ready: Promise<void>[] = [];
    const done: Promise<{ passes: number; start: number; end: number }>[] = [];
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(WORKER, { eval: true, workerData: { bytes, wasm, control, durationMs } });
      workers.push(worker);
      let onReady!: () => void;
      ready.push(new Promise<void>((resolve) => (onReady = resolve)));
      done.push(
        new Promise((resolve, reject) => {
          worker.on('message', (m: { type: string; passes: number; start: number; end: number }) => (m.type === 'ready' ? onReady() : resolve(m)));
          worker.on('error', reject);
          worker.on('exit', (code) => reject(new Error(`the bandwidth worker exited with code ${code}`)));
        }),
      );
    }
    await Promise.race([Promise.all(ready), Promise.all(done)]);
    Atomics.store(control, 0, 1);
    Atomics.notify(control, 0);
    const results = await Promise.all(done);
    const first = Math.min(...results.map((r) => r.start));
    const last = Math.max(...results.map((r) => r.end));
    const total = results.reduce((n, r) => n + r.passes * bytes, 0);
    return { gb_per_s: total / ((last - first) / 1000) / 1e9, threads, bytes_per_thread: bytes, seconds: (last - first) / 1000, method: wasm ? 'wasm-simd' : 'typed-array' };
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
