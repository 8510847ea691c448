/** `tp bench` results: one JSON object per (tp, batch) cell, and the tables made from them. */
import os from 'node:os';
import type { ReadBandwidth } from '../bench/read-bandwidth.js';
import { formatBytes, renderTable } from './units.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
  platform: string;
  arch: string;
}

/** The fields of the first, one-row-per-tp format; every `BenchCell` still has them, with the same meaning. */
export interface BenchResult {
  tp: number;
  backend: string;
  model: string;
  model_type: string;
  parameters: number;
  prompt_tokens: number;
  new_tokens: number;
  runs: number;
  /** Wall time of initInference: plan, start the ranks, every rank reads its share. */
  load_s: number;
  /** Median time to the first generated token: a forward over the prompt (plus choosing the token). */
  prefill_ms: number;
  /** Median time per generated token after the first (per sequence: one decode step); null for an encoder. */
  decode_ms_per_token: number | null;
  /** 1000 / decode_ms_per_token: tokens per second of one sequence; null for an encoder. */
  tokens_per_s: number | null;
  /** Highest process RSS the ranks sampled (after loading and after every forward), in MiB. */
  peak_rss_mb: number;
  /** Per rank: the memory its device holds (weights, KV cache, buffers), in MiB. Ranks are threads of one process, so RSS is not per rank. */
  rank_memory_mb: number[];
  prefill_ms_runs: number[];
  /** Per run: the mean decode step, (last token − first token) ÷ (new − 1). */
  decode_ms_per_token_runs: number[];
  machine: MachineInfo;
}

export const BENCH_FORMAT_VERSION = 1;

/**
 * One (tp, batch) cell of `tp bench --json`. Arrays have one entry per rank. Bytes are bytes, times
 * milliseconds, GB/s 1e9 bytes per second; `_mb` fields (kept from the first format) are MiB.
 */
export interface BenchCell extends BenchResult {
  formatVersion: typeof BENCH_FORMAT_VERSION;
  /**
   * `generate` (causal LMs and encoder–decoders): decode steps are timed, prefill apart. `encode`
   * (encoders): the timed step is one forward of the batch — `prefill_ms` is its median,
   * `prompt_tokens_per_s` = `throughput_tokens_per_s` = batch × prompt ÷ forward time, and bandwidth
   * and FLOP/s are per forward; the decode fields are null, `new_tokens` and `decode_steps` 0.
   */
  mode: 'generate' | 'encode';
  /** Sequences generated together. */
  batch: number;
  /** True for the cell `--batch max` asked for (its batch is `max_batch`). */
  batch_is_max: boolean;
  /** The weights' storage dtype (most bytes) and the KV cache's. */
  storage_dtype: string;
  kv_dtype: string;
  /** Bytes per parameter of `storage_dtype`: f32 4, f16 2, bf16 2. */
  bytes_per_parameter: number;

  // Latency. Decode steps exclude the prefill; every step makes one token for each sequence.
  /** Median time to the first token (= prefill_ms: the prefill forward chooses the first token); null for an encoder. */
  time_to_first_token_ms: number | null;
  /** batch × prompt_tokens ÷ prefill time. */
  prompt_tokens_per_s: number;
  /** Encoders: the 90th percentile of the runs' forward times (null when generating). */
  forward_ms_p90: number | null;
  decode_ms_per_token_p90: number | null;
  decode_ms_per_token_mean: number | null;
  /** Decode steps timed (runs × (new − 1)). */
  decode_steps: number;
  /** Median wall time of one generation (prefill and every decode step); null for an encoder. */
  generate_ms: number | null;

  // Throughput.
  /** batch × 1000 ÷ decode_ms_per_token: tokens the whole batch generates per second while decoding (encoders: tokens encoded per second). */
  throughput_tokens_per_s: number;
  throughput_tokens_per_s_per_rank: number;
  /** batch × new_tokens ÷ generate_ms: with the prefill; null for an encoder. */
  end_to_end_tokens_per_s: number | null;

