#!/usr/bin/env node
/**
 * pnpm demo: make a small synthetic Llama checkpoint (once), show how tp splits it over two ranks —
 * from the checkpoint's headers alone — then generate from the same prompt with TP=2 and with TP=1
 * and check that both choose the same tokens. Exits 1 when they differ.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backend } from '@tp/backend-cpu';
import { renderPlan, visibleText } from '@tp/cli';
import { analyzeModel, initInference, openCheckpoint, planTensorParallel } from '@tp/core';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.resolve(here, '..', '.model', 'demo-llama');
const shown = path.relative(process.cwd(), dir);
const PROMPT = 'The quick brown fox';
const NEW_TOKENS = 24;

if (!existsSync(path.join(dir, 'config.json'))) {
  console.log(`demo: writing a synthetic Llama checkpoint (random weights) to ${shown}`);
  await writeTinyModel(dir, PRESETS['demo-llama'].options);
}

const ckpt = await openCheckpoint(dir);
try {
  const plan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2 });
  console.log(`demo: the tensor-parallel plan for 2 ranks (from headers alone; no weight was read)\n`);
  console.log(renderPlan(plan, shown));
} finally {
  ckpt.close();
}

/** Greedy generation of NEW_TOKENS tokens at one tp size, on the CPU backend. */
async function generate(tpSize) {
  const session = await initInference(dir, { backend, tpSize });
  try {
    const started = performance.now();
    const [result] = await session.generate([PROMPT], { maxNewTokens: NEW_TOKENS });
    const ms = performance.now() - started;
    const loads = session.load.ranks.map((r) => `rank ${r.rank} read ${(r.bytesRead / 2 ** 20).toFixed(2)} MiB`).join(', ');
    return { ...result, ms, loads };
  } finally {
    await session.dispose();
  }
}

console.log(`\ndemo: greedy generation of ${NEW_TOKENS} tokens from "${PROMPT}" on the CPU backend`);
const results = {};
for (const tp of [2, 1]) {
  const r = await generate(tp);
  results[tp] = r;
  console.log(`\nTP=${tp} (${r.loads}; ${r.tokens.length} tokens in ${r.ms.toFixed(0)} ms)`);
  console.log(`  text:   ${visibleText(PROMPT + r.text)}`);
  console.log(`  tokens: ${r.tokens.join(' ')}`);
}

console.log(
  `\ndemo: the weights are random (a synthetic checkpoint), so the text is gibberish. What matters is that` +
    `\n      TP=2 — each rank holding half of every split weight, partial results all-reduced — chooses` +
    `\n      exactly the tokens TP=1 chooses.`,
);
const same = results[2].tokens.length === results[1].tokens.length && results[2].tokens.every((t, i) => t === results[1].tokens[i]);
if (!same) {
  const at = results[2].tokens.findIndex((t, i) => t !== results[1].tokens[i]);
  console.error(`demo: FAILED — TP=2 and TP=1 differ at generated token ${at === -1 ? Math.min(results[2].tokens.length, results[1].tokens.length) : at}`);
  process.exit(1);
}
console.log(`demo: OK — TP=2 tokens == TP=1 tokens (${results[1].tokens.length} of ${results[1].tokens.length} equal).`);
console.log(`\ndemo: next, try:`);
console.log(`  pnpm tp run ${shown} --tp 2 "${PROMPT}"`);
console.log(`  pnpm tp logits ${shown} --tp 2 --text "${PROMPT}" --out logits.json`);
console.log(`  pnpm tp plan ${shown} --tp 4 --json`);
