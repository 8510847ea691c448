#!/usr/bin/env node
/**
 * The WebGPU backend's benchmark (not a test): decode and prefill through the engine, and the cost of
 * one host-staged collective.
 *
 *   node packages/backend-webgpu/bench/bench.mjs [model-dir] [--tp 1,2] [--prompt 16] [--new 32] [--runs 3] [--kv f32] [--out file.md]
 *
 * Without a model folder it writes the demo llama (tools/tiny-models preset demo-llama) to a temporary
 * folder. For each tp size: one warm-up generation, then `--runs` greedy generations of `--new` tokens
 * from a `--prompt`-token prompt; prefill is the time to the first token, decode the time per token
 * after it (medians). Then a profiled session (backendOptions.profileDir: each rank writes its counters
 * on dispose) decodes from a one-token prompt: kernels dispatched and submissions per token, and per
 * collective the kernels it waits for, the readback, the host exchange and the upload. Last, two worker
 * threads, each with its own device, time `--collectives` all-reduces of one hidden-sized row with an
 * idle GPU. `--kv` is the sessions' KV-cache dtype (f16, bf16 or f32). To compare builds or settings
 * on a shared machine, interleaved, use compare.mjs; kernels alone: attention-split.mjs and gemv.mjs.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { initInference } from '@tp/core';
import { benchModel, median, optionReader } from './common.mjs';
import { backend, listDevices } from '../dist/index.js';

const args = process.argv.slice(2);
const option = optionReader(args);
const tpSizes = option('tp', '1,2').split(',').map(Number);
const promptLength = Number(option('prompt', '16'));
const newTokens = Number(option('new', '32'));
const runs = Number(option('runs', '3'));
const collectives = Number(option('collectives', '200'));
const out = option('out', undefined);
const kvDtype = option('kv', 'f32');
const say = (text) => console.error(`bench:webgpu: ${text}`);

const temp = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-bench-'));
try {
  const modelDir = await benchModel(args[0], temp);
  const config = JSON.parse(await readFile(path.join(modelDir, 'config.json'), 'utf8'));
  const hidden = config.hidden_size ?? config.n_embd ?? 256;
  const device = (await listDevices())[0]?.adapter;
  const lines = [];
  const row = (cells) => lines.push(`| ${cells.join(' | ')} |`);
  lines.push(`${path.basename(modelDir)} · webgpu on ${device?.description ?? 'unknown adapter'} (${device?.vendor}, ${device?.architecture}) · prompt ${promptLength} · ${newTokens} new tokens · ${kvDtype} KV cache · median of ${runs}`);
  lines.push(`${os.cpus()[0]?.model} × ${os.availableParallelism()} · Node ${process.versions.node} · load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`, '');
  row(['tp', 'prefill ms', 'decode ms/token', 'tokens/s', 'kernels/token', 'submits/token', 'collectives/token', 'kernels before collectives ms', 'readback ms', 'host exchange ms', 'upload ms']);
  row(Array(11).fill('--'));
  const prompt = [Array.from({ length: promptLength }, (_, i) => 1 + ((i * 37) % Math.max(2, (config.vocab_size ?? 256) - 1)))];
  for (const tp of tpSizes) {
    say(`tp ${tp}: loading`);
    const session = await initInference(modelDir, { backend, tpSize: tp, kvDtype });
    await session.generate(prompt, { maxNewTokens: 4, stopAtEos: false });
    const prefills = [];
    const decodes = [];
    for (let r = 0; r < runs; r++) {
      const stamps = [];
      const started = performance.now();
      await session.generate(prompt, { maxNewTokens: newTokens, stopAtEos: false, onToken: () => stamps.push(performance.now()) });
      prefills.push(stamps[0] - started);
      decodes.push((stamps.at(-1) - stamps[0]) / (stamps.length - 1));
      say(`tp ${tp}: run ${r + 1}: prefill ${prefills.at(-1).toFixed(1)} ms, decode ${decodes.at(-1).toFixed(2)} ms/token`);
    }
    await session.dispose();
    // The breakdown, from a second session whose ranks time their collectives (profileDir): a one-token
    // prompt, so every step is a decode step; rank 0's counters divided by the steps.
    const profileDir = await mkdtemp(path.join(temp, `tp${tp}-`));
    const profiled = await initInference(modelDir, { backend, tpSize: tp, kvDtype, backendOptions: { profileDir } });
    await profiled.generate([prompt[0].slice(0, 1)], { maxNewTokens: newTokens, stopAtEos: false });
    await profiled.dispose();
    const stats = JSON.parse(await readFile(path.join(profileDir, 'rank-0.json'), 'utf8'));
    const c = stats.collectives;
    const per = (x) => (x / newTokens).toFixed(2);
    row([tp, median(prefills).toFixed(1), median(decodes).toFixed(2), (1000 / median(decodes)).toFixed(1), per(stats.dispatches), per(stats.submits), per(c.calls), per(c.kernelMs), per(c.readMs), per(c.hostMs), per(c.writeMs)]);
  }
  lines.push(
    '',
    'The last four columns are per decode token, from rank 0 of a profiled run (one-token prompt) whose collectives first wait for the kernels recorded before them (timed apart), then read back, exchange through shared memory (the barrier included: waiting for the slower rank) and upload.',
    '',
  );
  say(`collective cost: 2 ranks, ${collectives} all-reduces of [1, ${hidden}]`);
  const cost = await collectiveCost(hidden, collectives);
  lines.push(`One all-reduce of [1, ${hidden}] f32 between 2 ranks with an idle GPU (mean of ${collectives}, rank 0): readback ${cost.readMs.toFixed(3)} ms, host exchange ${cost.hostMs.toFixed(3)} ms, upload ${cost.writeMs.toFixed(3)} ms, total ${(cost.readMs + cost.hostMs + cost.writeMs).toFixed(3)} ms.`);
  const text = lines.join('\n');
  console.log(text);
  if (out) await writeFile(out, `${text}\n\nCommand: node packages/backend-webgpu/bench/bench.mjs ${process.argv.slice(2).join(' ')}\n`);
} finally {
  await rm(temp, { recursive: true, force: true });
}

/** Two worker threads, a device each, `n` all-reduces of [1, hidden]: rank 0's mean times. */
async function collectiveCost(hidden, n) {
  const communicator = backend.createCommunicator(2, { timeoutMs: 30_000 });
  const script = fileURLToPath(new URL('./collective-worker.mjs', import.meta.url));
  const workers = [0, 1].map((rank) => new Worker(script, { workerData: { rank, communicator, hidden, n } }));
  const results = await Promise.all(workers.map((w) => new Promise((resolve, reject) => (w.once('message', resolve), w.once('error', reject)))));
  const t = results[0];
  return { readMs: t.readMs / t.calls, hostMs: t.hostMs / t.calls, writeMs: t.writeMs / t.calls };
}
