#!/usr/bin/env node
/**
 * Correctness of the GGUF conversion (and of tp against llama.cpp): the same token ids through both
 * engines, greedy, `steps` tokens each.
 *
 *   node tools/compare-llamacpp/verify.mjs [--dtype f32|bf16|f16|all] [--steps 16] [--prompts 2] [--tp 1,2] [--model DIR --gguf FILE] [--json]
 *
 * --dtype picks the checkpoint variant tp reads (.cache/models/bench-llama-134m[-bf16|-f16]) and its GGUF
 * (.cache/llamacpp/models/bench-llama-134m-<dtype>.gguf, 2-D weights in that type, norms F32); both are
 * written first when missing. --model/--gguf check another pair.
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
 * with an F32 KV cache and flash attention off, which isolates the conversion. For bf16 and f16 a third
 * run reads the same checkpoint converted to an F32 GGUF (`-as-f32`: the rounded values, widened
 * exactly) with an F32 KV cache: llama.cpp then multiplies in f32 like tp, which checks the conversion
 * of the half-precision checkpoint at f32's tolerance. Exits 1 when
 * - in an F32 KV cache run, a greedy token differs;
 * - in the defaults run, a greedy token differs other than as a near-tie. A near-tie: at the first
 *   differing step, tp's margin between its token and llama.cpp's is at most twice the max |Δ| measured
 *   at that step, and that |Δ| is within the tolerance (a difference that small explains the flip). Steps
 *   after it are not compared (other contexts);
 * - a |Δ| exceeds the tolerance of its run (TOLERANCES, per weight type; --tolerance for the F32 KV run,
 *   --tolerance-default for the defaults run; the -as-f32 run always uses f32's 1e-4).
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { benchPrompt, cliDist, coreDist, ggufFileFor, modelDirFor, parseDtypes, rel, runNode, toolDir } from './common.mjs';
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

/**
 * Tolerances on max |Δ log-softmax| per weight type: [F32 KV cache run, llama.cpp defaults run].
 * f32: only the order of f32 arithmetic differs (1e-4), plus F16 keys and values in the default run.
 * bf16, f16: tp computes in f32 on the rounded weights (widening is exact), but ggml's CPU matmul for
 * BF16/F16 weights first rounds the activations to BF16/F16 (vec_dot_type in ggml-cpu.c), so every
 * product sees a second rounding tp does not make: about 2^-9 relative error per activation for BF16,
 * 2^-12 for F16, which shows in the logits (TOLERANCE_NOTE).
 */
export const TOLERANCES = Object.freeze({ f32: [1e-4, 1e-2], bf16: [1e-1, 1e-1], f16: [2e-2, 2e-2] });
export const TOLERANCE_NOTE = {
  f32: 'F32 weights: only the order of f32 arithmetic differs with an F32 KV cache',
  bf16: "BF16 weights: ggml's CPU matmul rounds the activations to BF16 before each dot product (tp keeps them f32)",
  f16: "F16 weights: ggml's CPU matmul rounds the activations to F16 before each dot product (tp keeps them f32)",
};

