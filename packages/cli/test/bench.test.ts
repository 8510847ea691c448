/** `tp bench`: the JSON lines and the table (behaviour, not speed). */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, tinyLlama } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tinyLlama('bench-llama');
});

describe('tp bench', () => {
  it('--json prints one parseable line per tp with the required keys and positive numbers', async () => {
    const { code, stdout, stderr } = await runCli(['bench', dir, '--tp', '1,2', '--prompt', '4', '--new', '5', '--runs', '2', '--json']);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const results = lines.map((l) => JSON.parse(l));
    expect(results.map((r) => r.tp)).toEqual([1, 2]);
    for (const r of results) {
      for (const key of ['decode_ms_per_token', 'prefill_ms', 'load_s', 'peak_rss_mb', 'tokens_per_s']) {
        expect(typeof r[key], key).toBe('number');
        expect(r[key], key).toBeGreaterThan(0);
      }
      expect(r).toMatchObject({ prompt_tokens: 4, new_tokens: 5, runs: 2, backend: 'cpu', model: 'bench-llama', model_type: 'llama' });
      expect(r.rank_memory_mb).toHaveLength(r.tp);
      for (const m of r.rank_memory_mb) expect(m).toBeGreaterThan(0);
      expect(r.prefill_ms_runs).toHaveLength(2);
      expect(r.decode_ms_per_token_runs).toHaveLength(2);
      expect(r.machine.cores).toBeGreaterThan(0);
      expect(r.machine.node).toBe(process.version);
    }
    // Progress on stderr, one line per step; no loading bars with --json.
    expect(stderr).toContain('bench: tp 2: run 2/2: prefill');
    expect(stderr).not.toContain('[#');
  });

  it('without --json prints a table, one row per tp', async () => {
    const { code, stdout } = await runCli(['bench', dir, '--tp', '2', '--prompt', '3', '--new', '3', '--runs', '1', '--quiet']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^bench-llama \(llama, [\d.]+M parameters\) · cpu · prompt 3 tokens · 3 new tokens · median of 1 run\n/);
    expect(stdout).toMatch(/tp\s+load s\s+prefill ms\s+decode ms\/token\s+tokens\/s\s+peak RSS MiB\s+per-rank memory MiB\n/);
    expect(stdout).toMatch(/\n\s*2\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+ \/ \d+\n$/);
  });

  it('bad arguments exit 2', async () => {
    for (const argv of [['bench'], ['bench', dir, '--tp', '1,1'], ['bench', dir, '--tp', '1,x'], ['bench', dir, '--new', '1'], ['bench', dir, '--runs', '0']]) {
      const { code, stderr } = await runCli(argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(stderr).toMatch(/^tp: .*\nRun "tp bench --help" for usage\.\n$/);
    }
  });
});