  // Formula inputs.
  /** Parameters multiplied per token by the unsharded model (MoE: the active ones). */
  parameters_per_token: number;
  /** The same per rank (replicated weights count on every rank holding them). */
  rank_parameters_per_token: number[];
  /** MoE: experts E, experts per token k, and the share of the experts' weights one decode step reads, 1 − (1 − k/E)^batch. */
  moe: { experts: number; experts_per_token: number; expert_share_read_per_step: number } | null;
  /** Weight bytes each rank reads per decode step (storage dtype); an encoder–decoder's step reads only the decoder's; an encoder's forward, every weight. */
  weight_bytes_per_step: number[];
  /** KV-cache bytes per position per sequence (KV dtype): the self-attention caches (an encoder has none). */
  kv_cache_bytes_per_token: number[];
  /** Mean keys a decode step's self-attention attends to: prompt + new/2 (encoder–decoders: 1 + new/2 decoder positions; encoders 0). */
  mean_context_tokens: number;
  /** kv_cache_bytes_per_token × batch × mean_context_tokens (encoder–decoders: + the cross-attention cache over the prompt, per sequence). */
  kv_bytes_read_per_step: number[];
  /** weight_bytes_per_step + kv_bytes_read_per_step. */
  bytes_per_step: number[];

  // Bandwidth: bytes_per_step ÷ decode_ms_per_token.
  bandwidth_gb_per_s_per_rank: number[];
  bandwidth_gb_per_s: number;
  /** bandwidth_gb_per_s ÷ read_bandwidth.gb_per_s (null when it was not measured). */
  bandwidth_share: number | null;

  // FLOP/s: 2 × parameters per token × batch ÷ decode step.
  flop_per_s_per_rank: number[];
  /** The sum over ranks (replicated work counted on each rank). */
  flop_per_s: number;
  /** With the unsharded parameters_per_token: the model's useful work. */
  model_flop_per_s: number;

  // Memory per rank.
  /** Weights held (plan.ranks[r].paramBytes: every tensor the rank holds, in its storage dtype). */
  weights_bytes: number[];
  /** KV cache at this batch and prompt + new tokens: kv_cache_bytes_per_token × (prompt + new) × batch. */
  kv_cache_bytes: number[];
  /** device_peak − weights − KV cache (at least 0): activations, step arena, cache growth headroom, allocator slack. */
  workspace_bytes: number[];
  /** The memory the rank's device holds after the cell (on the CPU its WebAssembly memory, which only grows: the peak so far). */
  device_peak_bytes: number[];
  /** The budget per rank `max_batch` is computed for. */
  memory_budget_bytes: number | null;
  /** The largest batch of prompt + new tokens every rank fits in the budget (null without a budget). */
  max_batch: number | null;
  max_batch_limited_by_rank: number | null;
  /** The DeepSpeed-tutorial summary of this cell's tp (the same in each of its cells). */
  tp_summary: TpSummary;
  /** The machine's measured read bandwidth (null when given with --read-bandwidth: then gb_per_s only). */
  read_bandwidth: ReadBandwidth | { gb_per_s: number; given: true } | null;
}

export interface TpSummary {
  /** The largest rank's weights. */
  weights_bytes_per_rank: number;
  /** The largest rank's device memory at the largest batch measured. */
  device_peak_bytes_per_rank: number;
  max_batch: number | null;
  /** Over this tp's cells: the best throughput per rank and the batch it was reached at. */
  max_throughput_tokens_per_s_per_rank: number;
  max_flop_per_s_per_rank: number;
  best_batch: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: os.availableParallelism(),
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
  };
}

export function describeMachine(m: MachineInfo): string {
  return `${m.cpu} · ${m.cores} cores · ${m.memory_gib} GiB · ${m.platform}-${m.arch} · Node ${m.node}`;
}

