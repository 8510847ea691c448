/**
 * `tp bench <dir> --tp 1,2 --batch 1,4,16`: for every (tp, batch) cell, latency, throughput,
 * effective bandwidth, achieved FLOP/s and memory per rank, with the largest batch a memory budget fits.
 * The formulas are in ../bench/metrics.ts; the tables in ../format/bench-table.ts; the chart in ../bench/chart.ts.
 */
import path from 'node:path';
import { seededRandom, type InferenceSession } from '@tp/core';
import { renderBenchChart } from '../bench/chart.js';
import {
  bandwidthGBps,
  bytesPerParameter,
  cellTiming,
  expertShareRead,
  quantile,
  flopPerSecond,
  kvBytesReadPerSequence,
  kvCacheBytes,
  maxBatch,
  moeOf,
  parseByteSize,
  perSecond,
  rankWeightBytes,
  runTiming,
  workload,
  workspaceModel,
  type RunTiming,
} from '../bench/metrics.js';
import { measureReadBandwidth, type ReadBandwidth } from '../bench/read-bandwidth.js';
import { stepShape, type StepShape } from '../bench/step-shape.js';
import { formatBytes } from '../format/units.js';
import { BENCH_FORMAT_VERSION, describeBenchCells, machineInfo, renderBenchReport, type BenchCell, type MachineInfo, type TpSummary } from '../format/bench-table.js';
import { UsageError, type CliIo } from '../io.js';
import { checkWritable, writeFileAtomic } from '../output.js';
import { openSession, SESSION_OPTIONS } from '../session.js';
import { DTYPE_HELP, DTYPE_OPTIONS, parseCommandLine, parseDeviceList, parseDtypeFlags, parseNonNegativeInt, parseNumber, parsePositiveInt, parsePositiveIntList } from './args.js';

