#!/usr/bin/env node
/**
 * Microbenchmark of the matmul kernels:
 *   decode (M = 1), one thread: ms per matrix, GB/s of weight bytes streamed and parameters per second
 *     for f32, bf16 and f16 weights (f16 also without a scratch, and with 0.3% subnormal weights, as
 *     trained f16 checkpoints have), cycling over enough distinct matrices (≥ 64 MB) that every pass
 *     reads them from DRAM, not from a cache;
 *   prefill (M = 16), one thread: GFLOP/s of the f32 GEMM before this change (the baseline) and now —
 *     `matmul` (in place, no scratch) and `matmul_f32` (x packed into a scratch) — and of the
 *     half-weight GEMMs;
 *   with --threads T: decode again with T threads at once, each with its own memory, as T tensor-
 *     parallel ranks share the DRAM bandwidth.
 *
 *   node packages/backend-cpu/bench/matmul.mjs [--rounds N] [--threads T] [--baseline <git rev | file.wat>]
 *
 * It assembles wasm/kernels.wat itself with wabt (as scripts/build-wasm.mjs does), so it measures the
 * source as it is, with or without a build. The baseline is kernels.wat at a git revision (by default
 * the last commit before the prefill tiles and half-weight kernels); it is skipped when absent.
 * Variants run round-robin and each reports its best round, which keeps the comparison fair on a
 * machine other work shares.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const DECODE_BYTES = 80e6; // > any last-level cache this runs on
const DECODE_SHAPES = [
  [768, 3072],
  [3072, 768],
];
const PAGE = 65536;
// layout: [x | y | b | scratch | weights]
const X = 1024; // x: up to 16 × 4096 f32
const Y = X + 16 * 4096 * 4; // y: up to 16 × 4096 f32
const B = Y + 16 * 4096 * 4;
const SCRATCH = B + 4096 * 4; // 72·K bytes
const W = SCRATCH + 72 * 4096 + 1024;

/** A memory with the layout above filled: every 16-bit word of the weights a normal number as bf16
 * and as f16, every 32-bit word a normal f32 — no subnormal or non-finite arithmetic in the timings —
 * except a `subnormal` fraction of the 16-bit words made f16 subnormals (they read as f32 and bf16
 * subnormals too, so that memory is for the f16 kernel only). */
function makeMemory(subnormal = 0) {
  // + one more matrix: a pass rounds its count up
  const memory = new WebAssembly.Memory({ initial: Math.ceil((W + DECODE_BYTES + 3072 * 768 * 4) / PAGE), maximum: 65536 });
  let seed = 12345;
  const random = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const f32 = new Float32Array(memory.buffer);
  for (let i = X / 4; i < W / 4; i++) f32[i] = random() - 0.5;
  const u16 = new Uint16Array(memory.buffer);
  for (let i = W / 2; i < u16.length; i++) {
    const sign = random() < 0.5 ? 0x8000 : 0;
    u16[i] = sign | (random() < subnormal ? 1 + Math.floor(random() * 0x3ff) : 0x2000 + Math.floor(random() * 0x2000));
  }
  return memory;
}

/** f16 subnormals (|w| < 2^-14) in trained f16 weights: about 0.25% of N(0, 0.02) values */
const SUBNORMAL = 0.003;
/** The decode variants: [label, bytes per weight, (kernels, w, K, N) => void, reads the memory with
 * f16 subnormals] */
const DECODE = [
  ['f32', 4, (k, w, K, N) => k.matmul(X, w, 0, Y, 1, K, N)],
  ['bf16', 2, (k, w, K, N) => k.matmul_bf16(X, w, 0, Y, 1, K, N, SCRATCH)],
  ['f16', 2, (k, w, K, N) => k.matmul_f16(X, w, 0, Y, 1, K, N, SCRATCH)],
  ['f16 no scratch', 2, (k, w, K, N) => k.matmul_f16(X, w, 0, Y, 1, K, N, 0)],
  [`f16 ${SUBNORMAL * 100}% subn.`, 2, (k, w, K, N) => k.matmul_f16(X, w, 0, Y, 1, K, N, SCRATCH), true],
];

/** One pass over ≥ DECODE_BYTES of distinct matrices; returns the number of matrices. */
function decodePass(kernels, [, bytes, fn], K, N) {
  const size = K * N * bytes;
  const count = Math.ceil(DECODE_BYTES / size);
  for (let i = 0; i < count; i++) fn(kernels, W + i * size, K, N);
  return count;
}

