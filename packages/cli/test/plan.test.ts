/** `tp plan`: the table, the JSON contract, and one clear line for every kind of bad input. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/index.js';
import { tinyLlama } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const GOLDEN = process.env.TP_SHARED_DIR ? path.join(process.env.TP_SHARED_DIR, 'golden') : path.resolve(here, '../../../../shared/golden');
const hasGolden = existsSync(GOLDEN);
if (!hasGolden && process.env.CI === 'true') throw new Error(`CI=true but ${GOLDEN} is missing`);
const skipNote = hasGolden ? '' : ` (skipped: ${GOLDEN} is absent)`;

async function run(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), isTty: false };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

describe(`tp plan on golden checkpoints${skipNote}`, () => {
  it.skipIf(!hasGolden)('prints a table with collapsed layer ranges, collectives and per-rank memory', async () => {
    const { code, stdout, stderr } = await run(['plan', path.join(GOLDEN, 'llama'), '--tp', '2']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/model\.layers\.\{i\}\.self_attn\.q_proj\.weight\s+0-1\s+attn\.q\s+column \(dim 0\)\s+\[32, 64\] ×2/);
    expect(stdout).toMatch(/model\.layers\.\{i\}\.self_attn\.o_proj\.weight\s+0-1\s+attn\.out\s+row \(dim 1\)\s+\[64, 32\] ×2/);
    expect(stdout).toContain('collectives in model.layers.*: mlp.down_proj (all-reduce), self_attn.o_proj (all-reduce)');
    expect(stdout).toMatch(/rank 1\s+241 KiB\s+241 KiB\s+57\.8%\s+256 B/);
    expect(stdout).toMatch(/unsharded\s+417 KiB\s+417 KiB\s+100%\s+512 B/);
  });

  it.skipIf(!hasGolden)('--json gives every tensor with name, shape, dtype, role, split, dim and per-rank ranges', async () => {
    for (const folder of ['llama', 'gpt2', 'falcon_new_arch', 't5']) {
      const { code, stdout } = await run(['plan', path.join(GOLDEN, folder), '--tp', '4', '--json']);
      expect(code).toBe(0);
      const plan = JSON.parse(stdout);
      expect(plan.formatVersion).toBe(1);
      expect(plan.tpSize).toBe(4);
      for (const t of plan.tensors) {
        expect(Object.keys(t)).toEqual(expect.arrayContaining(['name', 'shape', 'dtype', 'role', 'split', 'dim', 'ranks']));
        expect(['replicate', 'column', 'row', 'vocab']).toContain(t.split);
        expect(t.ranks).toHaveLength(4);
        for (const r of t.ranks) expect(r.ranges.length).toBeGreaterThan(0);
      }
    }
  });

  it.skipIf(!hasGolden)('an unsplittable tp is one line naming the tp values that work, exit 1', async () => {
    const { code, stdout, stderr } = await run(['plan', path.join(GOLDEN, 'codegen'), '--tp', '3']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^tp: error \[indivisible\]: .*tp values that work: 1, 2, 4\.\n$/);
  });

  it.skipIf(!hasGolden)('a policy file overrides the plan; a bad one is a clear error', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tp-policy-'));
    await writeFile(path.join(dir, 'good.json'), JSON.stringify({ 'layers.*.mlp.gate_proj': 'replicated', 'layers.*.mlp.up_proj': 'replicated', 'layers.*.mlp.down_proj': 'replicated' }));
    await writeFile(path.join(dir, 'nomatch.json'), JSON.stringify({ 'layers.*.mlp.fc9': 'colwise' }));
    await writeFile(path.join(dir, 'broken.json'), '{"a": ');
    const good = await run(['plan', path.join(GOLDEN, 'llama'), '--policy', path.join(dir, 'good.json'), '--json']);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout).tensors.find((t: { name: string }) => t.name === 'model.layers.0.mlp.down_proj.weight').split).toBe('replicate');
    const nomatch = await run(['plan', path.join(GOLDEN, 'llama'), '--policy', path.join(dir, 'nomatch.json')]);
    expect(nomatch.code).toBe(1);
    expect(nomatch.stderr).toContain('[policy-no-match]');
    expect(nomatch.stderr).toContain('Closest names in this model');
    const broken = await run(['plan', path.join(GOLDEN, 'llama'), '--policy', path.join(dir, 'broken.json')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('[policy-invalid]');
  });
});

describe('tp plan --dtype and --kv-dtype', () => {
  /** The memory table's rows: [label, reads, params, of unsharded, kv]. */
  const memory = (stdout: string) => {
    const lines = stdout.split('\n');
    const header = lines.findIndex((l) => l.includes('reads from disk'));
    return { header: lines[header]!, rows: lines.slice(header + 2).filter((l) => /^(rank \d+|unsharded)\s/.test(l)).map((l) => l.split(/\s{2,}/)) };
  };
  /** Elements of the tensors a plan (--json) reads: matrices (rank ≥ 2, held in the storage dtype) and vectors (held as f32). */
  const elements = (json: { tensors: Array<{ shape: number[]; read: boolean }> }) => {
    const read = json.tensors.filter((t) => t.read);
    const sum = (ts: typeof read) => ts.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    return { matrices: sum(read.filter((t) => t.shape.length >= 2)), vectors: sum(read.filter((t) => t.shape.length < 2)) };
  };

  it('a bf16 checkpoint: the header and the memory table say BF16 (auto keeps it as stored)', async () => {
    const dir = await tinyLlama('bf16-llama', 'bf16');
    const { code, stdout, stderr } = await run(['plan', dir, '--tp', '2']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.split('\n')[1]).toContain(' · BF16 · ');
    const { header, rows } = memory(stdout);
    expect(header).toContain('params (BF16)');
    expect(header).toMatch(/KV cache \/ token$/);
    expect(rows.length).toBe(3);
    // Matrices held as bf16 as read; vectors (norm weights) held as f32, twice their bytes on disk.
    const json = JSON.parse((await run(['plan', dir, '--tp', '2', '--json'])).stdout);
    expect(json.storageDtypes).toEqual(['bf16']);
    const { matrices, vectors } = elements(json);
    expect(json.totals.bytes).toBe((matrices + vectors) * 2);
    expect(json.totals.paramBytes).toBe(matrices * 2 + vectors * 4);
  });

  it('--dtype f32 on a bf16 checkpoint: "held as F32", params twice the bytes read; --kv-dtype bf16 halves the KV column', async () => {
    const dir = await tinyLlama('bf16-llama', 'bf16');
    const auto = await run(['plan', dir, '--tp', '2', '--json']);
    const wide = await run(['plan', dir, '--tp', '2', '--dtype', 'f32', '--kv-dtype', 'bf16', '--json']);
    expect(wide.code).toBe(0);
    const a = JSON.parse(auto.stdout);
    const w = JSON.parse(wide.stdout);
    expect(w.options).toMatchObject({ computeDtype: 'f32', storageDtype: 'f32', kvDtype: 'bf16' });
    expect(a.options).toMatchObject({ storageDtype: 'auto', kvDtype: 'f32' });
    const { matrices, vectors } = elements(w);
    expect(w.totals.paramBytes).toBe(2 * w.totals.bytes); // all f32, read as bf16
    expect(a.totals.paramBytes).toBe(matrices * 2 + vectors * 4);
    expect(w.totals.bytes).toBe(a.totals.bytes);
    expect(w.totals.kvCacheBytesPerToken).toBe(a.totals.kvCacheBytesPerToken / 2);
    expect(new Set(w.tensors.map((t: { storage: string }) => t.storage))).toEqual(new Set(['f32']));
    const table = await run(['plan', dir, '--tp', '2', '--dtype', 'F32', '--kv-dtype', 'bf16']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[1]).toContain(' · BF16, held as F32 · ');
    expect(memory(table.stdout).header).toContain('params (F32)');
    expect(memory(table.stdout).header).toContain('KV cache / token (BF16)');
  });

  it('--dtype bf16 on an f32 checkpoint halves the matrices in the params column', async () => {
    const dir = await tinyLlama('f32-llama');
    const { code, stdout } = await run(['plan', dir, '--tp', '2', '--dtype', 'bf16']);
    expect(code).toBe(0);
    expect(stdout.split('\n')[1]).toContain(' · F32, held as BF16 · ');
    const { header } = memory(stdout);
    expect(header).toContain('params (BF16)');
    const json = JSON.parse((await run(['plan', dir, '--tp', '2', '--dtype', 'bf16', '--json'])).stdout);
    expect(json.storageDtypes).toEqual(['bf16']);
    const { matrices, vectors } = elements(json);
    expect(json.totals.bytes).toBe((matrices + vectors) * 4);
    expect(json.totals.paramBytes).toBe(matrices * 2 + vectors * 4);
  });

  it('--dtype f16 on bf16 weights is refused in one line naming a tensor, exit 1', async () => {
    const dir = await tinyLlama('bf16-llama', 'bf16');
    const { code, stdout, stderr } = await run(['plan', dir, '--dtype', 'f16']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^tp: error \[dtype-unsupported\]: tensor "[^"]+": .*--dtype bf16.*\n$/);
  });

  it('an invalid value is a usage error naming the allowed values, exit 2', async () => {
    for (const [flag, value, allowed] of [
      ['--dtype', 'f8', 'auto, f32, f16, bf16'],
      ['--dtype', 'float32', 'auto, f32, f16, bf16'],
      ['--kv-dtype', 'auto', 'f32, f16, bf16'],
      ['--kv-dtype', 'int8', 'f32, f16, bf16'],
    ] as const) {
      const { code, stderr } = await run(['plan', '/nonexistent/model', flag, value]);
      expect(code, `${flag} ${value}`).toBe(2);
      expect(stderr).toBe(`tp: ${flag} must be one of ${allowed}, got "${value}"\nRun "tp plan --help" for usage.\n`);
    }
  });

  it('--help explains storage dtypes: auto = as stored, activations always f32', async () => {
    const { stdout } = await run(['plan', '--help']);
    for (const text of ['--dtype T', '--kv-dtype T', 'auto (default: as stored', 'Activations and accumulation are always f32', 'bf16', 'f16']) expect(stdout).toContain(text);
  });
});

