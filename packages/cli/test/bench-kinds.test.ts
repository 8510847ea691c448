/**
 * `tp bench` on the other model kinds: an encoder's step is one forward of the batch (tokens encoded
 * per second, no decode fields); an encoder–decoder's decode step reads only the decoder, its
 * self-attention cache over 1 + new/2 positions and its cross-attention cache over the prompt.
 * Behaviour and formulas, not speed.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeTinyModel } from '@tp/tiny-models';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

let bert: string;
let t5: string;
beforeAll(async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'tp-bench-kinds-'));
  bert = path.join(root, 'bench-bert');
  t5 = path.join(root, 'bench-t5');
  await writeTinyModel(bert, { family: 'bert', hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 320, maxPositions: 64, seed: 5 });
  await writeTinyModel(t5, { family: 't5', hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 320, seed: 8 });
});

const near = (a: number, b: number, what = '') => expect(Math.abs(a / b - 1), `${what}: ${a} vs ${b}`).toBeLessThan(0.01);
const cellsOf = (stdout: string) => stdout.trimEnd().split('\n').map((l) => JSON.parse(l));

describe('tp bench on an encoder', () => {
  it('--json: the step is one forward of batch × prompt tokens; decode fields are null; every weight is read once per forward', async () => {
    const { code, stdout, stderr } = await runCli(['bench', bert, '--tp', '1,2', '--batch', '1,3', '--prompt', '6', '--runs', '2', '--read-bandwidth', '10', '--json']);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const cells = cellsOf(stdout);
    expect(cells.map((c) => [c.tp, c.batch])).toEqual([
      [1, 1],
      [1, 3],
      [2, 1],
      [2, 3],
    ]);
    for (const c of cells) {
      expect(c).toMatchObject({ formatVersion: 1, mode: 'encode', model_type: 'bert', prompt_tokens: 6, new_tokens: 0, decode_steps: 0 });
      for (const key of ['decode_ms_per_token', 'decode_ms_per_token_p90', 'decode_ms_per_token_mean', 'tokens_per_s', 'time_to_first_token_ms', 'generate_ms', 'end_to_end_tokens_per_s']) expect(c[key], key).toBeNull();
      expect(c.decode_ms_per_token_runs).toEqual([]);
      expect(c.prefill_ms_runs).toHaveLength(2);
      expect(c.forward_ms_p90).toBeGreaterThanOrEqual(c.prefill_ms);
      // Tokens encoded per second: batch × prompt ÷ the forward.
      near(c.throughput_tokens_per_s, (c.batch * 6 * 1000) / c.prefill_ms, 'throughput');
      near(c.prompt_tokens_per_s, c.throughput_tokens_per_s, 'prompt tokens/s');
      near(c.throughput_tokens_per_s_per_rank, c.throughput_tokens_per_s / c.tp, 'per rank');
      // No KV cache; the forward reads every weight but the lookup tables; FLOP/s count batch × prompt tokens.
      expect(c.kv_cache_bytes_per_token).toEqual(new Array(c.tp).fill(0));
      expect(c.kv_bytes_read_per_step).toEqual(new Array(c.tp).fill(0));
      expect(c.mean_context_tokens).toBe(0);
      c.flop_per_s_per_rank.forEach((f: number, r: number) => {
        near(f, (2 * c.rank_parameters_per_token[r] * c.batch * 6) / (c.prefill_ms / 1000), 'FLOP/s');
        // GB/s is rounded to 3 decimals in the JSON: tiny models read little.
        expect(Math.abs(c.bandwidth_gb_per_s_per_rank[r] - c.bytes_per_step[r] / (c.prefill_ms / 1000) / 1e9)).toBeLessThanOrEqual(5e-4 + 0.01 * c.bandwidth_gb_per_s_per_rank[r]);
        expect(c.weight_bytes_per_step[r]).toBeLessThan(c.weights_bytes[r]);
      });
    }
  });

  it('without --json: the encoder speed table and a chart of forward latency', async () => {
    const chart = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-bench-bert-chart-')), 'bench.svg');
    const { code, stdout } = await runCli(['bench', bert, '--tp', '1,2', '--batch', '1,2', '--prompt', '5', '--runs', '1', '--read-bandwidth', '10', '--chart', chart, '--quiet']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^bench-bert \(bert, an encoder, [\d.]+M parameters, f32 weights\) · cpu · 5 tokens per sequence · 1 run per cell\n/);
    expect(stdout).toMatch(/tp\s+batch\s+forward ms\s+p90\s+tokens\/s\s+tokens\/s\/rank\s+GB\/s per rank\s+GB\/s\s+% of read bw\s+GFLOP\/s per rank\n/);
    expect(stdout).not.toContain('decode ms/token');
    const svg = await readFile(chart, 'utf8');
    expect(svg).toContain('forward latency vs batch');
    expect(svg).toContain('tokens encoded/s (whole batch)');
    expect([...svg.matchAll(/<polyline class="series" data-series="([^"]+)"/g)].map((m) => m[1])).toEqual(['tp 1', 'tp 2', 'tp 1', 'tp 2', 'weights', 'KV cache', 'device peak']);
  });
});

describe('tp bench on an encoder–decoder', () => {
  it('a decode step reads the decoder only, its self cache over 1 + new/2 positions and the cross cache over the prompt', async () => {
    const { code, stdout, stderr } = await runCli(['bench', t5, '--tp', '1,2', '--batch', '2', '--prompt', '6', '--new', '4', '--runs', '1', '--read-bandwidth', '10', '--json']);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const [tp1, tp2] = cellsOf(stdout);
    for (const c of [tp1, tp2]) {
      expect(c).toMatchObject({ mode: 'generate', model_type: 't5', prompt_tokens: 6, new_tokens: 4, decode_steps: 3 });
      expect(c.mean_context_tokens).toBe(1 + 4 / 2);
      expect(typeof c.decode_ms_per_token).toBe('number');
    }
    // T5 (hidden 64, 4 heads × d_kv 16, 2 decoder layers, f32): the decoder self-attention keeps
    // k and v of 64 features per layer per position = 2 × 2 × 64 × 4 bytes; the cross-attention
    // cache as much per source token.
    expect(tp1.kv_cache_bytes_per_token).toEqual([1024]);
    expect(tp1.kv_bytes_read_per_step).toEqual([2 * (1024 * 3 + 1024 * 6)]);
    expect(tp2.kv_bytes_read_per_step).toEqual([2 * (512 * 3 + 512 * 6), 2 * (512 * 3 + 512 * 6)]);
    // The encoder's weights are not read by a decode step: per token, the decoder's matrices and
    // the head only — less than half of every matrix for this symmetric 2 + 2 layer model with a tied head.
    expect(tp1.parameters_per_token).toBeLessThan(tp1.parameters * 0.75);
    expect(tp2.rank_parameters_per_token[0] + tp2.rank_parameters_per_token[1]).toBe(tp1.parameters_per_token);
  });
});
