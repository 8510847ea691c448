/** `tp bench` results: one JSON object per tp, and the table made from them. */
import os from 'node:os';
import { renderTable } from './units.js';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memory_gib: number;
  node: string;
  platform: string;
  arch: string;
}

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
  /** Median time per generated token after the first. */
  decode_ms_per_token: number;
  tokens_per_s: number;
  /** Highest process RSS the ranks sampled (after loading and after every forward), in MiB. */
  peak_rss_mb: number;
  /** Per rank: the memory its device holds (weights, KV cache, buffers), in MiB. Ranks are threads of one process, so RSS is not per rank. */
  rank_memory_mb: number[];
  prefill_ms_runs: number[];
  decode_ms_per_token_runs: number[];
  machine: MachineInfo;
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
    r.decode_ms_per_token.toFixed(2),
    r.tokens_per_s.toFixed(1),
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