export function renderBenchTable(results: readonly BenchResult[]): string {
  const rows = results.map((r) => [
    String(r.tp),
    r.load_s.toFixed(2),
    r.prefill_ms.toFixed(1),
    r.decode_ms_per_token === null ? '—' : r.decode_ms_per_token.toFixed(2),
    r.tokens_per_s === null ? '—' : r.tokens_per_s.toFixed(1),
    r.peak_rss_mb.toFixed(0),
    r.rank_memory_mb.map((m) => m.toFixed(0)).join(' / '),
  ]);
  const first = results[0];
  const lines: string[] = [];
  if (first !== undefined) {
    lines.push(
      `${first.model} (${first.model_type}, ${(first.parameters / 1e6).toFixed(1)}M parameters) · ${first.backend} · prompt ${first.prompt_tokens} tokens · ${first.new_tokens} new tokens · median of ${first.runs} run${first.runs === 1 ? '' : 's'}`,
    );
    lines.push('');
  }
  lines.push(renderTable(['tp', 'load s', 'prefill ms', 'decode ms/token', 'tokens/s', 'peak RSS MiB', 'per-rank memory MiB'], rows, [0, 1, 2, 3, 4, 5, 6]));
  return lines.join('\n');
}

const MiB = 2 ** 20;
const maxOf = (values: readonly number[]) => Math.max(0, ...values);
const perRank = (values: readonly number[], digits: number) => values.map((v) => v.toFixed(digits)).join(' / ');

/** The first line of a report: the model, backend, dtypes, lengths and runs; the read bandwidth under it. */
export function describeBenchCells(cells: readonly BenchCell[]): string {
  const first = cells[0];
  if (first === undefined) return '';
  const lines = [
    first.mode === 'encode'
      ? `${first.model} (${first.model_type}, an encoder, ${(first.parameters / 1e6).toFixed(1)}M parameters, ${first.storage_dtype} weights) · ${first.backend} · ${first.prompt_tokens} tokens per sequence · ${first.runs} run${first.runs === 1 ? '' : 's'} per cell`
      : `${first.model} (${first.model_type}, ${(first.parameters / 1e6).toFixed(1)}M parameters, ${first.storage_dtype} weights, ${first.kv_dtype} KV cache) · ${first.backend} · prompt ${first.prompt_tokens} tokens · ${first.new_tokens} new tokens · ${first.runs} run${first.runs === 1 ? '' : 's'} per cell`,
  ];
  const bw = first.read_bandwidth;
  if (bw !== null) {
    lines.push(
      'given' in bw
        ? `machine read bandwidth: ${bw.gb_per_s.toFixed(1)} GB/s (given with --read-bandwidth)`
        : `machine read bandwidth: ${bw.gb_per_s.toFixed(1)} GB/s (measured: ${bw.threads} threads each summing ${(bw.bytes_per_thread / MiB).toFixed(0)} MiB, ${bw.method})`,
    );
  }
  return lines.join('\n');
}

const batchLabel = (c: BenchCell) => `${c.batch}${c.batch_is_max ? ' (max)' : ''}`;
const bandwidthColumns = (c: BenchCell) => [
  perRank(c.bandwidth_gb_per_s_per_rank, 2),
  c.bandwidth_gb_per_s.toFixed(2),
  c.bandwidth_share === null ? '—' : (c.bandwidth_share * 100).toFixed(0),
  perRank(
    c.flop_per_s_per_rank.map((f) => f / 1e9),
    2,
  ),
];
const ms = (v: number | null, digits: number) => (v === null ? '—' : v.toFixed(digits));

function generateSpeedTable(cells: readonly BenchCell[]): string {
  return renderTable(
    ['tp', 'batch', 'prefill ms', 'prompt tok/s', 'decode ms/token', 'p90', 'tokens/s', 'tokens/s/rank', 'GB/s per rank', 'GB/s', '% of read bw', 'GFLOP/s per rank'],
    cells.map((c) => [
      String(c.tp),
      batchLabel(c),
      c.prefill_ms.toFixed(1),
      c.prompt_tokens_per_s.toFixed(0),
      ms(c.decode_ms_per_token, 2),
      ms(c.decode_ms_per_token_p90, 2),
      c.throughput_tokens_per_s.toFixed(1),
      c.throughput_tokens_per_s_per_rank.toFixed(1),
      ...bandwidthColumns(c),
    ]),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  );
}