export const benchHelp = `Usage: tp bench <model-dir> [--tp 1,2,4] [--batch 1,4,16|max] [--prompt N] [--new N] [--runs N]
                [--dtype auto|f32|f16|bf16] [--memory-budget 8GiB] [--json] [--chart out.svg] [options]

For each tp size: start a session (load_s), then for each batch size (a "cell"): one warm-up
generation and --runs timed generations of --new tokens for --batch sequences of --prompt seeded
random token ids, greedy, never stopping early. Each run is timed by when each step's tokens are
chosen: step 0 is the first token (the prefill forward over the prompt), every later step is one
decode step that makes one token for every sequence. Before the first session the machine's read
bandwidth is measured once.

By model kind:
  causal LM           as above; a decode step reads every weight and the KV cache
  encoder–decoder     the prompt is the encoder's input; the decoder starts from its start token. A
                      decode step reads the decoder's weights and the head (not the encoder's), its
                      self-attention cache over 1 + new/2 positions and the cross-attention cache
                      over the prompt; the prefill is the encoder forward plus the first decoder step
  encoder (BERT…)     no generation: each run is one forward of --batch sequences of --prompt tokens
                      (last hidden state and, where the checkpoint has one, the masked-LM logits);
                      the table shows forward ms and tokens encoded/s = batch × prompt ÷ forward
                      time; bandwidth and FLOP/s are per forward (every weight once, batch × prompt
                      tokens); --new is ignored and the JSON's decode fields are null ("mode": "encode")

Per cell (arrays in --json: one entry per rank):
  prefill ms          time to the first token (= time_to_first_token_ms), median over the runs;
                      prompt tokens/s = batch × prompt ÷ prefill time
  decode ms/token     one decode step, the time per token of each sequence: median (also
                      decode_ms_per_token) and p90 of all decode steps of all runs; prefill excluded
  tokens/s            throughput: batch × 1000 ÷ decode ms/token (the whole batch), and ÷ tp per rank
  bandwidth           effective: bytes a rank reads per decode step ÷ the step's median time, per rank
                      and summed (GB/s = 1e9 bytes/s), and the sum as a share of the read bandwidth.
                      Bytes per step = weights + KV cache: every weight the step multiplies or applies,
                      in its storage dtype (f32 4 bytes, f16 and bf16 2; embedding tables are looked
                      up, not read whole), MoE experts the share 1 − (1 − k/E)^batch a batch of
                      uniformly routed tokens touches; plus the KV cache read by attention:
                      KV bytes per position × batch × (prompt + new/2), the mean context of a step
  FLOP/s              achieved: 2 × parameters per token × batch ÷ decode step time — a multiply
                      and an add per parameter of every matrix a token goes through (the LM head
                      included, embedding lookups and vectors not; MoE: only the k of E experts a
                      token uses), per rank (its own slices; replicated weights count on each rank)
                      and for the model (the unsharded parameters). Attention's q·k and value mix
                      (4 × layers × heads × head dim × context per token) are not counted
  memory per rank     weights (the plan: every tensor the rank holds, in its storage dtype), KV
                      cache at the cell's batch and prompt + new tokens, workspace (device peak −
                      weights − KV cache: activations, cache growth headroom, allocator slack) and
                      the device peak (on the CPU the rank's WebAssembly memory, which only grows)
  max batch           the largest batch whose weights + KV cache (prompt + new tokens) + workspace
                      fit --memory-budget on every rank; workspace beyond the largest measured batch
                      is scaled in proportion to the batch (an upper bound)
After the cells, a summary per tp: memory per rank, max batch, max throughput per rank.

The read bandwidth: one worker thread per core, each summing a buffer of its own (256 MiB, or
1 GiB split over the threads when there are more than 4, at least 16 MiB; written once first so
every page is real memory) with a WebAssembly SIMD loop for about 0.4 s, all threads at once;
bytes read by all threads ÷ elapsed time. Only reads are counted; the loop writes nothing (its sums
stay in registers). The bandwidth share is of this number.

Options:
  --tp LIST           tp sizes to measure, e.g. 1,2,4 (default 1)
  --batch LIST        batch sizes, e.g. 1,4,16 (default 1); "max" adds the largest batch that fits
                      --memory-budget, estimated from the batches measured before it (batch 1 is
                      measured first when no other batch is given)
  --prompt N          prompt length in tokens (default 16)
  --new N             tokens generated per run, at least 2 (default 64)
  --runs N            timed runs per cell (default 3)
  --seed N            seed of the random prompts (default 0)
  --memory-budget B   memory per rank for max batch, e.g. 8GiB, 512MiB (KiB/MiB/GiB: 1024-based;
                      KB/MB/GB: 1000-based; default: what one rank of the backend can hold — 4 GiB
                      of WebAssembly memory per CPU rank)
  --read-bandwidth G  the machine's read bandwidth in GB/s: skip measuring it
  --json              one JSON object per cell, one per line, and nothing else on stdout
                      (formatVersion ${BENCH_FORMAT_VERSION}): tp, batch, decode_ms_per_token (median), prefill_ms,
                      load_s, peak_rss_mb, tokens_per_s (1000 ÷ decode_ms_per_token), rank_memory_mb,
                      every number above and its inputs (parameters_per_token, bytes_per_parameter,
                      bytes_per_step, ...), max_batch, tp_summary, read_bandwidth and the machine
  --chart FILE        write an SVG chart: decode latency and throughput vs batch (one line per tp)
                      and memory per rank vs tp
  --quiet             no progress on stderr
${DTYPE_HELP}
  --backend NAME      cpu (default), webgpu or cuda (when installed and this machine can run it)
  --devices LIST      webgpu/cuda: the device of each rank (see tp devices), e.g. 0,1; with several
                      --tp sizes, give the largest one's list: each tp uses its first tp entries
  --policy FILE       a policy overriding the automatic plan (see "tp plan --help")
  --vocab-parallel    split the embedding and LM head by vocabulary
  -h, --help          show this help

Examples:
  tp bench ./my-model --tp 1,2 --prompt 16 --new 64
  tp bench ./my-model --tp 1,2,4 --batch 1,4,16 --chart bench.svg
  tp bench ./my-model --tp 2 --batch 1,8,max --memory-budget 2GiB --json > results.jsonl
  pnpm bench:cpu      # the 134M-parameter synthetic llama, saved under bench/results/
`;

const MiB = 2 ** 20;
const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

