/**
 * The CLI on an encoder–decoder (a synthetic T5 v1.1): `tp logits` writes the decoder logits of each
 * decoder position with "decoder_tokens" (default: the start token) and, with --hidden, the encoder's
 * last hidden state; `tp run` prints each input's output after " → ".
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backend } from '@tp/backend-cpu';
import { initInference } from '@tp/core';
import { writeTinyModel } from '@tp/tiny-models';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

let t5: string;
beforeAll(async () => {
  t5 = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-cli-t5-')), 't5');
  await writeTinyModel(t5, { family: 't5', hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 320, seed: 8 });
});

describe('tp logits on an encoder–decoder', () => {
  it('--decoder-tokens gives the decoder logits of each decoder position; --hidden adds the encoder states (TP=2 equals the session at TP=1)', async () => {
    const out = path.join(await mkdtemp(path.join(os.tmpdir(), 'tp-logits-t5-')), 't5.json');
    const tokens = [7, 40, 41, 300, 1];
    const { code, stderr } = await runCli(['logits', t5, '--tokens', tokens.join(','), '--decoder-tokens', '0,17,18', '--hidden', '--tp', '2', '--out', out]);
    expect(stderr).not.toContain('tp: error');
    expect(code).toBe(0);
    expect(stderr).toMatch(/logits \[3 decoder positions × 320 vocabulary\], hidden \[5 positions × 64\]/);
    const json = JSON.parse(await readFile(out, 'utf8'));
    expect(Object.keys(json)).toEqual(['tokens', 'decoder_tokens', 'logits', 'hidden']);
    expect(json.decoder_tokens).toEqual([0, 17, 18]);
    expect(json.logits).toHaveLength(3);
    expect(json.hidden).toHaveLength(5);
    const session = await initInference(t5, { backend, tpSize: 1 });
    try {
      const [ref] = await session.seq2seqLogits([tokens], { decoderTokens: [[0, 17, 18]], hidden: true });
      const close = (a: number[], b: Float32Array) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
      expect(close(json.logits.flat(), ref!.logits)).toBeLessThan(1e-4);
      expect(close(json.hidden.flat(), ref!.hidden!)).toBeLessThan(1e-4);
    } finally {
      await session.dispose();
    }
  });

  it('without --decoder-tokens the decoder input is the start token alone; --token-types is refused', async () => {
    const { code, stdout } = await runCli(['logits', t5, '--tokens', '7,8,1']);
    expect(code).toBe(0);
    const json = JSON.parse(stdout);
    expect(json.decoder_tokens).toEqual([0]);
    expect(json.logits).toHaveLength(1);
    expect(json.hidden).toBeUndefined();
    const types = await runCli(['logits', t5, '--tokens', '7,8,1', '--token-types', '0,0,0']);
    expect(types.code).toBe(1);
    expect(types.stderr).toMatch(/--token-types is for encoders; T5 is a seq2seq model/);
  });
});

describe('tp run on an encoder–decoder', () => {
  it('prints the input, " → ", then the output; --json gives the output tokens; TP=2 equals TP=1', async () => {
    const one = await runCli(['run', t5, '--max-new-tokens', '6', '--json', 'translate: Hello']);
    const two = await runCli(['run', t5, '--tp', '2', '--max-new-tokens', '6', '--json', 'translate: Hello']);
    expect([one.code, two.code]).toEqual([0, 0]);
    const a = JSON.parse(one.stdout);
    expect(JSON.parse(two.stdout).tokens).toEqual(a.tokens);
    expect(a.prompt).toBe('translate: Hello');
    const text = await runCli(['run', t5, '--tp', '2', '--max-new-tokens', '6', 'translate: Hello']);
    expect(text.code).toBe(0);
    expect(text.stdout.startsWith('translate: Hello → ')).toBe(true);
  });
});