/** Encoders: the forward is the step. */
function encodeSpeedTable(cells: readonly BenchCell[]): string {
  return renderTable(
    ['tp', 'batch', 'forward ms', 'p90', 'tokens/s', 'tokens/s/rank', 'GB/s per rank', 'GB/s', '% of read bw', 'GFLOP/s per rank'],
    cells.map((c) => [
      String(c.tp),
      batchLabel(c),
      c.prefill_ms.toFixed(2),
      ms(c.forward_ms_p90, 2),
      c.throughput_tokens_per_s.toFixed(0),
      c.throughput_tokens_per_s_per_rank.toFixed(0),
      ...bandwidthColumns(c),
    ]),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
}

/**
 * The multi-cell report: speed per cell, memory per rank per cell, and the per-tp summary (memory per
 * rank, max batch, max throughput per rank), DeepSpeed's AutoTP tutorial table.
 */
export function renderBenchReport(cells: readonly BenchCell[]): string {
  if (cells.length === 0) return '';
  const first = cells[0]!;
  const speed = first.mode === 'encode' ? encodeSpeedTable(cells) : generateSpeedTable(cells);
  const memory = renderTable(
    ['tp', 'batch', 'weights', 'KV cache', 'workspace', 'device peak', 'peak RSS (process)'],
    cells.map((c) => [
      String(c.tp),
      `${c.batch}${c.batch_is_max ? ' (max)' : ''}`,
      (maxOf(c.weights_bytes) / MiB).toFixed(1),
      (maxOf(c.kv_cache_bytes) / MiB).toFixed(1),
      (maxOf(c.workspace_bytes) / MiB).toFixed(1),
      (maxOf(c.device_peak_bytes) / MiB).toFixed(1),
      c.peak_rss_mb.toFixed(0),
    ]),
    [0, 1, 2, 3, 4, 5, 6],
  );
  const tps = [...new Set(cells.map((c) => c.tp))];
  const summaryRows = tps.map((tp) => {
    const s = cells.find((c) => c.tp === tp)!.tp_summary;
    return [
      String(tp),
      (s.weights_bytes_per_rank / MiB).toFixed(1),
      (s.device_peak_bytes_per_rank / MiB).toFixed(1),
      s.max_batch === null ? '—' : String(s.max_batch),
      `${s.max_throughput_tokens_per_s_per_rank.toFixed(1)} (batch ${s.best_batch})`,
      (s.max_flop_per_s_per_rank / 1e9).toFixed(2),
    ];
  });
  const summary = renderTable(['tp', 'weights per rank MiB', 'device peak per rank MiB', 'max batch', 'max tokens/s per rank', 'max GFLOP/s per rank'], summaryRows, [0, 1, 2, 3, 4, 5]);
  const budget = first.memory_budget_bytes === null ? 'no memory budget' : `budget ${formatBytes(first.memory_budget_bytes)} per rank`;
  return [
    describeBenchCells(cells),
    '',
    first.mode === 'encode'
      ? 'speed: one forward of the whole batch (median and p90 of the runs); tokens/s = batch × prompt tokens ÷ forward time; GB/s = weights read per forward ÷ forward time'
      : 'speed: decode = one step (a token for every sequence), median and p90 of the steps, prefill excluded; tokens/s = the whole batch; GB/s = weights + KV cache read per step ÷ step time',
    speed,
    '',
    'memory per rank, MiB (the largest rank; KV cache at prompt + new tokens; workspace = device peak − weights − KV cache)',
    memory,
    '',
    `per tp (${budget}, prompt + new = ${first.prompt_tokens + first.new_tokens} tokens per sequence)`,
    summary,
  ].join('\n');
}
