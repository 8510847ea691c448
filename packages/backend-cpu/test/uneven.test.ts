/**
 * Shapes the golden folders do not cover, on synthetic checkpoints: heads that do not divide by tp
 * (and tp above the kv heads), multi-query attention, a vocabulary-parallel LM head, and sharded
 * safetensors.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import type { GenerateResult, InferenceOptions, InferenceSession } from '@tp/core';
import { relativeError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const TOL = 1e-5;
const PROMPTS = [
  [5, 17, 33, 2, 9, 100, 7, 250, 61],
  [250, 3, 44, 12],
];
const NEW = 12;

interface Run {
  logits: Float32Array[];
  greedy: GenerateResult[];
}

async function run(s: InferenceSession): Promise<Run> {
  return { logits: await s.logits(PROMPTS), greedy: await s.generate(PROMPTS, { maxNewTokens: NEW, stopAtEos: false }) };
}

async function runAt(dir: string, options: InferenceOptions, check?: (s: InferenceSession) => void): Promise<Run> {
  return withSession(dir, options, async (s) => {
    check?.(s);
    return run(s);
  });
}

function expectSame(ours: Run, ref: Run): void {
  for (let b = 0; b < PROMPTS.length; b++) {
    expect(ours.logits[b]!.length).toBe(ref.logits[b]!.length);
    expect(relativeError(ours.logits[b]!, ref.logits[b]!), `logits of prompt ${b}`).toBeLessThanOrEqual(TOL);
  }
  expect(ours.greedy.map((r) => r.tokens)).toEqual(ref.greedy.map((r) => r.tokens));
  for (const r of ours.greedy) expect(r.tokens).toHaveLength(NEW);
}

/** Query heads per rank from the plan. */
const qHeads = (s: InferenceSession) => s.plan.attention[0]!.ranks.map((r) => r.q[1] - r.q[0]);
const kvHeads = (s: InferenceSession) => s.plan.attention[0]!.ranks.map((r) => r.kv[1] - r.kv[0]);

describe('uneven heads', () => {
  const llama = () => tiny('llama-uneven', { family: 'llama', hidden: 96, heads: 6, kvHeads: 3, intermediate: 192, vocab: 300, seed: 7, tokenizer: false });

  test('llama with 6 heads and 3 kv heads at tp 4 (uneven heads, tp > kv heads) matches tp 1: logits within 1e-5, same 12 greedy tokens', async () => {
    const { dir } = await llama();
    const ref = await runAt(dir, { tpSize: 1 });
    const ours = await runAt(dir, { tpSize: 4 }, (s) => {
      // The split really is uneven: 6 query heads over 4 ranks, and 3 kv heads cannot give each rank its own.
      expect(qHeads(s).reduce((a, b) => a + b, 0)).toBe(6);
      expect(new Set(qHeads(s)).size).toBeGreaterThan(1);
      expect(kvHeads(s).every((k) => k >= 1)).toBe(true);
    });
    expectSame(ours, ref);
  });

  test('the same llama at tp 3 (two heads each, one kv head each) matches tp 1', async () => {
    const { dir } = await llama();
    const ref = await runAt(dir, { tpSize: 1 });
    expectSame(await runAt(dir, { tpSize: 3 }, (s) => expect(qHeads(s)).toEqual([2, 2, 2])), ref);
  });
});

describe('multi-query attention (one kv head) at tp 3', () => {
  test('gpt_bigcode (multi_query) with 6 heads at tp 3 matches tp 1', async () => {
    const { dir } = await tiny('bigcode-mqa', { family: 'gpt_bigcode', variant: 'mqa', hidden: 96, heads: 6, vocab: 300, seed: 3, tokenizer: false });
    const ref = await runAt(dir, { tpSize: 1 });
    const ours = await runAt(dir, { tpSize: 3 }, (s) => {
      expect(s.plan.geometry.attention['self']!.kvHeads).toBe(1);
      expect(qHeads(s)).toEqual([2, 2, 2]);
    });
    expectSame(ours, ref);
  });

  test('falcon (multi_query, parallel attention) with 6 heads at tp 3 matches tp 1', async () => {
    const { dir } = await tiny('falcon-mq', { family: 'falcon', variant: 'multi_query', hidden: 96, heads: 6, vocab: 300, seed: 5, tokenizer: false });
    const ref = await runAt(dir, { tpSize: 1 });
    const ours = await runAt(dir, { tpSize: 3 }, (s) => expect(s.plan.geometry.attention['self']!.kvHeads).toBe(1));
    expectSame(ours, ref);
  });
});

describe('vocabulary-parallel LM head and embedding (vocabParallel: true)', () => {
  const llama = () => tiny('llama-vocab', { family: 'llama', vocab: 300, seed: 11, tokenizer: false });

  test('llama at tp 2 with vocabParallel matches tp 1: logits within 1e-5, same 12 greedy tokens', async () => {
    const { dir } = await llama();
    const ref = await runAt(dir, { tpSize: 1 });
    const ours = await runAt(dir, { tpSize: 2, vocabParallel: true }, (s) => {
      expect(s.plan.lmHead?.split).toBe('vocab');
      expect(s.plan.tensors.find((t) => t.name === 'model.embed_tokens.weight')?.split).toBe('vocab');
    });
    expectSame(ours, ref);
  });

  test('a vocab-parallel session gives the same logits for the same request twice (no state leaks between forwards)', async () => {
    const { dir } = await llama();
    await withSession(dir, { tpSize: 2, vocabParallel: true }, async (s) => {
      const first = await s.logits(PROMPTS);
      await s.logits([[1, 2, 3, 299, 298]]);
      const second = await s.logits(PROMPTS);
      for (let b = 0; b < PROMPTS.length; b++) expect(relativeError(second[b]!, first[b]!), `prompt ${b}`).toBeLessThanOrEqual(TOL);
    });
  });
});

describe('sharded checkpoints', () => {
  test('a checkpoint written as 3 safetensors shards gives the same logits and tokens as the single file (tp 1 and tp 2)', async () => {
    const options = { family: 'llama', vocab: 300, seed: 5, tokenizer: false } as const;
    const single = await tiny('single', options);
    const sharded = await tiny('sharded', { ...options, shards: 3 });
    expect(readdirSync(sharded.dir).filter((f) => f.endsWith('.safetensors'))).toHaveLength(3);
    expect(readdirSync(sharded.dir)).toContain('model.safetensors.index.json');
    for (const tp of [1, 2]) {
      const a = await runAt(single.dir, { tpSize: tp });
      const b = await runAt(sharded.dir, { tpSize: tp });
      for (let i = 0; i < PROMPTS.length; i++) expect(Array.from(b.logits[i]!), `tp ${tp}, prompt ${i}`).toEqual(Array.from(a.logits[i]!));
      expect(b.greedy.map((r) => r.tokens)).toEqual(a.greedy.map((r) => r.tokens));
    }
  });
});
