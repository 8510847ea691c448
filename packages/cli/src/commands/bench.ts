/** `tp bench <dir> --tp 1,2`: load time, prefill, decode speed and memory for each tp size. */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom, type InferenceSession } from '@tp/core';
import { machineInfo, renderBenchTable, type BenchResult } from '../format/bench-table.js';
import { UsageError, type CliIo } from '../io.js';
import { openSession, SESSION_OPTIONS } from '../session.js';
import { parseNonNegativeInt, parsePositiveInt, parsePositiveIntList } from './args.js';
import { round } from './run.js';

export const benchHelp = `Usage: tp bench <model-dir> [--tp 1,2,...] [--prompt N] [--new N] [--runs N] [--json] [options]

Measure tensor-parallel inference for each tp size in turn: start a session (load_s: planning,
starting the ranks, each rank reading its share), run one warm-up generation, then --runs timed
generations from a prompt of --prompt random token ids, greedy, never stopping early:
  prefill ms       time to the first generated token (a forward over the whole prompt)
  decode ms/token  time per generated token after the first
  peak RSS         the highest resident memory of the process the ranks sampled (MiB)
Times are the median over the runs. Progress goes to stderr, one line per step.

Options:
  --tp LIST           tp sizes to measure, e.g. 1,2,4 (default 1)
  --prompt N          prompt length in tokens (default 16)
  --new N             tokens generated per run, at least 2 (default 64)
  --runs N            timed runs per tp size (default 3)
  --seed N            seed of the random prompts (default 0)
  --json              one JSON object per tp size, one per line, and nothing else on stdout: tp,
                      decode_ms_per_token, prefill_ms, load_s, peak_rss_mb, tokens_per_s, the
                      per-run values, the token counts and the machine
  --quiet             no progress on stderr
  --backend NAME      cpu (default); webgpu and cuda are not available yet
  --policy FILE       a policy overriding the automatic plan (see "tp plan --help")
  --vocab-parallel    split the embedding and LM head by vocabulary
  -h, --help          show this help

Examples:
  tp bench ./my-model --tp 1,2 --prompt 16 --new 64
  tp bench ./my-model --tp 1,2,4 --runs 5 --json > results.jsonl
  pnpm bench:cpu      # the 134M-parameter synthetic llama at tp 1 and 2, saved under bench/results/
`;

export async function benchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...SESSION_OPTIONS,
      prompt: { type: 'string' },
      new: { type: 'string' },
      runs: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.stdout(benchHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'tp bench needs a model folder' : `tp bench takes one model folder, got ${positionals.length}`);
  const dir = positionals[0]!;
  const tpSizes = values.tp === undefined ? [1] : parsePositiveIntList(values.tp, '--tp');
  const promptTokens = values.prompt === undefined ? 16 : parsePositiveInt(values.prompt, '--prompt');
  const newTokens = values.new === undefined ? 64 : parsePositiveInt(values.new, '--new');
  if (newTokens < 2) throw new UsageError('--new must be at least 2 (decode time is measured after the first token)');
  const runs = values.runs === undefined ? 3 : parsePositiveInt(values.runs, '--runs');
  const seed = values.seed === undefined ? 0 : parseNonNegativeInt(values.seed, '--seed');
  const json = values.json ?? false;
  const say = (text: string) => {
    if (!values.quiet) io.stderr(`bench: ${text}\n`);
  };

  const machine = machineInfo();
  const results: BenchResult[] = [];
  for (const tp of tpSizes) {
    say(`tp ${tp}: loading ${dir}`);
    const { session, loadMs } = await openSession(dir, tp, { ...values, tp: String(tp) }, io, json || values.quiet === true);
    try {
      say(`tp ${tp}: loaded in ${(loadMs / 1000).toFixed(2)} s; warm-up generation (${promptTokens} + ${newTokens} tokens)`);
      const vocab = session.graph.geometry.vocab;
      await timeGeneration(session, randomPrompt(vocab, promptTokens, seed * 1000 + 999), newTokens);
      const prefill: number[] = [];
      const decode: number[] = [];
      for (let run = 0; run < runs; run++) {
        const t = await timeGeneration(session, randomPrompt(vocab, promptTokens, seed * 1000 + run), newTokens);
        prefill.push(t.prefillMs);
        decode.push(t.decodeMsPerToken);
        say(`tp ${tp}: run ${run + 1}/${runs}: prefill ${t.prefillMs.toFixed(1)} ms, decode ${t.decodeMsPerToken.toFixed(2)} ms/token`);
      }
      const stats = await session.stats();
      const peak = Math.max(...stats.map((s) => s.peakRssBytes));
      const decodeMs = median(decode);
      const result: BenchResult = {
        tp,
        backend: session.backend.name,
        model: path.basename(session.dir),
        model_type: session.graph.modelType,
        parameters: parameterCount(session),
        prompt_tokens: promptTokens,
        new_tokens: newTokens,
        runs,
        load_s: round(loadMs / 1000, 3),
        prefill_ms: round(median(prefill), 2),
        decode_ms_per_token: round(decodeMs, 3),
        tokens_per_s: round(1000 / decodeMs, 2),
        peak_rss_mb: round(peak / 2 ** 20, 1),
        rank_memory_mb: stats.map((s) => round(s.deviceBytes / 2 ** 20, 1)),
        prefill_ms_runs: prefill.map((v) => round(v, 2)),
        decode_ms_per_token_runs: decode.map((v) => round(v, 3)),
        machine,
      };
      results.push(result);
      if (json) io.stdout(`${JSON.stringify(result)}\n`);
    } finally {
      await session.dispose();
    }
  }
  if (!json) io.stdout(`${renderBenchTable(results)}\n`);
  return 0;
}

/** One greedy generation that never stops early, timed by when each token is chosen. */
async function timeGeneration(session: InferenceSession, prompt: number[], newTokens: number): Promise<{ prefillMs: number; decodeMsPerToken: number }> {
  const times: number[] = [];
  const started = performance.now();
  await session.generate([prompt], { maxNewTokens: newTokens, stopAtEos: false, temperature: 0, onToken: () => void times.push(performance.now()) });
  const first = times[0]!;
  const last = times[times.length - 1]!;
  return { prefillMs: first - started, decodeMsPerToken: (last - first) / (times.length - 1) };
}

function randomPrompt(vocab: number, length: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length }, () => Math.min(vocab - 1, Math.floor(random() * vocab)));
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function parameterCount(session: InferenceSession): number {
  return session.plan.tensors.filter((t) => t.read).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
}
