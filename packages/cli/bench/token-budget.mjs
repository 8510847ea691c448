#!/usr/bin/env node
/**
 * Benchmark (not a test), issue 11: a step's cost follows the tokens generated, not the budget.
 * The same 200 generated tokens with maxNewTokens 256 and 1,000,000 — on a copy of the demo llama
 * whose max_position_embeddings allows a million positions, the long run stopped after 200 tokens by
 * an AbortSignal — should cost the same ms/token (within 10%). Run after `pnpm build`:
 *
 *   node packages/cli/bench/token-budget.mjs [--tp 2] [--rounds 3]
 *
 * Prints one line per budget (median decode ms/token over the rounds) and the ratio; exits 1 when the
 * two differ by more than 10%.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backend } from '@tp/backend-cpu';
import { initInference } from '@tp/core';
import { PRESETS, writeTinyModel } from '@tp/tiny-models';

const { values } = parseArgs({ options: { tp: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' } } });
const tpSize = Number(values.tp);
const rounds = Number(values.rounds);
const TOKENS = 200;
const prompt = [1, 291, 35, 408, 300];

const root = await mkdtemp(path.join(os.tmpdir(), 'tp-budget-'));
const dir = path.join(root, 'demo-llama-1m');
await writeTinyModel(dir, { ...PRESETS['demo-llama'].options, maxPositions: 1_048_576 });

/** Decode ms/token of one generation of exactly TOKENS tokens under `budget`. */
async function once(session, budget) {
  const stop = new AbortController();
  const times = [];
  const [result] = await session.generate([prompt], {
    maxNewTokens: budget,
    stopAtEos: false,
    signal: stop.signal,
    onToken: ({ step }) => {
      times.push(performance.now());
      if (step === TOKENS - 1) stop.abort();
    },
  });
  if (result.tokens.length !== TOKENS) throw new Error(`expected ${TOKENS} tokens, got ${result.tokens.length} (${result.finishReason})`);
  return (times.at(-1) - times[0]) / (TOKENS - 1);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const session = await initInference(dir, { backend, tpSize });
try {
  await once(session, 256); // warm-up
  const results = {};
  for (const budget of [256, 1_000_000]) results[budget] = [];
  // Interleaved rounds, so drift of the machine hits both budgets alike.
  for (let r = 0; r < rounds; r++) for (const budget of [256, 1_000_000]) results[budget].push(await once(session, budget));
  const small = median(results[256]);
  const large = median(results[1_000_000]);
  console.log(`tp ${tpSize}, ${TOKENS} tokens, median of ${rounds} rounds`);
  console.log(`  maxNewTokens 256:       ${small.toFixed(3)} ms/token`);
  console.log(`  maxNewTokens 1,000,000: ${large.toFixed(3)} ms/token (stopped by an AbortSignal)`);
  const ratio = large / small;
  console.log(`  ratio ${ratio.toFixed(3)} ${Math.abs(ratio - 1) <= 0.1 ? '(within 10%)' : '(MORE THAN 10% APART)'}`);
  process.exitCode = Math.abs(ratio - 1) <= 0.1 ? 0 : 1;
} finally {
  await session.dispose();
  await rm(root, { recursive: true, force: true });
}
