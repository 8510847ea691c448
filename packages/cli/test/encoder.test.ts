/**
 * The CLI on encoders (a synthetic BERT with a [MASK] token): `tp run` fills masks, `tp logits` writes
 * masked-LM logits and, with --hidden, the last hidden state; flags that do not fit the model's kind
 * are refused with what would.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backend } from '@tp/backend-cpu';
import { initInference } from '@tp/core';
import { writeTinyModel } from '@tp/tiny-models';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, tinyLlama } from './helpers.js';

let bert: string;
beforeAll(async () => {
  bert = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-cli-bert-')), 'bert');
  await writeTinyModel(bert, { family: 'bert', hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 320, maxPositions: 64, seed: 5 });
});

async function encoderOutputs(tokens: number[], tokenTypes: number[]) {
  const session = await initInference(bert, { backend, tpSize: 1 });
  try {
    return (await session.encoderOutputs([{ tokens, tokenTypes }]))[0]!;
  } finally {
    await session.dispose();
  }
}

describe('tp logits on an encoder', () => {
  it('writes {tokens, logits, hidden}: the masked-LM logits and last hidden state of session.encoderOutputs, with --token-types, at TP=2', async () => {
    const out = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-logits-enc-')), 'bert.json');
    const tokens = [7, 40, 41, 300, 9];
    const types = [0, 0, 0, 1, 1];
    const { code, stderr } = await runCli(['logits', bert, '--tokens', tokens.join(','), '--token-types', types.join(','), '--hidden', '--tp', '2', '--out', out]);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    const json = JSON.parse(await readFile(out, 'utf8'));
    expect(Object.keys(json)).toEqual(['tokens', 'logits', 'hidden']);
    expect(json.logits).toHaveLength(5);
    expect(json.logits[0]).toHaveLength(320);
    expect(json.hidden[0]).toHaveLength(64);
    const ref = await encoderOutputs(tokens, types);
    const close = (a: number[], b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
    expect(close(json.logits.flat(), ref.logits!)).toBeLessThan(1e-4);
    expect(close(json.hidden.flat(), ref.hidden!)).toBeLessThan(1e-4);
    // Token types matter: segment 1 changes the result.
    const zeros = await encoderOutputs(tokens, [0, 0, 0, 0, 0]);
    expect(close(json.hidden.flat(), zeros.hidden!)).toBeGreaterThan(1e-3);
  });

  it('refuses --token-types of the wrong length, --hidden on a causal model, --decoder-tokens on a non-seq2seq model', async () => {
    const wrong = await runCli(['logits', bert, '--tokens', '1,2,3', '--token-types', '0,1']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--token-types has 2 ids but --tokens has 3/);
    const llama = await tinyLlama();
    const hidden = await runCli(['logits', llama, '--tokens', '1,2,3', '--hidden']);
    expect(hidden.code).toBe(1);
    expect(hidden.stderr).toMatch(/--hidden is for encoders and encoder–decoders; Llama is a causal model/);
    const decoder = await runCli(['logits', bert, '--tokens', '1,2,3', '--decoder-tokens', '0']);
    expect(decoder.code).toBe(1);
    expect(decoder.stderr).toMatch(/--decoder-tokens is for encoder–decoder models/);
  });
});

describe('tp run on an encoder', () => {
  it('fills each [MASK] with the 5 most likely tokens; --json gives them as {score, token, token_str, sequence}', async () => {
    const text = await runCli(['run', bert, '--tp', '2', 'Paris is the [MASK] of France.']);
    expect(text.stderr).not.toContain('tp: error');
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('Paris is the [MASK] of France.');
    expect(lines).toHaveLength(6);
    const json = await runCli(['run', bert, '--tp', '2', '--json', 'Paris is the [MASK] of France.', 'two [MASK] [MASK]']);
    expect(json.code).toBe(0);
    const [one, two] = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(one.masks).toHaveLength(1);
    expect(one.masks[0]).toHaveLength(5);
    expect(Object.keys(one.masks[0][0]).sort()).toEqual(['score', 'sequence', 'token', 'token_str']);
    expect(lines[1]).toContain(one.masks[0][0].score.toFixed(4));
    expect(two.masks).toHaveLength(2);
  });

  it('says what it can do when a prompt has no mask', async () => {
    const r = await runCli(['run', bert, 'no mask here']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BERT is an encoder: tp run fills \[MASK\] tokens, and prompt 1 has none/);
  });
});
