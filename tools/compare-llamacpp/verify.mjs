#!/usr/bin/env node
/**
 * Correctness of the GGUF conversion (and of tp against llama.cpp): the same token ids through both
 * engines, greedy, `steps` tokens each.
 *
 *   node tools/compare-llamacpp/verify.mjs [--steps 16] [--prompts 2] [--tp 1,2] [--gguf FILE] [--json]
 *
 * For every prompt (16 ids from tp's seeded generator, seeds 0, 1, ...) and every tp size it checks:
 * - the greedy tokens of tp (InferenceSession.generate, KV-cached decode) equal llama.cpp's;
 * - the logits of the last prompt position (tp: InferenceSession.logits, one forward over the prompt)
 *   against llama.cpp's first next-token distribution;
 * - the logits of every generation step (tp: generate's returnLogits) against llama.cpp's.
 * node-llama-cpp gives probabilities (a softmax of the raw logits; greedy sampling applies nothing
 * else), not logits, so both sides are compared as log-softmax: logit - logsumexp(logits). That is the
 * logit difference once the one free additive constant is removed. Reported: max |Δ| over the vocab.
 * llama.cpp runs twice: with its defaults, as benchmarked (F16 KV cache, flash attention "auto"), and
 * with an F32 KV cache and flash attention off, which isolates the conversion (only the order of f32
 * arithmetic differs). Exits 1 when a token differs or a difference exceeds the tolerance: --tolerance
 * (default 1e-4) for the F32 run, 1e-2 for the default run (F16 rounding of keys and values).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchPrompt, cliDist, coreDist, ggufFile, modelDir, rel, runNode, toolDir } from './common.mjs';
import { ensureModel, ensureGguf } from './prepare.mjs';
import { ensureNodeLlamaCpp } from './llamacpp.mjs';
import path from 'node:path';

function logSoftmax(logits) {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

function compare(ours, theirs) {
  let maxDiff = 0;
  let at = -1;
  let skipped = 0;
  for (let i = 0; i < ours.length; i++) {
    if (!Number.isFinite(theirs[i])) {
      skipped++;
      continue;
    }
    const d = Math.abs(ours[i] - theirs[i]);
    if (d > maxDiff) {
      maxDiff = d;
      at = i;
    }
  }
  return { maxDiff, at, skipped };
}

const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

/** Run the check; returns a summary object (also used by run.mjs). */
export async function verify({ steps = 16, prompts: promptCount = 2, tpSizes = [1, 2], tolerance = 1e-4, toleranceDefault = 1e-2, gguf = ggufFile, log = () => {} } = {}) {
  const core = await import(coreDist);
  // The backend object the CLI uses (`tp logits`, `tp bench`): @tp/core alone does not bundle one.
  const backend = await (await import(cliDist)).selectBackend('cpu');
  const vocab = (await core.openCheckpoint(modelDir).then((c) => (c.close(), c.config))).vocab_size;
  const prompts = Array.from({ length: promptCount }, (_, i) => benchPrompt(core.seededRandom, vocab, 16, i));

  // llama.cpp as benchmarked (its defaults: F16 KV cache, flash attention "auto"), and with an F32 KV
  // cache and no flash attention, which leaves only the arithmetic order as a difference.
  const configs = [
    { name: 'default', label: 'llama.cpp defaults (F16 KV cache, flash attention auto)', options: {}, tolerance: toleranceDefault },
    { name: 'f32-kv', label: 'F32 KV cache, flash attention off', options: { kvCacheType: 'F32', flashAttention: false }, tolerance },
  ];
  const theirs = {};
  let llamaInfo;
  for (const config of configs) {
    log(`llama.cpp (${config.label}): ${promptCount} prompts × ${steps} greedy steps with probabilities`);
    const out = JSON.parse(await runNode([path.join(toolDir, 'llamacpp-worker.mjs'), 'verify', JSON.stringify({ gguf, threads: 1, prompts, steps, vocab, ...config.options })], { prefix: '  ' }));
    llamaInfo ??= out;
    theirs[config.name] = out.results.map((r) => ({ tokens: r.tokens, logprobs: r.logprobs.map((b) => new Float64Array(Buffer.from(b, 'base64').buffer.slice(0))) }));
  }

  const checks = [];
  for (const tp of tpSizes) {
    log(`tp ${tp}: ${promptCount} prompts × ${steps} greedy steps with logits`);
    const session = await core.initInference(modelDir, { tpSize: tp, backend });
    try {
      for (let p = 0; p < prompts.length; p++) {
        const prompt = prompts[p];
        const [prefill] = await session.logits([prompt]);
        const raw = prefill.subarray((prompt.length - 1) * vocab, prompt.length * vocab);
        const last = logSoftmax(raw);
        const [gen] = await session.generate([prompt], { maxNewTokens: steps, stopAtEos: false, temperature: 0, returnLogits: true });
        const sorted = Float32Array.from(raw).sort();
        for (const config of configs) {
          const ref = theirs[config.name][p];
          const firstMismatch = gen.tokens.findIndex((t, i) => t !== ref.tokens[i]);
          const lastPos = compare(last, ref.logprobs[0]);
          // Steps after a token mismatch continue from different contexts: compare only up to it.
          const comparable = firstMismatch === -1 ? steps : firstMismatch + 1;
          let stepMax = 0;
          let stepSkipped = 0;
          for (let s = 0; s < comparable; s++) {
            const c = compare(logSoftmax(gen.stepLogits[s]), ref.logprobs[s]);
            stepMax = Math.max(stepMax, c.maxDiff);
            stepSkipped += c.skipped;
          }
          const c = {
            tp,
            llamacpp: config.name,
            prompt: p,
            prompt_ids: prompt,
            tokens_tp: gen.tokens,
            tokens_llamacpp: ref.tokens,
            tokens_match: firstMismatch === -1,
            first_mismatch: firstMismatch,
            last_position_max_abs_diff: lastPos.maxDiff,
            last_position_argmax_tp: argmax(raw),
            last_position_argmax_llamacpp: argmax(ref.logprobs[0]),
            last_position_logit_range: [sorted[0], sorted[sorted.length - 1]],
            last_position_top2_margin: sorted[sorted.length - 1] - sorted[sorted.length - 2],
            steps_compared: comparable,
            steps_max_abs_diff: stepMax,
            zero_probabilities_skipped: lastPos.skipped + stepSkipped,
            tolerance: config.tolerance,
          };
          c.ok = c.tokens_match && c.last_position_max_abs_diff <= c.tolerance && c.steps_max_abs_diff <= c.tolerance;
          checks.push(c);
          log(
            `tp ${tp} vs llama.cpp ${config.name}, prompt ${p}: tokens ${c.tokens_match ? `identical (${steps}/${steps})` : `differ from step ${firstMismatch}`}; ` +
              `max |Δ log-softmax| last prompt position ${c.last_position_max_abs_diff.toExponential(2)}, ${comparable} steps ${stepMax.toExponential(2)}`,
          );
        }
      }
    } finally {
      await session.dispose();
    }
  }
  const summarize = (name) => {
    const mine = checks.filter((c) => c.llamacpp === name);
    return {
      tokens_match: mine.every((c) => c.tokens_match),
      max_last_position_abs_diff: Math.max(...mine.map((c) => c.last_position_max_abs_diff)),
      max_step_abs_diff: Math.max(...mine.map((c) => c.steps_max_abs_diff)),
      tolerance: configs.find((c) => c.name === name).tolerance,
    };
  };
  return {
    ok: checks.every((c) => c.ok),
    steps,
    prompts: promptCount,
    tp_sizes: tpSizes,
    configs: configs.map(({ name, label, options, tolerance: t }) => ({ name, label, options, tolerance: t, ...summarize(name) })),
    llamacpp: { threads: llamaInfo.threads, versions: llamaInfo.versions },
    checks,
  };
}