/** Run the check; returns a summary object (also used by run.mjs). */
export async function verify({ dtype = 'f32', steps = 16, prompts: promptCount = 2, tpSizes = [1, 2], tolerance, toleranceDefault, modelDir = modelDirFor(dtype), gguf = ggufFileFor(dtype), widenedGguf, log = () => {} } = {}) {
  tolerance ??= TOLERANCES[dtype][0];
  toleranceDefault ??= TOLERANCES[dtype][1];
  // Half-precision weights: also the same checkpoint as an F32 GGUF (the rounded values, widened
  // exactly), which llama.cpp multiplies in f32 like tp — the conversion alone, at f32's tolerance.
  if (dtype !== 'f32' && widenedGguf === undefined && gguf === ggufFileFor(dtype) && modelDir === modelDirFor(dtype)) {
    widenedGguf = (await ensureGguf({ dtype, outtype: 'f32', log })).file;
  }
  const core = await import(coreDist);
  // The backend object the CLI uses (`tp logits`, `tp bench`): @tp/core alone does not bundle one.
  const backend = await (await import(cliDist)).selectBackend('cpu');
  const vocab = (await core.openCheckpoint(modelDir).then((c) => (c.close(), c.config))).vocab_size;
  const prompts = Array.from({ length: promptCount }, (_, i) => benchPrompt(core.seededRandom, vocab, 16, i));

  // llama.cpp as benchmarked (its defaults: F16 KV cache, flash attention "auto"), and with an F32 KV
  // cache and no flash attention, which leaves only the arithmetic order as a difference.
  const configs = [
    // allowTies: with F16 keys and values a greedy choice between two tokens closer than the measured
    // logit difference may flip (a near-tie); the F32 run, which checks the conversion, must match exactly.
    { name: 'default', label: 'llama.cpp defaults (F16 KV cache, flash attention auto)', options: {}, tolerance: toleranceDefault, allowTies: true },
    { name: 'f32-kv', label: 'F32 KV cache, flash attention off', options: { kvCacheType: 'F32', flashAttention: false }, tolerance, allowTies: false },
  ];
  if (widenedGguf !== undefined) {
    configs.push({ name: 'f32-weights', label: `the same ${dtype}-rounded weights as an F32 GGUF (${rel(widenedGguf)}), F32 KV cache, flash attention off`, gguf: widenedGguf, options: { kvCacheType: 'F32', flashAttention: false }, tolerance: TOLERANCES.f32[0], allowTies: false });
  }
  const theirs = {};
  let llamaInfo;
  for (const config of configs) {
    log(`llama.cpp (${config.label}): ${promptCount} prompts × ${steps} greedy steps with probabilities`);
    const out = JSON.parse(await runNode([path.join(toolDir, 'llamacpp-worker.mjs'), 'verify', JSON.stringify({ gguf: config.gguf ?? gguf, threads: 1, prompts, steps, vocab, ...config.options })], { prefix: '  ' }));
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
          let tie;
          for (let s = 0; s < comparable; s++) {
            const ours = logSoftmax(gen.stepLogits[s]);
            const c = compare(ours, ref.logprobs[s]);
            stepMax = Math.max(stepMax, c.maxDiff);
            stepSkipped += c.skipped;
            if (s === firstMismatch) {
              // If no log-probability differs by more than δ, the two engines can only pick different
              // tokens a and b when tp's margin lp(a) - lp(b) is at most 2δ: a near-tie, not a wrong model.
              const margin = ours[gen.tokens[s]] - ours[ref.tokens[s]];
              // (Only a difference within the tolerance explains anything: a wrong model flips tokens too.)
              tie = { step: s, tp_token: gen.tokens[s], llamacpp_token: ref.tokens[s], tp_margin: margin, step_max_abs_diff: c.maxDiff, explained: margin <= 2 * c.maxDiff && c.maxDiff <= config.tolerance };
            }
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
            // The first differing token: tp's margin between its token and llama.cpp's, and whether the
            // measured difference at that step explains the flip (margin ≤ 2 × max |Δ|).
            mismatch: tie,
            near_tie: tie?.explained === true,
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
          c.ok = (c.tokens_match || (config.allowTies && c.near_tie)) && c.last_position_max_abs_diff <= c.tolerance && c.steps_max_abs_diff <= c.tolerance;
          checks.push(c);
          log(
            `tp ${tp} vs llama.cpp ${config.name}, prompt ${p}: tokens ${c.tokens_match ? `identical (${steps}/${steps})` : `differ from step ${firstMismatch} (tp's margin ${tie.tp_margin.toExponential(2)} vs |Δ| ${tie.step_max_abs_diff.toExponential(2)} at that step: ${tie.explained ? 'a near-tie' : 'not a near-tie within the tolerance'})`}; ` +
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
      ok: mine.every((c) => c.ok),
      tokens_match: mine.every((c) => c.tokens_match),
      near_ties: mine.filter((c) => !c.tokens_match && c.near_tie).length,
      allow_ties: configs.find((c) => c.name === name).allowTies,
      max_last_position_abs_diff: Math.max(...mine.map((c) => c.last_position_max_abs_diff)),
      max_step_abs_diff: Math.max(...mine.map((c) => c.steps_max_abs_diff)),
      tolerance: configs.find((c) => c.name === name).tolerance,
    };
  };
  return {
    ok: checks.every((c) => c.ok),
    dtype,
    model: rel(modelDir),
    gguf: rel(gguf),
    tolerance_note: TOLERANCE_NOTE[dtype],
    steps,
    prompts: promptCount,
    tp_sizes: tpSizes,
    configs: configs.map(({ name, label, options, gguf: g, tolerance: t }) => ({ name, label, gguf: rel(g ?? gguf), options, ...summarize(name), tolerance: t })),
    llamacpp: { threads: llamaInfo.threads, versions: llamaInfo.versions },
    checks,
  };
}

/**
 * The check as a table. greedy tokens: "same 16/16", "tie @s m" (the first differing token is a near-tie:
 * tp's margin m between its token and llama.cpp's is at most twice the measured |Δ| at that step, which is
 * within the tolerance; accepted with llama.cpp's defaults only) or "differ @s m". top-2 margin: tp's, at the last prompt position.
 */
export function verifyTable(summary) {
  const lines = ['tp  llama.cpp KV cache        prompt  greedy tokens    max |Δ| last prompt pos.  max |Δ| all steps  tolerance  top-2 margin  ok'];
  lines.push('──  ────────────────────────  ──────  ───────────────  ────────────────────────  ─────────────────  ─────────  ────────────  ───');
  const kv = { default: 'F16, flash attn auto', 'f32-kv': 'F32, flash attn off', 'f32-weights': 'F32 GGUF, F32, no FA' };
  for (const c of summary.checks) {
    const tokens = c.tokens_match ? `same ${c.steps_compared}/${summary.steps}` : `${c.near_tie ? 'tie' : 'differ'} @${c.first_mismatch} ${c.mismatch.tp_margin.toFixed(4)}`;
    lines.push(
      `${String(c.tp).padStart(2)}  ${(kv[c.llamacpp] ?? c.llamacpp).padEnd(24)}  ${String(c.prompt).padStart(6)}  ${tokens.padEnd(15)}  ${c.last_position_max_abs_diff.toExponential(2).padStart(24)}  ${c.steps_max_abs_diff.toExponential(2).padStart(17)}  ${c.tolerance.toExponential(0).padStart(9)}  ${c.last_position_top2_margin.toFixed(4).padStart(12)}  ${c.ok ? 'yes' : 'NO'}`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(toolDir, 'verify.mjs')) {
  const { values } = parseArgs({
    options: {
      dtype: { type: 'string' },
      steps: { type: 'string' },
      prompts: { type: 'string' },
      tp: { type: 'string' },
      model: { type: 'string' },
      gguf: { type: 'string' },
      tolerance: { type: 'string' },
      'tolerance-default': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log('usage: node tools/compare-llamacpp/verify.mjs [--dtype f32|bf16|f16|all] [--steps 16] [--prompts 2] [--tp 1,2] [--model DIR --gguf FILE] [--tolerance X] [--tolerance-default X] [--json]');
    process.exit(0);
  }
  const dtypes = parseDtypes(values.dtype);
  if ((values.gguf || values.model) && dtypes.length !== 1) throw new Error('--model and --gguf name one pair: give one --dtype with them');
  const say = (t) => console.error(`verify: ${t}`);
  ensureNodeLlamaCpp({ log: say });
  let ok = true;
  for (const dtype of dtypes) {
    if (!values.model) await ensureModel({ dtype, log: say });
    if (!values.gguf) await ensureGguf({ dtype, log: say });
    const gguf = values.gguf ? path.resolve(values.gguf) : ggufFileFor(dtype);
    if (!existsSync(gguf)) throw new Error(`${rel(gguf)} is missing`);
    say(`${dtype}: tp on ${rel(values.model ? path.resolve(values.model) : modelDirFor(dtype))}, llama.cpp on ${rel(gguf)}`);
    const summary = await verify({
      dtype,
      steps: values.steps ? Number(values.steps) : 16,
      prompts: values.prompts ? Number(values.prompts) : 2,
      tpSizes: values.tp ? values.tp.split(',').map(Number) : [1, 2],
      ...(values.tolerance ? { tolerance: Number(values.tolerance) } : {}),
      ...(values['tolerance-default'] ? { toleranceDefault: Number(values['tolerance-default']) } : {}),
      ...(values.model ? { modelDir: path.resolve(values.model) } : {}),
      gguf,
      log: say,
    });
    ok &&= summary.ok;
    if (values.json) console.log(JSON.stringify(summary));
    else console.log(`\n${dtype}: ${summary.tolerance_note}\n${verifyTable(summary)}\n\n${summary.ok ? `verify ${dtype}: ok` : `verify ${dtype}: FAILED`}`);
  }
  process.exitCode = ok ? 0 : 1;
}
