#!/usr/bin/env node
/**
 * pnpm demo: make a small synthetic Llama checkpoint (once), then show how tp splits it over two
 * ranks — all from the checkpoint's headers.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderPlan } from '@tp/cli';
import { analyzeModel, openCheckpoint, planTensorParallel } from '@tp/core';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.resolve(here, '..', '.model', 'demo-llama');

if (!existsSync(path.join(dir, 'config.json'))) {
  console.log(`demo: writing a synthetic Llama checkpoint (random weights) to ${path.relative(process.cwd(), dir)}`);
  await writeTinyModel(dir, PRESETS['demo-llama'].options);
}

const ckpt = await openCheckpoint(dir);
try {
  const plan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2 });
  console.log(`demo: the tensor-parallel plan for 2 ranks (from headers alone; no weight was read)\n`);
  console.log(renderPlan(plan, path.relative(process.cwd(), dir)));
  console.log(`\ndemo: try "pnpm tp plan ${path.relative(process.cwd(), dir)} --tp 4 --json" for the whole plan as JSON.`);
} finally {
  ckpt.close();
}
