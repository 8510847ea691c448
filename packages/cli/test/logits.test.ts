/** `tp logits`: the [T][V] JSON, equal to session.logits(), written all or nothing. */
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backend } from '@tp/backend-cpu';
import { initInference } from '@tp/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { float32Text } from '../src/index.js';
import { runCli, tinyLlama } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await tinyLlama();
});

async function sessionLogits(tpSize: number, tokens: number[]): Promise<Float32Array> {
  const session = await initInference(dir, { backend, tpSize });
  try {
    return (await session.logits([tokens]))[0]!;
  } finally {
    await session.dispose();
  }
}

describe('tp logits', () => {
  it('--out writes {tokens, logits} of shape [T][V] equal to session.logits()', async () => {
    const out = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-logits-')), 'logits.json');
    const tokens = [1, 17, 250, 3, 99];
    const { code, stdout, stderr } = await runCli(['logits', dir, '--tokens', tokens.join(','), '--tp', '2', '--out', out]);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    expect(stdout).toBe('');
    const json = JSON.parse(await readFile(out, 'utf8'));
    expect(Object.keys(json).sort()).toEqual(['logits', 'tokens']);
    expect(json.tokens).toEqual(tokens);
    expect(json.logits).toHaveLength(tokens.length);
    for (const row of json.logits) expect(row).toHaveLength(320);
    const expected = await sessionLogits(2, tokens);
    const flat = Float32Array.from(json.logits.flat() as number[]);
    expect(flat).toEqual(expected); // every value reads back as the same float32
    expect(await readdir(path.dirname(out))).toEqual(['logits.json']); // no temporary file left
  });

  it('without --out the JSON goes to stdout; --text encodes with the tokenizer', async () => {
    const { code, stdout, stderr } = await runCli(['logits', dir, '--text', 'Hello world']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const json = JSON.parse(stdout);
    expect(json.tokens.length).toBeGreaterThan(1);
    expect(json.logits).toHaveLength(json.tokens.length);
    expect(Float32Array.from(json.logits.flat() as number[])).toEqual(await sessionLogits(1, json.tokens));
  });

  it('--dtype bf16 holds the weights as bf16: logits close to f32 (compute is f32), --dtype f32 equal to the default', async () => {
    const tokens = [1, 17, 250, 3];
    const base = await runCli(['logits', dir, '--tokens', tokens.join(',')]);
    const f32 = await runCli(['logits', dir, '--tokens', tokens.join(','), '--dtype', 'f32']);
    const bf16 = await runCli(['logits', dir, '--tokens', tokens.join(','), '--dtype', 'BF16']);
    expect([base.code, f32.code, bf16.code]).toEqual([0, 0, 0]);
    expect(f32.stdout).toBe(base.stdout);
    const a = (JSON.parse(base.stdout).logits as number[][]).flat();
    const b = (JSON.parse(bf16.stdout).logits as number[][]).flat();
    expect(b).toHaveLength(a.length);
    const scale = Math.max(...a.map(Math.abs));
    const worst = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
    expect(worst).toBeGreaterThan(0); // really rounded to bf16
    expect(worst).toBeLessThan(0.05 * scale);
  });

  it('--dtype and --kv-dtype take only the listed values', async () => {
    for (const [flag, value] of [['--dtype', 'fp16'], ['--kv-dtype', 'auto']] as const) {
      const { code, stderr } = await runCli(['logits', dir, '--tokens', '1,2', flag, value]);
      expect(code).toBe(2);
      expect(stderr).toMatch(new RegExp(`^tp: ${flag} must be one of .*, got "${value}"\\nRun "tp logits --help" for usage\\.\\n$`));
    }
  });

  it('a failing request exits with its code and writes no file', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'tp-logits-fail-'));
    const out = path.join(folder, 'logits.json');
    const cases: Array<{ argv: string[]; code: number; error: RegExp }> = [
      { argv: ['logits', '/nonexistent/model', '--tokens', '1,2', '--out', out], code: 1, error: /^tp: error \[file-not-found\]: [^\n]+\n$/ },
      { argv: ['logits', dir, '--tokens', '1,x', '--out', out], code: 2, error: /^tp: --tokens takes token ids.*"x".*\nRun "tp logits --help" for usage\.\n$/ },
      { argv: ['logits', dir, '--tokens', '1,320', '--out', out], code: 1, error: /^tp: error \[invalid-argument\]: .*token id 320 is outside the vocabulary \(0 to 319\)\n$/ },
      { argv: ['logits', dir, '--tokens', '', '--out', out], code: 2, error: /^tp: --tokens needs at least one token id/ },
      { argv: ['logits', dir, '--out', out], code: 2, error: /^tp: give the input as --tokens 1,2,3 or as --text/ },
      { argv: ['logits', dir, '--tokens', '1', '--text', 'a', '--out', out], code: 2, error: /^tp: give the input as --tokens 1,2,3 or as --text/ },
      { argv: ['logits', dir, '--tokens', '1,2', '--out', path.join(folder, 'missing', 'x.json')], code: 1, error: /^tp: error \[write-failed\]: cannot write .*: the folder .* does not exist\n$/ },
      // (--backend cuda/webgpu may now resolve and run; hardening.test.ts covers each resolution state.)
    ];
    for (const c of cases) {
      const { code, stdout, stderr } = await runCli(c.argv);
      expect(code, c.argv.join(' ')).toBe(c.code);
      expect(stdout).toBe('');
      expect(stderr.split('\n').find((l) => l.startsWith('tp:')) !== undefined).toBe(true);
      expect(stderr.slice(stderr.indexOf('tp:'))).toMatch(c.error);
      expect(await readdir(folder), c.argv.join(' ')).toEqual([]);
    }
  });

  it('float32Text: the shortest decimal that reads back as the same float32', () => {
    for (const v of [0.1, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, 123456.789, -0]) {
      const f = Math.fround(v);
      const text = float32Text(f);
      expect(Math.fround(Number(text))).toBe(f);
      expect(text.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').length).toBeLessThanOrEqual(9);
    }
    expect(float32Text(Math.fround(0.1))).toBe('0.1');
    expect(float32Text(Number.NaN)).toBe('null');
  });
});
