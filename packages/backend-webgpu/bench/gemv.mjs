#!/usr/bin/env node
/**
 * The decode GEMV alone (y = x·wᵀ, one row of x), with and without subgroup reductions
 * (backendOptions.gemvSubgroups), on the first adapter: `--calls` products recorded in one step, one
 * readback, median of `--rounds` rounds; the two kernels alternate round by round, so that load from
 * other processes falls on both alike.
 *
 *   node packages/backend-webgpu/bench/gemv.mjs [--shapes 256x256,512x256,256x512,2048x2048] [--dtype f32] [--calls 50] [--rounds 7] [--out file.md]
 */
import os from 'node:os';
import { writeFile } from 'node:fs/promises';
import { createHostCollectiveInit, hostTensor } from '@tp/core';
import { backend, listDevices } from '../dist/index.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? fallback : args[i + 1];
};
const shapes = option('shapes', '256x256,512x256,256x512,2048x2048').split(',').map((s) => s.split('x').map(Number));
const dtype = option('dtype', 'f32');
const calls = Number(option('calls', '50'));
const rounds = Number(option('rounds', '7'));
const out = option('out', undefined);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const random = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233));
const rankWith = (options) => backend.createRank({ rank: 0, world: 1, communicator: createHostCollectiveInit(1, 1024, 60_000), options });

const ranks = { plain: await rankWith({ gemvSubgroups: false }), subgroups: await rankWith({ gemvSubgroups: true }) };
const device = (await listDevices())[0]?.adapter;
const lines = [
  `decode GEMV, ${dtype} weights · ${device?.description ?? 'unknown adapter'} (subgroup sizes ${device?.subgroupMinSize ?? '?'}–${device?.subgroupMaxSize ?? '?'}) · median of ${rounds} rounds of ${calls} products`,
  `${os.cpus()[0]?.model} × ${os.availableParallelism()} · Node ${process.versions.node} · load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  '',
  '| N × K | plain ms | subgroups ms | max \\|plain − subgroups\\| / max \\|y\\| |',
  '| -- | -- | -- | -- |',
];
try {
  for (const [N, K] of shapes) {
    const times = { plain: [], subgroups: [] };
    const results = {};
    const weights = {};
    for (const [name, rank] of Object.entries(ranks)) {
      const w = random(N * K, 1);
      weights[name] = rank.upload(hostTensor(w, [N, K]), dtype);
    }
    for (let r = 0; r < rounds + 1; r++) {
      for (const [name, rank] of Object.entries(ranks)) {
        rank.beginStep();
        const x = rank.upload(hostTensor(random(K, 2), [1, K]));
        const started = performance.now();
        let y;
        for (let c = 0; c < calls; c++) y = rank.linear(x, weights[name]);
        results[name] = await rank.download(y);
        await rank.endStep();
        if (r > 0) times[name].push((performance.now() - started) / calls);
      }
    }
    const diff = results.plain.reduce((m, v, i) => Math.max(m, Math.abs(v - results.subgroups[i])), 0);
    const top = results.plain.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    lines.push(`| ${N} × ${K} | ${median(times.plain).toFixed(3)} | ${median(times.subgroups).toFixed(3)} | ${(diff / top).toExponential(1)} |`);
    console.error(lines.at(-1));
    for (const [name, rank] of Object.entries(ranks)) rank.free(weights[name]);
  }
} finally {
  for (const rank of Object.values(ranks)) await rank.dispose();
}
const text = lines.join('\n');
console.log(text);
if (out) await writeFile(out, `${text}\n\nCommand: node packages/backend-webgpu/bench/gemv.mjs ${args.join(' ')}\n`);
