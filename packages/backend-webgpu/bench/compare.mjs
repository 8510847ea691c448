#!/usr/bin/env node
/**
 * Decode speed of several builds or settings of the WebGPU backend, interleaved: for each tp size every
 * variant keeps a session open, and each round runs one greedy generation per variant in turn, so that
 * load from other processes on a shared machine falls on all of them alike. Reports the median decode
 * ms/token (time per token after the first) and prefill ms per variant, with the load average.
 *
 *   node packages/backend-webgpu/bench/compare.mjs [model-dir] --variant NAME=DIST[:kv=f16][:split=64][:subgroups=true][:nof16] ...
 *        [--tp 1,2] [--prompt 16] [--new 32] [--rounds 5] [--out file.md]
 *
 * DIST is a built dist/index.js of this package ("new" means ../dist/index.js), so a copy of an
 * earlier build can run against the current one; kv sets the session's kvDtype, split
 * backendOptions.attentionSplitKeys, subgroups backendOptions.gemvSubgroups, nof16 opens the devices
 * without shader-f16 (f16 read unpacked from u32). Without a model folder it
 * writes the demo llama (tools/tiny-models preset demo-llama) to a temporary folder.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { initInference } from '@tp/core';
import { benchModel, median, optionReader } from './common.mjs';

const args = process.argv.slice(2);
const variants = [];
const option = optionReader(args);
for (let i = args.indexOf('--variant'); i >= 0; i = args.indexOf('--variant')) {
  const [spec] = args.splice(i, 2).slice(1);
  const [head, ...settings] = spec.split(':');
  const [name, dist] = head.split('=');
  const set = Object.fromEntries(settings.map((s) => s.split('=')));
  variants.push({ name, dist, kv: set.kv ?? 'f32', split: set.split === undefined ? undefined : Number(set.split), subgroups: set.subgroups === undefined ? undefined : set.subgroups === 'true', noF16: 'nof16' in set });
}
const tpSizes = option('tp', '1,2').split(',').map(Number);
const promptLength = Number(option('prompt', '16'));
const newTokens = Number(option('new', '32'));
const rounds = Number(option('rounds', '5'));
const out = option('out', undefined);
if (variants.length === 0) throw new Error('name at least one --variant NAME=DIST');
const say = (text) => console.error(`bench:compare: ${text}`);
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

const temp = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-compare-'));
try {
  const modelDir = await benchModel(args[0], temp);
  const config = JSON.parse(await readFile(path.join(modelDir, 'config.json'), 'utf8'));
  for (const v of variants) {
    const url = v.dist === 'new' ? new URL('../dist/index.js', import.meta.url).href : pathToFileURL(path.resolve(v.dist)).href;
    v.backend = (await import(url)).backend;
  }
  const prompt = [Array.from({ length: promptLength }, (_, i) => 1 + ((i * 37) % Math.max(2, (config.vocab_size ?? 256) - 1)))];
  const lines = [
    `${path.basename(modelDir)} · webgpu · prompt ${promptLength} · ${newTokens} new tokens · ${rounds} interleaved rounds, medians`,
    `${os.cpus()[0]?.model} × ${os.availableParallelism()} · Node ${process.versions.node} · load average at start ${load()}`,
    '',
    '| tp | variant | kv | prefill ms | decode ms/token | decode ms/token per round |',
    '| -- | -- | -- | -- | -- | -- |',
  ];
  for (const tp of tpSizes) {
    const sessions = [];
    for (const v of variants) {
      const backendOptions = {
        ...(v.split !== undefined ? { attentionSplitKeys: v.split } : {}),
        ...(v.subgroups !== undefined ? { gemvSubgroups: v.subgroups } : {}),
        ...(v.noF16 ? { disableFeatures: ['shader-f16'] } : {}),
      };
      const session = await initInference(modelDir, { backend: v.backend, tpSize: tp, kvDtype: v.kv, backendOptions });
      await session.generate(prompt, { maxNewTokens: 4, stopAtEos: false });
      sessions.push({ v, session, prefills: [], decodes: [] });
    }
    for (let r = 0; r < rounds; r++) {
      for (const s of sessions) {
        const stamps = [];
        const started = performance.now();
        await s.session.generate(prompt, { maxNewTokens: newTokens, stopAtEos: false, onToken: () => stamps.push(performance.now()) });
        s.prefills.push(stamps[0] - started);
        s.decodes.push((stamps.at(-1) - stamps[0]) / (stamps.length - 1));
      }
      say(`tp ${tp} round ${r + 1}: ${sessions.map((s) => `${s.v.name} ${s.decodes.at(-1).toFixed(2)}`).join(', ')} ms/token (load ${load()})`);
    }
    for (const s of sessions) {
      await s.session.dispose();
      lines.push(`| ${tp} | ${s.v.name} | ${s.v.kv} | ${median(s.prefills).toFixed(1)} | ${median(s.decodes).toFixed(2)} | ${s.decodes.map((d) => d.toFixed(2)).join(' ')} |`);
    }
  }
  lines.push('', `Load average at the end: ${load()}.`);
  const text = lines.join('\n');
  console.log(text);
  if (out) await writeFile(out, `${text}\n\nCommand: node packages/backend-webgpu/bench/compare.mjs ${process.argv.slice(2).join(' ')}\n`);
} finally {
  await rm(temp, { recursive: true, force: true });
}
