/**
 * The decoder golden checkpoints (Hugging Face transformers' logits) on the backend under test:
 * TP=1 logits and greedy tokens in f32, bf16 storage against an f32 computation on the same rounded
 * weights (the CPU backend), and TP=2 on one GPU against TP=1 — with the in-process collective, and
 * with NCCL when it allows two ranks per GPU.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { initInference } from '@tp/core';
import { backend as cpu } from '@tp/backend-cpu';
import { concat, fmt, relativeError } from './report.mjs';

/** Every decoder family the engine runs (packages/backend-cpu/test/golden.test.ts). */
export const FAMILIES = [
  'llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'phi3', 'mixtral', 'qwen2_moe', 'gpt_neox', 'opt', 'bloom',
  'falcon', 'falcon_new_arch', 'gptj', 'gpt_neo', 'gpt2', 'openai-gpt', 'gpt_bigcode', 'mpt', 'phi', 'codegen', 'xglm',
];
/** --quick: rotary + GQA, MoE, ALiBi, Conv1D, parallel attention, sliding window. */
export const QUICK = ['llama', 'mixtral', 'bloom', 'gpt2', 'falcon', 'mistral'];

export const GOLDEN_TOL = 1e-4;
export const TP_TOL = 1e-5;
export const BF16_TOL = 1e-4;

const readGolden = (dir, family) => JSON.parse(readFileSync(path.join(dir, family, 'golden.json'), 'utf8'));

async function run(dir, options, body) {
  const session = await initInference(dir, { collectiveTimeoutMs: 60_000, ...options });
  try {
    return await body(session);
  } finally {
    await session.dispose();
  }
}

/** Logits at every position and the greedy continuation (with the logits that chose each token). */
async function outputs(dir, g, options) {
  return run(dir, options, async (s) => ({
    logits: concat(await s.logits(g.input_ids)),
    greedy: await s.generate(g.input_ids, { maxNewTokens: 8, stopAtEos: false, returnLogits: true }),
  }));
}

/**
 * Run every family; one result per family and check. `backend` is the backend under test; `tp2Modes`
 * the collective modes to run TP=2 with (environment TP_CUDA_COLLECTIVE).
 */
export async function goldenChecks({ goldenDir, families, backend, tp2Modes, log }) {
  const results = { f32: [], greedy: [], bf16: [], tp2: new Map(tp2Modes.map((m) => [m, []])) };
  for (const family of families) {
    const dir = path.join(goldenDir, family);
    if (!existsSync(path.join(dir, 'golden.json'))) {
      results.f32.push({ family, error: `no golden checkpoint at ${dir}` });
      continue;
    }
    const g = readGolden(goldenDir, family);
    const expected = Float32Array.from(g.logits.flat(2));
    let tp1;
    try {
      tp1 = await outputs(dir, g, { backend, tpSize: 1, dtype: 'f32' });
      const err = relativeError(tp1.logits, expected);
      results.f32.push({ family, err, ok: err <= GOLDEN_TOL });
      const tokens = tp1.greedy.map((r) => r.tokens);
      const same = JSON.stringify(tokens) === JSON.stringify(g.greedy.new_tokens);
      const stepErr = Math.max(...tp1.greedy.map((r, b) => relativeError(concat(r.stepLogits), Float32Array.from(g.greedy.step_logits[b].flat()))));
      results.greedy.push({ family, ok: same && stepErr <= GOLDEN_TOL, err: stepErr, detail: same ? '' : `tokens ${JSON.stringify(tokens)} ≠ ${JSON.stringify(g.greedy.new_tokens)}` });
    } catch (error) {
      results.f32.push({ family, error: error.message });
      log(`${family}: ${error.stack ?? error.message}`);
      continue;
    }
    try {
      const mine = await run(dir, { backend, tpSize: 1, dtype: 'bf16' }, (s) => s.logits(g.input_ids));
      const reference = await run(dir, { backend: cpu, tpSize: 1, dtype: 'bf16' }, (s) => s.logits(g.input_ids));
      const err = relativeError(concat(mine), concat(reference));
      results.bf16.push({ family, err, ok: err <= BF16_TOL });
    } catch (error) {
      results.bf16.push({ family, error: error.message });
      log(`${family} bf16: ${error.stack ?? error.message}`);
    }
    for (const mode of tp2Modes) {
      const previous = process.env.TP_CUDA_COLLECTIVE;
      process.env.TP_CUDA_COLLECTIVE = mode;
      try {
        const tp2 = await run(dir, { backend, tpSize: 2, dtype: 'f32' }, (s) => s.logits(g.input_ids));
        const err = relativeError(concat(tp2), tp1.logits);
        results.tp2.get(mode).push({ family, err, ok: err <= TP_TOL });
      } catch (error) {
        results.tp2.get(mode).push({ family, error: error.message });
        log(`${family} TP=2 ${mode}: ${error.stack ?? error.message}`);
      } finally {
        if (previous === undefined) delete process.env.TP_CUDA_COLLECTIVE;
        else process.env.TP_CUDA_COLLECTIVE = previous;
      }
    }
  }
  return results;
}

/** One table row from per-family results. */
export function summarize(list, tol) {
  const failed = list.filter((r) => !r.ok);
  const worst = list.filter((r) => r.err !== undefined).reduce((w, r) => (r.err > w.err ? r : w), { err: 0, family: '-' });
  const text = `${list.length - failed.length}/${list.length} families, worst ${fmt(worst.err)} of the spread (${worst.family}; tolerance ${tol})`;
  const problems = failed.map((r) => `${r.family}: ${r.error ?? r.detail ?? `error ${fmt(r.err)}`}`);
  return { ok: failed.length === 0 && list.length > 0, text: problems.length ? `${text}; ${problems.slice(0, 4).join('; ')}` : text };
}
