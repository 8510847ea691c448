#!/usr/bin/env node
/**
 * The T5 demo (`pnpm --filter @tp/demo t5`): the example AutoTP is known by — a T5
 * text2text-generation pipeline split over devices with no injection policy — on a small synthetic
 * T5 v1.1 checkpoint (written once). It shows how tp splits the encoder, the decoder and its
 * cross-attention over two ranks, then runs the pipeline at TP=2 and TP=1 and checks that both give
 * the same text and tokens. Exits 1 when they differ.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backend } from '@tp/backend-cpu';
import { visibleText } from '@tp/cli';
import { analyzeModel, openCheckpoint, pipeline, planTensorParallel } from '@tp/core';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.resolve(here, '..', '.model', 'demo-t5');
const shown = path.relative(process.cwd(), dir);
const INPUT = 'translate English to German: The house is wonderful.';
const NEW_TOKENS = 20;

if (!existsSync(path.join(dir, 'config.json'))) {
  console.log(`demo-t5: writing a synthetic T5 v1.1 checkpoint (random weights) to ${shown}`);
  await writeTinyModel(dir, PRESETS['demo-t5'].options);
}

const ckpt = await openCheckpoint(dir);
try {
  const plan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2 });
  console.log(`demo-t5: the plan for 2 ranks, from the headers alone`);
  for (const a of plan.attention) {
    console.log(`  attention (${a.group}): ${a.heads} heads — ${a.ranks.map((r, i) => `rank ${i}: heads ${r.q[0]}-${r.q[1] - 1}`).join(' · ')}`);
  }
  for (const { block, after } of plan.allReduces) console.log(`  collectives in ${block}: ${after.join(', ')}`);
  const bias = plan.tensors.find((t) => t.role === 'rel_bias');
  if (bias) console.log(`  ${bias.name}: ${bias.split} (dim ${bias.dim}) — each rank keeps its own heads' columns`);
} finally {
  ckpt.close();
}

console.log(`\ndemo-t5: pipeline('text2text-generation', dir, { tpSize }) on "${INPUT}", ${NEW_TOKENS} new tokens`);
const results = {};
for (const tpSize of [2, 1]) {
  const t2t = await pipeline('text2text-generation', dir, { tpSize, backend });
  try {
    const started = performance.now();
    const [out] = await t2t(INPUT, { max_new_tokens: NEW_TOKENS });
    const [gen] = await t2t.session.generate([INPUT], { maxNewTokens: NEW_TOKENS });
    results[tpSize] = { text: out.generated_text, tokens: gen.tokens };
    console.log(`\nTP=${tpSize} (${(performance.now() - started).toFixed(0)} ms)`);
    console.log(`  generated_text: ${visibleText(out.generated_text)}`);
    console.log(`  tokens:         ${gen.tokens.join(' ')}`);
  } finally {
    await t2t.dispose();
  }
}

const same = results[2].text === results[1].text && results[2].tokens.join() === results[1].tokens.join();
if (!same) {
  console.error('demo-t5: FAILED — TP=2 and TP=1 differ');
  process.exit(1);
}
console.log(`\ndemo-t5: OK — TP=2 == TP=1 (random weights, so the text is gibberish; the split is what is shown).`);
console.log(`  pnpm tp run ${shown} --tp 2 "${INPUT}"`);