export function verifyTable(summary) {
  const lines = ['tp  llama.cpp KV cache        prompt  greedy tokens  max |Δ| last prompt pos.  max |Δ| all steps  tolerance  top-2 margin'];
  lines.push('──  ────────────────────────  ──────  ─────────────  ────────────────────────  ─────────────────  ─────────  ────────────');
  const kv = { default: 'F16, flash attn auto', 'f32-kv': 'F32, flash attn off' };
  for (const c of summary.checks) {
    const tokens = c.tokens_match ? `same ${c.steps_compared}/${summary.steps}` : `differ @${c.first_mismatch}`;
    lines.push(
      `${String(c.tp).padStart(2)}  ${(kv[c.llamacpp] ?? c.llamacpp).padEnd(24)}  ${String(c.prompt).padStart(6)}  ${tokens.padEnd(13)}  ${c.last_position_max_abs_diff.toExponential(2).padStart(24)}  ${c.steps_max_abs_diff.toExponential(2).padStart(17)}  ${c.tolerance.toExponential(0).padStart(9)}  ${c.last_position_top2_margin.toFixed(4).padStart(12)}`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(toolDir, 'verify.mjs')) {
  const { values } = parseArgs({ options: { steps: { type: 'string' }, prompts: { type: 'string' }, tp: { type: 'string' }, gguf: { type: 'string' }, tolerance: { type: 'string' }, json: { type: 'boolean' } } });
  const say = (t) => console.error(`verify: ${t}`);
  await ensureModel({ log: say });
  ensureNodeLlamaCpp({ log: say });
  await ensureGguf({ log: say });
  if (!existsSync(ggufFile)) throw new Error(`${rel(ggufFile)} is missing`);
  const summary = await verify({
    steps: values.steps ? Number(values.steps) : 16,
    prompts: values.prompts ? Number(values.prompts) : 2,
    tpSizes: values.tp ? values.tp.split(',').map(Number) : [1, 2],
    ...(values.tolerance ? { tolerance: Number(values.tolerance) } : {}),
    ...(values.gguf ? { gguf: path.resolve(values.gguf) } : {}),
    log: say,
  });
  if (values.json) console.log(JSON.stringify(summary));
  else console.log(`\n${verifyTable(summary)}\n\n${summary.ok ? 'verify: ok' : 'verify: FAILED'}`);
  process.exitCode = summary.ok ? 0 : 1;
}