export async function benchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine('bench', argv, {
    ...SESSION_OPTIONS,
    ...DTYPE_OPTIONS,
    batch: { type: 'string' },
    prompt: { type: 'string' },
    new: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    'memory-budget': { type: 'string' },
    'read-bandwidth': { type: 'string' },
    chart: { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    io.stdout(benchHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'the model folder is missing: tp bench <model-dir> [options]' : `one model folder, please; got ${positionals.length} arguments: ${positionals.join(' ')}`);
  const dir = positionals[0]!;
  const tpSizes = values.tp === undefined ? [1] : parsePositiveIntList(values.tp, '--tp');
  const { batches, max: wantMax } = parseBatches(values.batch);
  const promptTokens = values.prompt === undefined ? 16 : parsePositiveInt(values.prompt, '--prompt');
  const newTokens = values.new === undefined ? 64 : parsePositiveInt(values.new, '--new');
  if (newTokens < 2) throw new UsageError('--new must be at least 2 (decode time is measured after the first token)');
  const runs = values.runs === undefined ? 3 : parsePositiveInt(values.runs, '--runs');
  const seed = values.seed === undefined ? 0 : parseNonNegativeInt(values.seed, '--seed');
  const budgetFlag = values['memory-budget'] === undefined ? undefined : parseByteSize(values['memory-budget']);
  if (values['memory-budget'] !== undefined && budgetFlag === undefined) throw new UsageError(`--memory-budget must be a size such as 8GiB or 512MiB, got "${values['memory-budget']}"`);
  const givenBandwidth = values['read-bandwidth'] === undefined ? undefined : parseNumber(values['read-bandwidth'], '--read-bandwidth', { min: 0, exclusiveMin: true });
  const dtypes = parseDtypeFlags(values);
  const deviceList = values.devices === undefined ? undefined : parseDeviceList(values.devices, '--devices');
  if (deviceList !== undefined && deviceList.length < Math.max(...tpSizes)) {
    throw new UsageError(`--devices lists ${deviceList.length} device${deviceList.length === 1 ? '' : 's'}, but --tp ${Math.max(...tpSizes)} needs one per rank`);
  }
  const json = values.json ?? false;
  if (values.chart !== undefined) await checkWritable(values.chart);
  const say = (text: string) => {
    if (!values.quiet) io.stderr(`bench: ${text}\n`);
  };

  const machine = machineInfo();
  let readBandwidth: BenchCell['read_bandwidth'];
  if (givenBandwidth !== undefined) readBandwidth = { gb_per_s: givenBandwidth, given: true };
  else {
    say(`measuring the machine's read bandwidth (${machine.cores} threads)`);
    const measured: ReadBandwidth = await measureReadBandwidth({ threads: machine.cores });
    readBandwidth = { ...measured, gb_per_s: round(measured.gb_per_s, 2), seconds: round(measured.seconds, 3) };
    say(`read bandwidth: ${readBandwidth.gb_per_s.toFixed(1)} GB/s (${measured.threads} threads, ${measured.method})`);
  }

  const all: BenchCell[] = [];
  for (const tp of tpSizes) {
    say(`tp ${tp}: loading ${dir}`);
    const { session, loadMs } = await openSession(dir, tp, { ...values, tp: String(tp), devices: deviceList?.slice(0, tp).join(',') }, io, json || values.quiet === true, dtypes);
    try {
      const backendLimit = await session.backend.rankMemoryLimit({});
      const budget = budgetFlag ?? backendLimit ?? null;
      const ctx: CellContext = { session, tp, promptTokens, newTokens, runs, seed, loadMs, machine, readBandwidth, budget, shape: stepShape(session, promptTokens, newTokens), say };
      const measured: MeasuredCell[] = [];
      const toMeasure = batches.length === 0 && wantMax ? [1] : batches;
      for (const batch of toMeasure) measured.push(await measureCell(ctx, batch, false));
      const max = budget === null ? null : estimateMaxBatch(session, measured, promptTokens + newTokens, budget);
      if (wantMax) {
        if (max === null) say(`tp ${tp}: no memory budget for --batch max (the ${session.backend.name} backend states no limit); use --memory-budget`);
        else {
          let target = max.batch;
          if (backendLimit !== undefined && budget !== null && budget > backendLimit) {
            target = Math.min(target, estimateMaxBatch(session, measured, promptTokens + newTokens, backendLimit).batch);
            say(`tp ${tp}: --memory-budget is above what a ${session.backend.name} rank holds (${formatBytes(backendLimit)}): measuring at batch ${target}, the most that fits it`);
          }
          if (target < 1) say(`tp ${tp}: not even batch 1 fits the budget; nothing to measure for --batch max`);
          else if (measured.some((m) => m.batch === target)) measured.find((m) => m.batch === target)!.isMax = true;
          else {
            say(`tp ${tp}: max batch ${target} (budget ${formatBytes(budget!)} per rank, ${promptTokens + newTokens} tokens per sequence)`);
            try {
              measured.push(await measureCell(ctx, target, true));
            } catch (error) {
              // Reported, and the cells measured before it still are.
              say(`tp ${tp}: batch ${target} failed: ${(error as Error).message}`);
            }
          }
        }
      }
      const cells = finishCells(ctx, measured, max);
      for (const cell of cells) {
        all.push(cell);
        if (json) io.stdout(`${JSON.stringify(cell)}\n`);
      }
    } finally {
      await session.dispose();
    }
  }
  if (!json) io.stdout(`${renderBenchReport(all)}\n`);
  if (values.chart !== undefined) {
    await writeFileAtomic(values.chart, renderBenchChart(all, { title: describeBenchCells(all).split('\n')[0]! }));
    say(`wrote ${values.chart}`);
  }
  return 0;
}

/** `--batch 1,4,max` → the numbers in ascending order (the device peak then grows cell by cell) and whether max was asked. */
export function parseBatches(text: string | undefined): { batches: number[]; max: boolean } {
  if (text === undefined) return { batches: [1], max: false };
  const parts = text.split(',').map((p) => p.trim());
  const max = parts.some((p) => p.toLowerCase() === 'max');
  const numbers = parts.filter((p) => p.toLowerCase() !== 'max').map((p) => parsePositiveInt(p, '--batch'));
  if (new Set(numbers).size !== numbers.length || parts.filter((p) => p.toLowerCase() === 'max').length > 1) throw new UsageError(`--batch lists a value twice: "${text}"`);
  return { batches: numbers.sort((a, b) => a - b), max };
}

interface CellContext {
  session: InferenceSession;
  tp: number;
  promptTokens: number;
  newTokens: number;
  runs: number;
  seed: number;
  loadMs: number;
  machine: MachineInfo;
  readBandwidth: BenchCell['read_bandwidth'];
  budget: number | null;
  shape: StepShape;
  say: (text: string) => void;
}

interface MeasuredCell {
  batch: number;
  isMax: boolean;
  runs: RunTiming[];
  deviceBytes: number[];
  peakRssBytes: number;
}

/** One cell: a warm-up and `runs` timed generations, then the ranks' memory. */
async function measureCell(ctx: CellContext, batch: number, isMax: boolean): Promise<MeasuredCell> {
  const { session, tp, promptTokens, newTokens, seed } = ctx;
  const vocab = session.graph.geometry.vocab;
  const encode = ctx.shape.mode === 'encode';
  const time = (ids: number[][]) => (encode ? timeForward(session, ids) : timeGeneration(session, ids, newTokens));
  ctx.say(`tp ${tp}, batch ${batch}: warm-up ${encode ? `forward (${batch} × ${promptTokens} tokens)` : `generation (${batch} × (${promptTokens} + ${newTokens}) tokens)`}`);
  await time(prompts(vocab, promptTokens, batch, seed, 999));
  const timings: RunTiming[] = [];
  for (let run = 0; run < ctx.runs; run++) {
    const t = await time(prompts(vocab, promptTokens, batch, seed, run));
    timings.push(t);
    ctx.say(`tp ${tp}, batch ${batch}: run ${run + 1}/${ctx.runs}: ${encode ? `forward ${t.prefillMs.toFixed(1)} ms` : `prefill ${t.prefillMs.toFixed(1)} ms, decode ${t.decodeMeanMs.toFixed(2)} ms/token`}`);
  }
  const stats = await session.stats();
  return { batch, isMax, runs: timings, deviceBytes: stats.map((s) => s.deviceBytes), peakRssBytes: Math.max(...stats.map((s) => s.peakRssBytes)) };
}

/** One greedy generation of every sequence that never stops early, timed by when each step's tokens are chosen. */
async function timeGeneration(session: InferenceSession, batch: number[][], newTokens: number): Promise<RunTiming> {
  const stepMs: number[] = [];
  const startMs = performance.now();
  await session.generate(batch, {
    maxNewTokens: newTokens,
    stopAtEos: false,
    temperature: 0,
    onToken: ({ step }) => {
      stepMs[step] ??= performance.now();
    },
  });
  return runTiming({ startMs, stepMs });
}

/** One forward of an encoder over the batch (its default outputs: last hidden state and, with the head, masked-LM logits), timed as a "prefill" with no decode steps. */
async function timeForward(session: InferenceSession, batch: number[][]): Promise<RunTiming> {
  const startMs = performance.now();
  await session.encoderOutputs(batch);
  const ms = performance.now() - startMs;
  return { prefillMs: ms, decodeStepsMs: [], decodeMeanMs: Number.NaN, totalMs: ms };
}

/**
 * The prompts of one run: `batch` sequences of seeded random ids. Sequence 0 of run r uses seed
 * seed·1000 + r (the warm-up: r = 999), as the one-sequence bench always has; sequence j adds 1 000 000·j.
 */
export function prompts(vocab: number, length: number, batch: number, seed: number, run: number): number[][] {
  return Array.from({ length: batch }, (_, j) => {
    const random = seededRandom(seed * 1000 + run + 1_000_000 * j);
    return Array.from({ length }, () => Math.min(vocab - 1, Math.floor(random() * vocab)));
  });
}

/** Weights, KV cache and workspace per rank from the measured cells, and the largest batch within `budget`. */
function estimateMaxBatch(session: InferenceSession, measured: readonly MeasuredCell[], tokens: number, budget: number): { batch: number; limitingRank: number } {
  const plan = session.plan;
  const ranks = plan.ranks.map((r, rank) => {
    const weightBytes = r.paramBytes;
    const points = measured.map((m) => ({ batch: m.batch, bytes: m.deviceBytes[rank]! - weightBytes - kvCacheBytes(r.kvCacheBytesPerToken, tokens, m.batch) }));
    return { weightBytes, kvBytesPerToken: r.kvCacheBytesPerToken, workspace: workspaceModel(points) };
  });
  return maxBatch(ranks, tokens, budget);
}

/** Every number of every cell of one tp, and the tp's summary. */
function finishCells(ctx: CellContext, measured: readonly MeasuredCell[], max: { batch: number; limitingRank: number } | null): BenchCell[] {
  const { session, tp, promptTokens, newTokens, shape } = ctx;
  const plan = session.plan;
  const moe = moeOf(plan);
  const storage = plan.storageDtypes[0] ?? 'f32';
  const encode = shape.mode === 'encode';
  const tokens = encode ? promptTokens : promptTokens + newTokens;
  const context = shape.context;
  const parameters = plan.tensors.filter((t) => t.read).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const nullIfEncode = (v: number) => (encode ? null : v);
  const cells = [...measured]
    .sort((a, b) => a.batch - b.batch)
    .map((m) => {
      const timing = cellTiming(m.runs);
      // The timed step: a decode step, or an encoder's forward over batch × prompt tokens.
      const step = encode ? timing.prefillMs : timing.decodeMedianMs;
      const tokensPerStep = encode ? m.batch * promptTokens : m.batch;
      const ranks = plan.ranks.map((_, r) => r);
      const loads = ranks.map((r) => workload(plan, r, m.batch, shape.uses));
      const model = workload(plan, undefined, m.batch, shape.uses);
      const kvPerToken = plan.ranks.map((r) => r.kvCacheBytesPerToken);
      const kvRead = kvPerToken.map((b, r) => m.batch * kvBytesReadPerSequence(b, context, shape.crossKvBytesPerSourceToken[r], promptTokens));
      const bytesPerStep = loads.map((l, r) => l.weightBytesPerStep + kvRead[r]!);
      const bandwidth = bytesPerStep.map((b) => bandwidthGBps(b, step));
      const total = bandwidth.reduce((a, b) => a + b, 0);
      const flops = loads.map((l) => flopPerSecond(l.parametersPerToken, tokensPerStep, step));
      const weights = ranks.map((r) => rankWeightBytes(plan, r));
      const kv = kvPerToken.map((b) => kvCacheBytes(b, tokens, m.batch));
      const throughput = perSecond(tokensPerStep, step);
      const cell: Omit<BenchCell, 'tp_summary'> = {
        formatVersion: BENCH_FORMAT_VERSION,
        mode: shape.mode,
        tp,
        batch: m.batch,
        batch_is_max: m.isMax,
        backend: session.backend.name,
        model: path.basename(session.dir),
        model_type: session.graph.modelType,
        parameters,
        storage_dtype: storage,
        kv_dtype: plan.options.kvDtype,
        bytes_per_parameter: bytesPerParameter(storage),
        prompt_tokens: promptTokens,
        new_tokens: encode ? 0 : newTokens,
        runs: m.runs.length,
        load_s: round(ctx.loadMs / 1000, 3),
        prefill_ms: round(timing.prefillMs, 2),
        time_to_first_token_ms: nullIfEncode(round(timing.prefillMs, 2)),
        prompt_tokens_per_s: round(perSecond(m.batch * promptTokens, timing.prefillMs), 1),
        forward_ms_p90: encode ? round(quantile(m.runs.map((r) => r.prefillMs), 0.9), 2) : null,
        decode_ms_per_token: nullIfEncode(round(step, 3)),
        decode_ms_per_token_p90: nullIfEncode(round(timing.decodeP90Ms, 3)),
        decode_ms_per_token_mean: nullIfEncode(round(timing.decodeMeanMs, 3)),
        decode_steps: timing.decodeSteps,
        generate_ms: nullIfEncode(round(timing.totalMs, 2)),
        tokens_per_s: nullIfEncode(round(perSecond(1, step), 2)),
        throughput_tokens_per_s: round(throughput, 2),
        throughput_tokens_per_s_per_rank: round(throughput / tp, 2),
        end_to_end_tokens_per_s: nullIfEncode(round(perSecond(m.batch * newTokens, timing.totalMs), 2)),
        parameters_per_token: Math.round(model.parametersPerToken),
        rank_parameters_per_token: loads.map((l) => Math.round(l.parametersPerToken)),
        moe: moe === undefined ? null : { experts: moe.experts, experts_per_token: moe.expertsPerToken, expert_share_read_per_step: round(expertShareRead(moe, m.batch), 6) },
        weight_bytes_per_step: loads.map((l) => Math.round(l.weightBytesPerStep)),
        kv_cache_bytes_per_token: kvPerToken,
        mean_context_tokens: context,
        kv_bytes_read_per_step: kvRead.map(Math.round),
        bytes_per_step: bytesPerStep.map(Math.round),
        bandwidth_gb_per_s_per_rank: bandwidth.map((b) => round(b, 3)),
        bandwidth_gb_per_s: round(total, 3),
        bandwidth_share: ctx.readBandwidth === null ? null : round(total / ctx.readBandwidth.gb_per_s, 4),
        flop_per_s_per_rank: flops.map(Math.round),
        flop_per_s: Math.round(flops.reduce((a, b) => a + b, 0)),
        model_flop_per_s: Math.round(flopPerSecond(model.parametersPerToken, m.batch, step)),
        weights_bytes: weights,
        kv_cache_bytes: kv,
        workspace_bytes: m.deviceBytes.map((d, r) => Math.max(0, d - weights[r]! - kv[r]!)),
        device_peak_bytes: m.deviceBytes,
        rank_memory_mb: m.deviceBytes.map((d) => round(d / MiB, 1)),
        peak_rss_mb: round(m.peakRssBytes / MiB, 1),
        prefill_ms_runs: m.runs.map((r) => round(r.prefillMs, 2)),
        decode_ms_per_token_runs: encode ? [] : m.runs.map((r) => round(r.decodeMeanMs, 3)),
        memory_budget_bytes: ctx.budget,
        max_batch: max === null ? null : max.batch,
        max_batch_limited_by_rank: max === null ? null : max.limitingRank,
        read_bandwidth: ctx.readBandwidth,
        machine: ctx.machine,
      };
      return cell;
    });
  const best = cells.reduce((a, b) => (b.throughput_tokens_per_s_per_rank > a.throughput_tokens_per_s_per_rank ? b : a));
  const largest = cells.at(-1)!;
  const summary: TpSummary = {
    weights_bytes_per_rank: Math.max(...largest.weights_bytes),
    device_peak_bytes_per_rank: Math.max(...largest.device_peak_bytes),
    max_batch: max === null ? null : max.batch,
    max_throughput_tokens_per_s_per_rank: best.throughput_tokens_per_s_per_rank,
    max_flop_per_s_per_rank: Math.round(Math.max(...cells.map((c) => c.flop_per_s / tp))),
    best_batch: best.batch,
  };
  return cells.map((c) => ({ ...c, tp_summary: summary }));
}
