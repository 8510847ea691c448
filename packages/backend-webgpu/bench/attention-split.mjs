#!/usr/bin/env node
/**
 * Attention alone, unsplit and split over the keys (flash-decoding), on the first adapter: one decode
 * row per sequence against a cache of `keys` keys, for several head counts, timed over `--calls`
 * calls recorded in one step (one readback at the end), the piece counts interleaved round by round.
 * Measures what the split policy of src/kernels/attention-split.ts assumes.
 *
 *   node packages/backend-webgpu/bench/attention-split.mjs [--keys 512,2048,8192] [--heads 2,8,32] [--splits 1,2,4,8] [--kv f32,f16,f16p,bf16] [--head-dim 64] [--calls 20] [--rounds 3] [--out file.md]
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
const list = (name, fallback) => option(name, fallback).split(',').map(Number);
const keysList = list('keys', '512,2048,8192');
const headsList = list('heads', '2,8,32');
const splitsList = list('splits', '1,2,4,8');
const calls = Number(option('calls', '20'));
const rounds = Number(option('rounds', '3'));
// KV dtypes: f32, f16, bf16, and f16p (f16 on a device opened without shader-f16: read unpacked from u32).
const kvList = option('kv', 'f32').split(',');
const headDim = Number(option('head-dim', '64'));
const out = option('out', undefined);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const random = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233));
const rankWith = (options) => backend.createRank({ rank: 0, world: 1, communicator: createHostCollectiveInit(1, 1024, 60_000), options });

/** A cache of `keys` keys (the last slot left for the decode row) and the call that times one round. */
async function prepare(rank, heads, keys, kv) {
  const spec = { heads, kvHeads: heads, headDim, valueDim: headDim, scale: 1 / Math.sqrt(headDim), mask: 'causal' };
  const cache = rank.createKvCache(1, heads, headDim, headDim, kv === 'f16p' ? 'f16' : kv);
  rank.beginStep();
  const kvRows = keys - 1;
  rank.fillKvCache(cache, rank.upload(hostTensor(random(kvRows * heads * headDim, 1), [kvRows, heads * headDim])), rank.upload(hostTensor(random(kvRows * heads * headDim, 2), [kvRows, heads * headDim])), 1, kvRows);
  await rank.endStep();
  const q = random(heads * headDim, 3);
  /** ms per call over `calls` decode rows recorded in one step, each at the same slot (so each sees `keys` keys). */
  const round = async () => {
    rank.beginStep();
    const mask = rank.upload(hostTensor(new Int32Array(keys).fill(1), [1, keys]));
    const k = rank.upload(hostTensor(random(heads * headDim, 4), [1, heads * headDim]));
    const qt = rank.upload(hostTensor(q, [1, heads * headDim]));
    const started = performance.now();
    let y;
    for (let c = 0; c < calls; c++) y = rank.attention(qt, k, k, cache, { batch: 1, rows: 1, start: kvRows, keyMask: mask }, spec);
    await rank.download(y);
    await rank.endStep();
    return (performance.now() - started) / calls;
  };
  return { round, done: () => rank.freeKvCache(cache) };
}

const device = (await listDevices())[0]?.adapter;
const columns = kvList.flatMap((kv) => splitsList.map((splits) => ({ kv, splits })));
const lines = [
  `attention, one decode row, headDim ${headDim} · ${device?.description ?? 'unknown adapter'} · median of ${rounds} interleaved rounds of ${calls} calls (ms per call)`,
  `${os.cpus()[0]?.model} × ${os.availableParallelism()} · Node ${process.versions.node} · load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  '',
  `| heads | keys | ${columns.map(({ kv, splits }) => `${kv} ${splits === 1 ? 'unsplit' : `${splits} pieces`}`).join(' | ')} |`,
  `| -- | -- | ${columns.map(() => '--').join(' | ')} |`,
];
// One rank per KV dtype and piece count (unsplit: pieces of more keys than the cache holds); they alternate
// round by round, so that load from other processes falls on all of them alike.
for (const heads of headsList) {
  for (const keys of keysList) {
    const runs = [];
    for (const { kv, splits } of columns) {
      const rank = await rankWith({ attentionSplitKeys: splits === 1 ? keys + 1 : Math.ceil(keys / splits), ...(kv === 'f16p' ? { disableFeatures: ['shader-f16'] } : {}) });
      runs.push({ rank, ...(await prepare(rank, heads, keys, kv)), samples: [] });
    }
    try {
      for (let r = 0; r < rounds + 1; r++) {
        for (const run of runs) {
          const ms = await run.round();
          if (r > 0) run.samples.push(ms); // round 0 compiles and warms up
        }
      }
    } finally {
      for (const run of runs) {
        run.done();
        await run.rank.dispose();
      }
    }
    lines.push(`| ${heads} | ${keys} | ${runs.map((run) => median(run.samples).toFixed(3)).join(' | ')} |`);
    console.error(lines.at(-1));
  }
}
const text = lines.join('\n');
console.log(text);
if (out) await writeFile(out, `${text}\n\nCommand: node packages/backend-webgpu/bench/attention-split.mjs ${args.join(' ')}\n`);