if (!isMainThread) {
  // a concurrent decode thread: its own memory and instance; runs a variant for `ms` once released
  const instance = (memory) => new WebAssembly.Instance(workerData.module, { env: { memory } }).exports;
  const plain = instance(makeMemory());
  const subnormal = instance(makeMemory(SUBNORMAL));
  const gate = new Int32Array(workerData.gate);
  parentPort.on('message', ({ variant, K, N, ms, generation }) => {
    const v = DECODE[variant];
    const kernels = v[3] ? subnormal : plain;
    for (let i = 0; i < 2; i++) decodePass(kernels, v, K, N); // warm up, tier up
    parentPort.postMessage({ armed: true });
    Atomics.wait(gate, 0, generation - 1);
    let matrices = 0;
    const t0 = performance.now();
    let t;
    do matrices += decodePass(kernels, v, K, N);
    while ((t = performance.now() - t0) < ms);
    parentPort.postMessage({ matrices, seconds: t / 1000 });
  });
} else {
  await main();
}

async function main() {
  const { default: wabtInit } = await import('wabt');
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  const rounds = Number(option('--rounds', '7'));
  const threads = Number(option('--threads', '1'));
  const baselineRev = option('--baseline', '6dcdc7f');

  const wabt = await wabtInit();
  const assemble = (name, source) => {
    const module = wabt.parseWat(name, source, { simd: true, bulk_memory: true });
    module.validate();
    const { buffer } = module.toBinary({});
    module.destroy();
    return new WebAssembly.Module(buffer);
  };
  const baselineSource = () => {
    if (existsSync(baselineRev)) return readFileSync(baselineRev, 'utf8');
    try {
      return execFileSync('git', ['show', `${baselineRev}:packages/backend-cpu/wasm/kernels.wat`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      console.log(`(no baseline: git revision ${baselineRev} not found; pass --baseline <rev|file.wat>)`);
      return undefined;
    }
  };

  const memory = makeMemory();
  const module = assemble('kernels.wat', readFileSync(path.join(root, 'wasm/kernels.wat'), 'utf8'));
  const current = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const withSubnormals = new WebAssembly.Instance(module, { env: { memory: makeMemory(SUBNORMAL) } }).exports;
  const oldSource = baselineSource();
  const old = oldSource === undefined ? undefined : new WebAssembly.Instance(assemble('baseline.wat', oldSource), { env: { memory } }).exports;

  const fmt = (v, digits = 1, width = 8) => v.toFixed(digits).padStart(width);

  /** Runs each variant round-robin; returns each one's best seconds per unit (`per` units a run). */
  const race = (variants, minMs = 40) => {
    const best = variants.map(() => Infinity);
    for (const v of variants) for (let i = 0; i < 3; i++) v.run(); // warm up, tier up
    for (let r = 0; r < rounds; r++) {
      variants.forEach((v, i) => {
        let calls = 0;
        const t0 = performance.now();
        let t;
        do {
          v.run();
          calls++;
        } while ((t = performance.now() - t0) < minMs);
        best[i] = Math.min(best[i], t / 1000 / (calls * v.per));
      });
    }
    return best;
  };

  console.log(`matmul kernels · node ${process.version} · load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} · best of ${rounds} rounds`);

  // ---- decode, one thread --------------------------------------------------------------------------
  const header = `${'shape K×N'.padEnd(11)} ${'weights'.padEnd(17)} ${'ms/matrix'.padStart(10)} ${'GB/s'.padStart(8)} ${'Gparam/s'.padStart(9)} ${'vs f32'.padStart(7)}`;
  console.log('\ndecode (M = 1), one thread, weights cycled over ≥ 64 MB of distinct matrices:');
  console.log(header);
  for (const [K, N] of DECODE_SHAPES) {
    const variants = [
      ...DECODE.map((v) => ({ label: v[0], bytes: v[1], kernels: v[3] ? withSubnormals : current, v })),
      ...(old ? [{ label: 'f32 before', bytes: 4, kernels: old, v: DECODE[0] }] : []),
    ].map((d) => {
      const count = Math.ceil(DECODE_BYTES / (K * N * d.bytes));
      return { ...d, per: count, run: () => decodePass(d.kernels, d.v, K, N) };
    });
    const seconds = race(variants);
    variants.forEach((v, i) => {
      const s = seconds[i];
      console.log(
        `${`${K}×${N}`.padEnd(11)} ${v.label.padEnd(17)} ${fmt(s * 1e3, 3, 10)} ${fmt((K * N * v.bytes) / s / 1e9)} ${fmt((K * N) / s / 1e9, 2, 9)} ${fmt(seconds[0] / s, 2, 6)}×`,
      );
    });
  }

  // ---- prefill, one thread -------------------------------------------------------------------------
  const M = 16;
  console.log(`\nprefill (M = ${M}), one thread, GFLOP/s (2·M·K·N per call):`);
  const columns = [
    ...(old ? [['f32 before', (K, N) => old.matmul(X, W, B, Y, M, K, N)]] : []),
    ['f32 inplace', (K, N) => current.matmul(X, W, B, Y, M, K, N)],
    ['f32', (K, N) => current.matmul_f32(X, W, B, Y, M, K, N, SCRATCH)],
    ['bf16', (K, N) => current.matmul_bf16(X, W, B, Y, M, K, N, SCRATCH)],
    ['f16', (K, N) => current.matmul_f16(X, W, B, Y, M, K, N, SCRATCH)],
  ];
  console.log(`${'shape M×K×N'.padEnd(14)} ${columns.map(([name]) => name.padStart(11)).join(' ')}${old ? '   vs before: inplace, f32' : ''}`);
  for (const [K, N] of [
    [768, 768],
    [768, 3072],
    [3072, 768],
  ]) {
    const seconds = race(columns.map(([, fn]) => ({ per: 1, run: () => fn(K, N) })));
    const gflops = seconds.map((s) => (2 * M * K * N) / s / 1e9);
    console.log(`${`${M}×${K}×${N}`.padEnd(14)} ${gflops.map((g) => fmt(g, 1, 11)).join(' ')}${old ? `   ${fmt(gflops[1] / gflops[0], 2, 6)}× ${fmt(gflops[2] / gflops[0], 2, 6)}×` : ''}`);
  }

  // ---- decode, T threads at once -------------------------------------------------------------------
  if (threads > 1) {
    const gateBuffer = new SharedArrayBuffer(4);
    const gate = new Int32Array(gateBuffer);
    const workers = Array.from({ length: threads }, () => new Worker(fileURLToPath(import.meta.url), { workerData: { module, gate: gateBuffer } }));
    const next = (worker) => new Promise((resolve) => worker.once('message', resolve));
    let generation = 0;
    const concurrent = async (variant, K, N) => {
      generation++;
      const armed = workers.map(next);
      for (const worker of workers) worker.postMessage({ variant, K, N, ms: 300, generation });
      await Promise.all(armed);
      const done = workers.map(next);
      Atomics.store(gate, 0, generation);
      Atomics.notify(gate, 0);
      return Promise.all(done);
    };
    console.log(`\ndecode (M = 1), ${threads} threads at once (own memories), per thread and all together:`);
    console.log(`${header}   ${'total GB/s'.padStart(10)}`);
    for (const [K, N] of DECODE_SHAPES) {
      const best = DECODE.map(() => ({ perMatrix: Infinity, total: 0 }));
      for (let r = 0; r < Math.max(3, Math.ceil(rounds / 2)); r++) {
        for (let v = 0; v < DECODE.length; v++) {
          const results = await concurrent(v, K, N);
          const perMatrix = Math.max(...results.map((x) => x.seconds / x.matrices)); // the slowest thread
          const total = results.reduce((sum, x) => sum + (x.matrices * K * N * DECODE[v][1]) / x.seconds, 0) / 1e9;
          if (perMatrix < best[v].perMatrix) best[v] = { perMatrix, total };
        }
      }
      best.forEach(({ perMatrix: s, total }, v) => {
        const bytes = DECODE[v][1];
        console.log(
          `${`${K}×${N}`.padEnd(11)} ${DECODE[v][0].padEnd(17)} ${fmt(s * 1e3, 3, 10)} ${fmt((K * N * bytes) / s / 1e9)} ${fmt((K * N) / s / 1e9, 2, 9)} ${fmt(best[0].perMatrix / s, 2, 6)}×   ${fmt(total, 1, 10)}`,
        );
      });
    }
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