describe('tp plan bad input', () => {
  it('a missing folder is one error line naming it, exit 1', async () => {
    const { code, stderr } = await run(['plan', '/nonexistent/model', '--tp', '2']);
    expect(code).toBe(1);
    expect(stderr).toBe('tp: error [file-not-found]: /nonexistent/model: no such folder. Pass the folder that holds config.json and the *.safetensors files\n');
  });

  it('usage mistakes exit 2 with a pointer to --help', async () => {
    for (const argv of [['plan'], ['plan', 'a', 'b'], ['plan', 'x', '--tp', '0'], ['plan', 'x', '--tp', 'two'], ['plan', 'x', '--bogus'], ['frobnicate']]) {
      const { code, stderr } = await run(argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(stderr).toMatch(/^tp: .*\nRun "tp (plan )?--help" for usage\.\n$/);
    }
  });

  it('--help teaches: options and examples', async () => {
    const { code, stdout } = await run(['plan', '--help']);
    expect(code).toBe(0);
    for (const text of ['--tp N', '--json', '--policy FILE', '--vocab-parallel', 'Examples:']) expect(stdout).toContain(text);
  });

  it('the built binary runs and exits with the same codes', async () => {
    const bin = path.resolve(here, '../dist/bin.js');
    const result = await promisify(execFile)(process.execPath, [bin, 'plan', '/nonexistent']).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('[file-not-found]');
  });
});
