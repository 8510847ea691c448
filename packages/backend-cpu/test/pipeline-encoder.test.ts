/**
 * pipeline('fill-mask') and pipeline('feature-extraction') on a synthetic BERT (tools/tiny-models,
 * with a [MASK] token), at TP=2 against TP=1 and against the session's own outputs; and tasks that
 * do not fit the model are refused.
 */
import { expect, test } from 'vitest';
import { openCheckpoint, pipeline, readSlice, type FillMaskOutput } from '@tp/core';
import { backend, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const bert = () => tiny('bert', { family: 'bert', hidden: 96, heads: 6, intermediate: 160, vocab: 400, seed: 3 });

test("pipeline('fill-mask') gives the top 5 tokens at the mask by softmax probability, each with its filled-in text; TP=2 equals TP=1", async () => {
  const { dir } = await bert();
  const results: FillMaskOutput[][] = [];
  for (const tpSize of [1, 2]) {
    const fill = await pipeline('fill-mask', dir, { backend, tpSize });
    try {
      expect(fill.maskToken).toBe('[MASK]');
      const out = (await fill('The capital of France is [MASK].')) as FillMaskOutput[];
      expect(out).toHaveLength(5);
      expect(Object.keys(out[0]!).sort()).toEqual(['score', 'sequence', 'token', 'token_str']);
      for (let i = 1; i < out.length; i++) expect(out[i]!.score).toBeLessThanOrEqual(out[i - 1]!.score);
      expect(out.reduce((n, o) => n + o.score, 0)).toBeLessThanOrEqual(1 + 1e-9);
      // The scores are the softmax of the session's own logits at the mask position.
      const ids = fill.session.tokenizer!.encode('The capital of France is [MASK].');
      const at = ids.indexOf(fill.session.tokenizer!.maskToken!.id);
      const [logits] = await fill.session.logits([ids]);
      const row = logits!.subarray(at * 400, (at + 1) * 400);
      const max = Math.max(...row);
      const total = row.reduce((n, l) => n + Math.exp(l - max), 0);
      expect(out[0]!.score).toBeCloseTo(Math.exp(row[out[0]!.token]! - max) / total, 6);
      expect(out[0]!.token).toBe(row.indexOf(max));
      const filled = [...ids];
      filled[at] = out[0]!.token;
      expect(out[0]!.sequence).toBe(fill.session.tokenizer!.decode(filled));
      results.push(out);
    } finally {
      await fill.dispose();
    }
  }
  expect(results[1]!.map((o) => o.token)).toEqual(results[0]!.map((o) => o.token));
  for (let i = 0; i < 5; i++) expect(results[1]![i]!.score).toBeCloseTo(results[0]![i]!.score, 5);
});

test('fill-mask: several masks give one list per mask; a batch gives one result per text; top_k; a text without a mask is refused', async () => {
  const { dir } = await bert();
  const fill = await pipeline('fill-mask', dir, { backend, tpSize: 2 });
  try {
    const two = (await fill('[MASK] quick brown [MASK]', { top_k: 3 })) as FillMaskOutput[][];
    expect(two).toHaveLength(2);
    expect(two.every((m) => m.length === 3)).toBe(true);
    const batch = await fill(['a [MASK] b', 'longer text with one [MASK] in it']);
    expect(batch).toHaveLength(2);
    const alone = (await fill('longer text with one [MASK] in it')) as FillMaskOutput[];
    expect((batch[1] as FillMaskOutput[]).map((o) => o.token)).toEqual(alone.map((o) => o.token));
    await expectTpError(fill('no mask here'), 'invalid-argument', { argument: 'text' });
    await expectTpError(fill('x [MASK]', { top_k: 0 }), 'invalid-argument', { argument: 'top_k' });
  } finally {
    await fill.dispose();
  }
});

test("pipeline('feature-extraction') returns the last hidden state as [1][tokens][hidden], the session's encoderOutputs; TP=2 equals TP=1", async () => {
  const { dir } = await bert();
  const text = 'Tensor parallelism splits every layer';
  const features: number[][][][] = [];
  for (const tpSize of [1, 2]) {
    const extract = await pipeline('feature-extraction', dir, { backend, tpSize });
    try {
      const out = await extract(text);
      const ids = extract.session.tokenizer!.encode(text);
      expect(out).toHaveLength(1);
      expect(out[0]).toHaveLength(ids.length);
      expect(out[0]![0]).toHaveLength(96);
      const [ref] = await extract.session.encoderOutputs([ids]);
      expect(Float32Array.from(out[0]!.flat())).toEqual(ref!.hidden);
      const many = await extract([text, 'short']);
      expect(many).toHaveLength(2);
      expect(many[0]).toEqual(out);
      features.push(out);
    } finally {
      await extract.dispose();
    }
  }
  expect(relativeError(features[1]!.flat(2), features[0]!.flat(2))).toBeLessThanOrEqual(1e-5);
});

test('a task that does not fit the model is refused and the session disposed: text-generation on an encoder, fill-mask on a causal model', async () => {
  const { dir } = await bert();
  await expectTpError(pipeline('text-generation', dir, { backend, tpSize: 1 }), 'invalid-argument', { argument: 'task' });
  const llama = await tiny('llama', { family: 'llama', vocab: 320 });
  await expectTpError(pipeline('fill-mask', llama.dir, { backend, tpSize: 1 }), 'invalid-argument', { argument: 'task' });
  await withSession(llama.dir, { tpSize: 1 }, async (s) => {
    await expectTpError(s.encoderOutputs([[1, 2, 3]]), 'invalid-argument', { argument: 'method' });
  });
});

test("the pooler's output (BertForPreTraining): tanh(dense(first token's last hidden state)), at TP=2; feature-extraction's .pooled(); refused without a pooler", async () => {
  const { dir } = await tiny('bert-pretraining', { family: 'bert', variant: 'pretraining', hidden: 96, heads: 6, intermediate: 160, vocab: 400, seed: 7 });
  const extract = await pipeline('feature-extraction', dir, { backend, tpSize: 2 });
  try {
    const ids = extract.session.tokenizer!.encode('pooled output');
    const [out] = await extract.session.encoderOutputs([ids, [5, 6, 7]], { pooled: true });
    expect(out!.pooled).toHaveLength(96);
    // The same on the host, from the stored pooler weights and the session's hidden state.
    const ckpt = await openCheckpoint(dir);
    let w: Float32Array;
    let bias: Float32Array;
    try {
      w = readSlice(ckpt, 'bert.pooler.dense.weight', { dim: 0, ranges: [[0, 96]] }).data;
      bias = readSlice(ckpt, 'bert.pooler.dense.bias', { dim: 0, ranges: [[0, 96]] }).data;
    } finally {
      ckpt.close();
    }
    const first = out!.hidden!.subarray(0, 96);
    const expected = Float32Array.from({ length: 96 }, (_, o) => Math.tanh(first.reduce((n, x, i) => n + x * w[o * 96 + i]!, bias[o]!)));
    expect(relativeError(out!.pooled!, expected)).toBeLessThanOrEqual(1e-5);
    const [viaPipeline] = await extract.pooled('pooled output');
    expect(relativeError(Float32Array.from(viaPipeline!), out!.pooled!)).toBeLessThanOrEqual(1e-5);
  } finally {
    await extract.dispose();
  }
  const { dir: noPooler } = await bert();
  await withSession(noPooler, { tpSize: 1 }, async (s) => {
    await expectTpError(s.encoderOutputs([[5, 6]], { pooled: true }), 'invalid-argument', { argument: 'pooled' });
  });
});
