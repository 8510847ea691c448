/** The tiny-models command: help, one-line errors with exit 2, the summary and --json. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseCli, runCli } from '../src/cli.js';
import { FAMILY_NAMES } from '../src/index.js';
import { useTempDirs, withCheckpoint } from './helpers.js';

const tempDir = useTempDirs();

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } });
  return { code, stdout, stderr };
}

describe('tiny-models', () => {
  it('--help lists every family, the variants, the presets and an example', async () => {
    const { code, stdout, stderr } = await run('--help');
    expect(code).toBe(0);
    expect(stderr).toBe('');
    for (const family of FAMILY_NAMES) expect(stdout).toMatch(new RegExp(`^  ${family} `, 'm'));
    for (const variant of ['multi_query', 'new_arch', 'alibi_mha', 'mqa', 'mha']) expect(stdout).toContain(`--variant ${variant}`);
    expect(stdout).toContain('bench-llama-134m');
    expect(stdout).toContain('tiny-models --preset bench-llama-134m models/bench134');
  });

  it.each([
    [[], 'expected a family and an output folder'],
    [['llama'], 'expected a family and an output folder'],
    [['llama', 'out/a', 'out/b'], 'expected 2 arguments'],
    [['gpt5', 'out/a'], 'unknown family "gpt5"'],
    [['llama', 'out/a', '--hidden', '12x'], '--hidden expects a whole number, got "12x"'],
    [['llama', 'out/a', '--dtype', 'f8'], '--dtype must be one of f32, f16, bf16'],
    [['llama', 'out/a', '--frobnicate'], "Unknown option '--frobnicate'"],
    [['llama', 'out/a', '--tie', '--no-tie'], 'contradict'],
    [['--preset', 'huge', 'out/a'], 'unknown preset "huge"'],
    [['--preset', 'demo-llama'], '--preset takes one folder'],
    [['gpt2', 'out/a', '--kv-heads', '2'], 'gpt2: has no grouped-query attention'],
  ])('%j exits 2 with one line', async (argv, message) => {
    const { code, stdout, stderr } = await run(...argv);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(message);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^tiny-models: /);
    expect(stderr).not.toContain('    at ');
  });

  it('writes a model and prints a one-line summary with family, parameters, bytes and folder', async () => {
    const dir = await tempDir();
    const { code, stdout } = await run('falcon', dir, '--variant', 'new_arch', '--heads', '8', '--kv-heads', '2', '--dtype', 'bf16', '--seed', '3');
    expect(code).toBe(0);
    expect(stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(stdout).toMatch(/^falcon \(new_arch\): \d+(\.\d+)?K params, 19 tensors, bf16, \d+(\.\d+)? kB in 3 files -> /);
    expect(stdout.trimEnd().endsWith(dir)).toBe(true);
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.config).toMatchObject({ num_attention_heads: 8, num_kv_heads: 2, new_decoder_architecture: true, dtype: 'bfloat16' });
      expect(ckpt.tensor('transformer.h.0.self_attention.query_key_value.weight').dtype).toBe('BF16');
    });
  });

  it('--json prints the result object; --no-tokenizer and --shards are honoured', async () => {
    const dir = await tempDir();
    const { code, stdout } = await run('llama', dir, '--vocab', '512', '--no-tokenizer', '--shards', '2', '--json');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { dir: string; files: string[]; tensorCount: number; bytes: number; config: Record<string, unknown> };
    expect(result.dir).toBe(dir);
    expect(result.files).toEqual(['config.json', 'generation_config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
    expect(result.tensorCount).toBe(21);
    expect(result.config['vocab_size']).toBe(512);
    expect(result.bytes).toBeGreaterThan(4 * (512 * 64 * 2));
  });

  it('--preset fills the options and later flags override them', () => {
    const parsed = parseCli(['--preset', 'bench-llama-134m', 'out/bench', '--dtype', 'bf16']);
    expect(parsed).toMatchObject({
      help: false,
      dir: 'out/bench',
      options: { family: 'llama', hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 2048, vocab: 32000, dtype: 'bf16' },
    });
  });

  const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/bin.js');
  it.skipIf(!existsSync(bin))(`the built bin exits 2 on a bad flag and 0 on a write${existsSync(bin) ? '' : ' (skipped: run pnpm build first)'}`, async () => {
    const exec = promisify(execFile);
    const bad = await exec(process.execPath, [bin, 'llama', 'out/x', '--layers', '-3']).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    const dir = await tempDir();
    const ok = await exec(process.execPath, [bin, 'gpt2', dir]);
    expect(ok.stdout).toMatch(/^gpt2: .* params, 28 tensors, f32/);
  });
});
