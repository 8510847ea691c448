#!/usr/bin/env node
/**
 * One llama.cpp measurement in its own process (like each `tp bench` run): loads the GGUF with
 * node-llama-cpp's prebuilt CPU binary and prints one JSON object on stdout.
 *
 *   node tools/compare-llamacpp/llamacpp-worker.mjs bench  '{"gguf": "...", "threads": 1, "prompt": 16, "new": 64, "runs": 3}'
 *   node tools/compare-llamacpp/llamacpp-worker.mjs verify '{"gguf": "...", "threads": 1, "prompts": [[...]], "steps": 16}'
 *
 * bench: the same protocol as `tp bench`: the same random prompts (tp's seeded generator, seeds 999 for
 * the warm-up and 0, 1, 2 for the runs), one warm-up generation, then `runs` timed greedy generations
 * of `new` tokens that never stop early; prefill = time to the first token, decode = time per token
 * after the first; medians. The KV cache is cleared between generations.
 * verify: greedy tokens and the full next-token log-probabilities of every step.
 */
import { coreDist, median, round, benchPrompt } from './common.mjs';
import { importNodeLlamaCpp, llamaCppVersions } from './llamacpp.mjs';

const [mode, json] = process.argv.slice(2);
const options = JSON.parse(json ?? '{}');
const say = (text) => process.stderr.write(`llama.cpp: ${text}\n`);

const { getLlama, LlamaLogLevel } = await importNodeLlamaCpp();
const { seededRandom } = await import(coreDist);

const threads = options.threads ?? 1;
const loadStarted = performance.now();
// build: 'never' — use the prebuilt binary or fail; never download or compile llama.cpp.
// maxThreads: 0 — the context's `threads` is then the exact thread count, not a hint.
const llama = await getLlama({ gpu: false, build: 'never', maxThreads: 0, logLevel: LlamaLogLevel.warn, progressLogs: false });
const model = await llama.loadModel({ modelPath: options.gguf });
const context = await model.createContext({
  contextSize: options.contextSize ?? 256,
  threads: { ideal: threads, min: threads },
  sequences: 1,
  // Defaults (what the benchmark uses): flash attention "auto", F16 KV cache. verify.mjs also runs F32.
  ...(options.flashAttention !== undefined ? { flashAttention: options.flashAttention } : {}),
  ...(options.kvCacheType !== undefined ? { experimentalKvCacheKeyType: options.kvCacheType, experimentalKvCacheValueType: options.kvCacheType } : {}),
});
const loadMs = performance.now() - loadStarted;
const sequence = context.getSequence();
const vocab = options.vocab ?? Number(model.fileInfo.metadata?.llama?.vocab_size);
if (!Number.isInteger(vocab) || vocab <= 0) throw new Error('pass "vocab" (the GGUF has no llama.vocab_size)');
const info = {
  threads: context.currentThreads,
  flash_attention: context.flashAttention,
  kv_cache_type: options.kvCacheType ?? 'F16 (default)',
  context_size: context.contextSize,
  batch_size: context.batchSize,
  build: llama.buildType,
  gpu: llama.gpu,
  system_info: llama.systemInfo.trim(),
  versions: llamaCppVersions(),
};
if (info.threads !== threads) throw new Error(`asked for ${threads} threads, the context uses ${info.threads}`);

/** Greedy generation of `count` tokens after `prompt`, timed by when each token is yielded. */
async function generate(prompt, count, withProbabilities = false) {
  await sequence.clearHistory();
  const tokens = [];
  const times = [];
  const logprobs = [];
  const started = performance.now();
  const iterator = withProbabilities ? sequence.evaluateWithMetadata(prompt, { probabilities: true }, { temperature: 0 }) : sequence.evaluate(prompt, { temperature: 0 });
  for await (const item of iterator) {
    times.push(performance.now());
    if (withProbabilities) {
      tokens.push(item.token);
      const lp = new Float64Array(vocab).fill(-Infinity);
      for (const [token, p] of item.probabilities) lp[token] = Math.log(p);
      logprobs.push(Buffer.from(lp.buffer).toString('base64'));
    } else {
      tokens.push(item);
    }
    if (tokens.length >= count) break;
  }
  const intervals = times.slice(1).map((t, i) => t - times[i]);
  return { tokens, logprobs, intervals, prefillMs: times[0] - started, decodeMsPerToken: (times.at(-1) - times[0]) / (times.length - 1) };
}

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => round(sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))], 2);
  return { min: at(0), p10: at(0.1), p50: at(0.5), p90: at(0.9), max: at(1) };
}

if (mode === 'bench') {
  const promptTokens = options.prompt ?? 16;
  const newTokens = options.new ?? 64;
  const runs = options.runs ?? 3;
  const seed = options.seed ?? 0;
  say(`threads ${threads}: loaded in ${(loadMs / 1000).toFixed(2)} s; warm-up generation (${promptTokens} + ${newTokens} tokens)`);
  await generate(benchPrompt(seededRandom, vocab, promptTokens, -1, seed), newTokens);
  const prefill = [];
  const decode = [];
  const intervals = [];
  for (let run = 0; run < runs; run++) {
    const t = await generate(benchPrompt(seededRandom, vocab, promptTokens, run, seed), newTokens);
    prefill.push(t.prefillMs);
    decode.push(t.decodeMsPerToken);
    intervals.push(...t.intervals);
    say(`threads ${threads}: run ${run + 1}/${runs}: prefill ${t.prefillMs.toFixed(1)} ms, decode ${t.decodeMsPerToken.toFixed(2)} ms/token`);
  }
  const decodeMs = median(decode);
  const result = {
    engine: 'llama.cpp',
    threads,
    prompt_tokens: promptTokens,
    new_tokens: newTokens,
    runs,
    load_s: round(loadMs / 1000, 3),
    prefill_ms: round(median(prefill), 2),
    decode_ms_per_token: round(decodeMs, 3),
    tokens_per_s: round(1000 / decodeMs, 2),
    peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
    prefill_ms_runs: prefill.map((v) => round(v, 2)),
    decode_ms_per_token_runs: decode.map((v) => round(v, 3)),
    // The spread of single decode steps over all timed runs (tp bench reports only the means).
    decode_token_ms_percentiles: percentiles(intervals),
    ...info,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else if (mode === 'verify') {
  const steps = options.steps ?? 16;
  const results = [];
  for (const prompt of options.prompts) {
    const r = await generate(prompt, steps, true);
    results.push({ prompt, tokens: r.tokens, logprobs: r.logprobs });
  }
  process.stdout.write(`${JSON.stringify({ engine: 'llama.cpp', vocab, results, ...info })}\n`);
} else {
  throw new Error(`unknown mode ${mode}: bench or verify`);
}

await context.dispose();
await model.dispose();
await llama.dispose();
