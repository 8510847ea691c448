/** `tp bench` end to end on a tiny llama: the JSON cells, the tables, the chart (behaviour, not speed). */
import { readFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, tinyLlama } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tinyLlama('bench-llama');
});

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
/** a ≈ b within 1% (the JSON rounds times to µs and rates to 0.01; short runs make that relative error visible). */
const near = (a: number, b: number, what = '') => expect(Math.abs(a / b - 1), `${what}: ${a} vs ${b}`).toBeLessThan(0.01);
const MiB = 2 ** 20;

describe('tp bench', () => {
  it('--json: one cell per (tp, batch) with every number, its inputs, and the first format\'s fields', async () => {
    const { code, stdout, stderr } = await runCli(['bench', dir, '--tp', '1,2', '--batch', '2,1', '--prompt', '4', '--new', '5', '--runs', '2', '--read-bandwidth', '10', '--json']);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const cells = stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(cells.map((c) => [c.tp, c.batch])).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
      [2, 2],
    ]);
    for (const c of cells) {
      // The fields tools/compare-llamacpp and bench:cpu read, with their meaning.
      for (const key of ['decode_ms_per_token', 'prefill_ms', 'load_s', 'peak_rss_mb', 'tokens_per_s']) {
        expect(typeof c[key], key).toBe('number');
        expect(c[key], key).toBeGreaterThan(0);
      }
      expect(c).toMatchObject({ formatVersion: 1, prompt_tokens: 4, new_tokens: 5, runs: 2, backend: 'cpu', model: 'bench-llama', model_type: 'llama', storage_dtype: 'f32', kv_dtype: 'f32', bytes_per_parameter: 4 });
      expect(c.rank_memory_mb).toHaveLength(c.tp);
      for (const m of c.rank_memory_mb) expect(m).toBeGreaterThan(0);
      expect(c.prefill_ms_runs).toHaveLength(2);
      expect(c.decode_ms_per_token_runs).toHaveLength(2);
      expect(c.machine.node).toBe(process.version);
      // compare-llamacpp spreads a cell into its own records: these keys would overwrite its labels.
      for (const key of ['dtype', 'kind', 'engine', 'cores', 'round', 'order', 'command', 'wall_s', 'load_average_1m']) expect(c, key).not.toHaveProperty(key);

      // Latency: decode steps only (runs × (new − 1)), p90 ≥ median; time to first token = prefill.
      expect(c.decode_steps).toBe(2 * 4);
      expect(c.decode_ms_per_token_p90).toBeGreaterThanOrEqual(c.decode_ms_per_token);
      expect(c.time_to_first_token_ms).toBe(c.prefill_ms);
      near(c.tokens_per_s, 1000 / c.decode_ms_per_token, 'tokens_per_s');
      near(c.prompt_tokens_per_s, (c.batch * 4 * 1000) / c.prefill_ms, 'prompt_tokens_per_s');
      // Throughput: the whole batch, and per rank.
      near(c.throughput_tokens_per_s, (c.batch * 1000) / c.decode_ms_per_token, 'throughput');
      near(c.throughput_tokens_per_s_per_rank, c.throughput_tokens_per_s / c.tp, 'per rank');

      // Formula inputs, one entry per rank.
      for (const key of ['rank_parameters_per_token', 'weight_bytes_per_step', 'kv_cache_bytes_per_token', 'kv_bytes_read_per_step', 'bytes_per_step', 'bandwidth_gb_per_s_per_rank', 'flop_per_s_per_rank', 'weights_bytes', 'kv_cache_bytes', 'workspace_bytes', 'device_peak_bytes']) {
        expect(c[key], key).toHaveLength(c.tp);
        for (const v of c[key]) expect(v, key).toBeGreaterThan(key === 'workspace_bytes' ? -1 : 0);
      }
      expect(c.moe).toBeNull();
      expect(c.mean_context_tokens).toBe(4 + 5 / 2);
      c.bytes_per_step.forEach((b: number, r: number) => {
        near(b, c.weight_bytes_per_step[r] + c.kv_bytes_read_per_step[r], 'bytes per step');
        near(c.kv_bytes_read_per_step[r], c.kv_cache_bytes_per_token[r] * c.batch * 6.5, 'KV read');
        // Weights read per step: everything the rank holds but the embedding table, so less than it holds.
        expect(c.weight_bytes_per_step[r]).toBeLessThan(c.weights_bytes[r]);
        // bandwidth = bytes per step ÷ the median step; FLOP/s = 2 × parameters × batch ÷ the step.
        expect(Math.abs(c.bandwidth_gb_per_s_per_rank[r] - b / (c.decode_ms_per_token / 1000) / 1e9), 'bandwidth (3 decimals)').toBeLessThanOrEqual(5e-4 + 0.01 * c.bandwidth_gb_per_s_per_rank[r]);
        near(c.flop_per_s_per_rank[r], (2 * c.rank_parameters_per_token[r] * c.batch) / (c.decode_ms_per_token / 1000), 'FLOP/s');
      });
      // Each GB/s is rounded to 3 decimals: the sum of rounded values may differ by 0.0005 per rank.
      expect(Math.abs(c.bandwidth_gb_per_s - sum(c.bandwidth_gb_per_s_per_rank)), 'bandwidth sum').toBeLessThanOrEqual(0.0005 * (c.tp + 1) + 0.01 * c.bandwidth_gb_per_s);
      near(c.bandwidth_share, c.bandwidth_gb_per_s / 10, 'share');
      expect(c.read_bandwidth).toEqual({ gb_per_s: 10, given: true });
      expect(c.parameters_per_token).toBeLessThan(c.parameters);
      if (c.tp === 2) expect(sum(c.rank_parameters_per_token)).toBe(c.parameters_per_token);

      // Memory per rank: KV cache at prompt + new tokens, workspace = device − weights − KV.
      c.kv_cache_bytes.forEach((kv: number, r: number) => {
        expect(kv).toBe(c.kv_cache_bytes_per_token[r] * 9 * c.batch);
        expect(c.workspace_bytes[r]).toBe(Math.max(0, c.device_peak_bytes[r] - c.weights_bytes[r] - kv));
        near(c.rank_memory_mb[r], c.device_peak_bytes[r] / MiB, 'rank_memory_mb');
      });
      // The default budget: what a CPU rank holds (4 GiB of WebAssembly memory).
      expect(c.memory_budget_bytes).toBe(2 ** 32);
      expect(Number.isInteger(c.max_batch)).toBe(true);
      expect(c.max_batch).toBeGreaterThanOrEqual(2);
      expect(c.tp_summary.max_batch).toBe(c.max_batch);
    }
    // The tp summary is the same in each of a tp's cells.
    expect(cells[0].tp_summary).toEqual(cells[1].tp_summary);
    expect(cells[0].tp_summary.max_throughput_tokens_per_s_per_rank).toBe(Math.max(cells[0].throughput_tokens_per_s_per_rank, cells[1].throughput_tokens_per_s_per_rank));
    // Weights per rank: tp 2 splits them (the embedding is replicated, so each rank holds more than half).
    expect(cells[2].weights_bytes[0]).toBeLessThan(cells[0].weights_bytes[0]);
    expect(sum(cells[2].weights_bytes)).toBeGreaterThan(cells[0].weights_bytes[0]);
    // Progress on stderr, one line per step; no loading bars with --json.
    expect(stderr).toContain('bench: tp 2, batch 2: run 2/2: prefill');
    expect(stderr).not.toContain('[#');
    expect(stderr).not.toContain('measuring');
  });

  it('as tools/compare-llamacpp runs it: one JSON line; the read bandwidth measured once', async () => {
    const { code, stdout, stderr } = await runCli(['bench', dir, '--tp', '1', '--backend', 'cpu', '--prompt', '3', '--new', '3', '--runs', '1', '--dtype', 'auto', '--json']);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const c = JSON.parse(lines[0]!);
    expect(c.batch).toBe(1);
    expect(c.read_bandwidth.method).toMatch(/^(wasm-simd|typed-array)$/);
    expect(c.read_bandwidth.threads).toBe(os.availableParallelism());
    expect(c.read_bandwidth.gb_per_s).toBeGreaterThan(0);
    expect(c.bandwidth_share).toBeGreaterThan(0);
    expect(stderr.match(/bench: measuring the machine's read bandwidth/g)).toHaveLength(1);
  });

  it('bf16 storage: 2 bytes per parameter', async () => {
    const { code, stdout } = await runCli(['bench', dir, '--tp', '1', '--prompt', '3', '--new', '2', '--runs', '1', '--dtype', 'bf16', '--read-bandwidth', '10', '--json', '--quiet']);
    expect(code).toBe(0);
    const c = JSON.parse(stdout);
    expect(c).toMatchObject({ storage_dtype: 'bf16', bytes_per_parameter: 2 });
  });

  it('without --json: the speed, memory and per-tp tables; --chart writes the SVG', async () => {
    const chart = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-bench-chart-')), 'bench.svg');
    const { code, stdout } = await runCli(['bench', dir, '--tp', '1,2', '--batch', '1,2', '--prompt', '3', '--new', '3', '--runs', '1', '--read-bandwidth', '12.5', '--chart', chart, '--quiet']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^bench-llama \(llama, [\d.]+M parameters, f32 weights, f32 KV cache\) · cpu · prompt 3 tokens · 3 new tokens · 1 run per cell\n/);
    expect(stdout).toContain('machine read bandwidth: 12.5 GB/s (given with --read-bandwidth)');
    expect(stdout).toMatch(/tp\s+batch\s+prefill ms\s+prompt tok\/s\s+decode ms\/token\s+p90\s+tokens\/s\s+tokens\/s\/rank\s+GB\/s per rank\s+GB\/s\s+% of read bw\s+GFLOP\/s per rank\n/);
    expect(stdout).toMatch(/\n\s*2\s+2(\s+[\d.]+){6}\s+[\d.]+ \/ [\d.]+\s+[\d.]+\s+\d+\s+[\d.]+ \/ [\d.]+\n/);
    expect(stdout).toMatch(/tp\s+batch\s+weights\s+KV cache\s+workspace\s+device peak\s+peak RSS \(process\)\n/);
    expect(stdout).toMatch(/per tp \(budget 4\.00 GiB per rank, prompt \+ new = 6 tokens per sequence\)\ntp\s+weights per rank MiB\s+device peak per rank MiB\s+max batch\s+max tokens\/s per rank\s+max GFLOP\/s per rank\n/);
    expect(stdout).toMatch(/\n\s*2\s+[\d.]+\s+[\d.]+\s+\d+\s+[\d.]+ \(batch [12]\)\s+[\d.]+\n$/);
    const svg = await readFile(chart, 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect([...svg.matchAll(/<polyline class="series" data-series="([^"]+)"/g)].map((m) => m[1])).toEqual(['tp 1', 'tp 2', 'tp 1', 'tp 2', 'weights', 'KV cache', 'device peak']);
  });

  it('--batch max measures the largest batch the budget fits; a budget nothing fits says so', async () => {
    const { code, stdout, stderr } = await runCli(['bench', dir, '--tp', '1', '--batch', 'max', '--memory-budget', '3MiB', '--prompt', '3', '--new', '2', '--runs', '1', '--read-bandwidth', '10', '--json']);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const cells = stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    // Batch 1 is measured first (nothing else to estimate the workspace from), then the max.
    expect(cells[0].batch).toBe(1);
    const max = cells.find((c) => c.batch_is_max);
    expect(max).toBeDefined();
    expect(max.batch).toBe(max.max_batch);
    expect(max.max_batch).toBeGreaterThanOrEqual(1);
    expect(max.memory_budget_bytes).toBe(3 * MiB);
    // What the estimate said fits: weights + KV cache + workspace within the budget on the probe's numbers.
    expect(cells[0].weights_bytes[0] + cells[0].kv_cache_bytes_per_token[0] * 5 * max.batch).toBeLessThanOrEqual(3 * MiB);

    const none = await runCli(['bench', dir, '--tp', '1', '--batch', '1,max', '--memory-budget', '100KiB', '--prompt', '3', '--new', '2', '--runs', '1', '--read-bandwidth', '10', '--json']);
    expect(none.code).toBe(0);
    const only = none.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(only).toHaveLength(1);
    expect(only[0].max_batch).toBe(0);
    expect(none.stderr).toContain('not even batch 1 fits the budget');
  });

  it('bad arguments exit 2; an unwritable --chart fails before loading', async () => {
    for (const argv of [
      ['bench'],
      ['bench', dir, '--tp', '1,1'],
      ['bench', dir, '--tp', '1,x'],
      ['bench', dir, '--new', '1'],
      ['bench', dir, '--runs', '0'],
      ['bench', dir, '--batch', '0'],
      ['bench', dir, '--batch', '2,2'],
      ['bench', dir, '--batch', 'most'],
      ['bench', dir, '--memory-budget', 'lots'],
      ['bench', dir, '--read-bandwidth', '0'],
      ['bench', dir, '--dtype', 'f8'],
    ]) {
      const { code, stderr } = await runCli(argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(stderr).toMatch(/^tp: .*\nRun "tp bench --help" for usage\.\n$/);
    }
    const { code, stderr } = await runCli(['bench', dir, '--chart', path.join(os.tmpdir(), 'no-such-folder-tp', 'x.svg'), '--read-bandwidth', '1']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^tp: error \[write-failed\]: cannot write .*x\.svg: the folder .* does not exist\n$/);
  });

  it('--help states the formulas and what the read bandwidth measures', async () => {
    const { code, stdout } = await runCli(['bench', '--help']);
    expect(code).toBe(0);
    for (const text of ['--batch LIST', '--memory-budget', '--chart FILE', '--dtype', '2 × parameters per token × batch ÷ decode step time', 'Only reads are', 'prefill excluded', 'decode_ms_per_token']) expect(stdout).toContain(text);
  });
});
