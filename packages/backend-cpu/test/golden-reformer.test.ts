/**
 * Reformer (ReformerModelWithLMHead: local + LSH attention, reversible layers, axial positions) against
 * HF transformers' own outputs (../shared/golden/reformer): the logits at every prompt position at
 * TP = 1, 2, 3 and 4 (TP=3 splits the 4 heads 2, 1, 1, each rank hashing its own heads with its slice
 * of the rotations), and greedy generation. HF's greedy ran without a KV cache (use_cache=False: its
 * cached generate fails), and so does tp for Reformer — every step re-runs the whole sequence, so the
 * 10-token prompts run padded to 12, then 12, 12, 16 … 20 positions, through both LSH paths.
 * Then two synthetic Reformers for what the golden does not have (several hashing rounds, bucket
 * factors, windows that wrap onto their own chunk, a plain position table), against numbers from a
 * Python port of transformers' code (see VARIANT_EXPECTED).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GenerateResult } from '@tp/core';
import { fillNormal, tensorSeed } from '@tp/tiny-models';
import { concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { flat, readGolden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';

/** Golden-vs-engine tolerance: max |ours − golden| / (max − min of golden). */
const GOLDEN_TOL = 1e-4;
/** TP=N vs TP=1 tolerance, relative to the spread of the TP=1 logits. */
const TP_TOL = 1e-5;
const GREEDY = { maxNewTokens: 8, stopAtEos: false, returnLogits: true } as const;

interface GreedyGolden {
  new_tokens: number[][];
  cache_free_new_tokens: number[][];
  step_logits: number[][][];
  use_cache: boolean;
}

const golden = () => readGolden('reformer');
const greedyGolden = () => golden().greedy as unknown as GreedyGolden;

/** log-softmax of `row` at `index`. */
function logProb(row: ArrayLike<number>, index: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[index]! - max - Math.log(sum);
}

describe('reformer', () => {
  let logits: Float32Array[] = [];
  let greedy: GenerateResult[] = [];

  beforeAll(async () => {
    if (!hasGolden) return;
    await withSession(goldenDir('reformer'), { tpSize: 1 }, async (s) => {
      logits = await s.logits(golden().input_ids);
      greedy = await s.generate(golden().input_ids, GREEDY);
    });
  });

  test.skipIf(!hasGolden)(`TP=1 logits at every position of both sequences match golden within ${GOLDEN_TOL} of their spread${needsGolden}`, () => {
    const g = golden();
    expect(logits).toHaveLength(g.input_ids.length);
    expect(relativeError(concat(logits), Float32Array.from(g.logits.flat(2)))).toBeLessThanOrEqual(GOLDEN_TOL);
  });

  test.skipIf(!hasGolden)(`TP=1 greedy generation gives golden's 8 new tokens (HF's, made without a KV cache)${needsGolden}`, () => {
    const g = golden();
    const gg = greedyGolden();
    expect(gg.use_cache).toBe(false);
    expect(greedy.map((r) => r.tokens)).toEqual(gg.new_tokens);
    expect(greedy.map((r) => r.tokens)).toEqual(gg.cache_free_new_tokens);
    expect(greedy.map((r) => r.finishReason)).toEqual(g.input_ids.map(() => 'length'));
  });

  test.skipIf(!hasGolden)(`TP=1 step logits (each a full re-run of the sequence so far) match golden's within ${GOLDEN_TOL} of their spread${needsGolden}`, () => {
    const gg = greedyGolden();
    for (let b = 0; b < gg.step_logits.length; b++) {
      const steps = greedy[b]!.stepLogits!;
      expect(steps).toHaveLength(8);
      expect(relativeError(concat(steps), flat(gg.step_logits[b]!)), `sequence ${b}`).toBeLessThanOrEqual(GOLDEN_TOL);
    }
  });

  for (const tp of [2, 3, 4]) {
    test.skipIf(!hasGolden)(`TP=${tp} logits match golden within ${GOLDEN_TOL} and TP=1 within ${TP_TOL}; greedy tokens and step logits are TP=1's${needsGolden}`, async () => {
      const g = golden();
      await withSession(goldenDir('reformer'), { tpSize: tp }, async (s) => {
        expect(s.liveWorkers).toBe(tp);
        const ours = await s.logits(g.input_ids);
        expect(relativeError(concat(ours), Float32Array.from(g.logits.flat(2)))).toBeLessThanOrEqual(GOLDEN_TOL);
        for (let b = 0; b < g.input_ids.length; b++) expect(relativeError(ours[b]!, logits[b]!), `logits of sequence ${b}`).toBeLessThanOrEqual(TP_TOL);
        const gen = await s.generate(g.input_ids, GREEDY);
        expect(gen.map((r) => r.tokens)).toEqual(greedyGolden().new_tokens);
        for (let b = 0; b < g.input_ids.length; b++) {
          expect(relativeError(concat(gen[b]!.stepLogits!), concat(greedy[b]!.stepLogits!)), `step logits of sequence ${b}`).toBeLessThanOrEqual(TP_TOL);
        }
      });
    });
  }

  test.skipIf(!hasGolden)(`a batch of prompts of different lengths gives each what it gives alone (each sequence runs as HF runs it by itself)${needsGolden}`, async () => {
    const g = golden();
    // 10 tokens (padded to 12, chunked LSH) beside 3 tokens (one chunk: no hashing) and 7 (padded to 8)
    const prompts = [g.input_ids[0]!, g.input_ids[1]!.slice(0, 3), g.input_ids[1]!.slice(2, 9)];
    await withSession(goldenDir('reformer'), { tpSize: 2 }, async (s) => {
      const together = await s.logits(prompts);
      for (let b = 0; b < prompts.length; b++) {
        const [alone] = await s.logits([prompts[b]!]);
        expect(together[b]!.length).toBe(prompts[b]!.length * 256);
        expect(relativeError(together[b]!, alone!), `prompt ${b}`).toBeLessThanOrEqual(TP_TOL);
      }
      expect(relativeError(together[0]!, logits[0]!)).toBeLessThanOrEqual(TP_TOL);
    });
  });

  test.skipIf(!hasGolden)(`beam search keeps each beam's own history: a hypothesis' log-probability is that of re-running each of its prefixes${needsGolden}`, async () => {
    const g = golden();
    const prompt = g.input_ids[0]!;
    await withSession(goldenDir('reformer'), { tpSize: 1 }, async (s) => {
      const [best] = await s.generate([prompt], { numBeams: 3, maxNewTokens: 6, stopAtEos: false });
      expect(best!.tokens).toHaveLength(6);
      // LSH sorts the whole sequence, so a position's logits change as later tokens arrive: the beam saw
      // each token's logits as the last row of its prefix, not as a row of the finished sequence.
      let expected = 0;
      for (let i = 0; i < best!.tokens.length; i++) {
        const [rows] = await s.logits([[...prompt, ...best!.tokens.slice(0, i)]]);
        expected += logProb(rows!.subarray(rows!.length - 256), best!.tokens[i]!);
      }
      expect(Math.abs(best!.logProb! - expected)).toBeLessThan(1e-4);
    });
  });

  test.skipIf(!hasGolden)(`a prompt whose padded length exceeds the 128 positions is refused before any rank runs it${needsGolden}`, async () => {
    await withSession(goldenDir('reformer'), { tpSize: 1 }, async (s) => {
      await expectTpError(s.generate([Array.from({ length: 125 }, () => 5)], { maxNewTokens: 4 }), 'invalid-argument', { argument: 'maxNewTokens' });
      await expectTpError(s.logits([Array.from({ length: 129 }, () => 5)]), 'invalid-argument', { argument: 'prompts' });
      expect(s.failed).toBeUndefined();
    });
  });
});

// ---- configurations the golden does not cover --------------------------------------------------

/**
 * What transformers computes for two synthetic Reformers (weights from @tp/tiny-models' seeded
 * normals, written below): logits of each prompt alone (6 significant digits) and 5 greedy tokens made
 * by re-running the sequence each step. The numbers come from a line-by-line Python port of
 * modeling_reformer.py's eval path (4.57: _hash_vectors, _stable_argsort, _look_adjacent, the -1e9 and
 * -1e5 masks, ReverseSort, the logsumexp merge of rounds, the reversible layers, chunk padding), run with
 * torch 2.13; that port reproduces the golden folder's logits to 5e-5.
 * - `hashed`: 3 heads (TP 3 splits them 1, 1, 1), layers lsh, local, lsh; two hashing rounds over
 *   bucket factors [2, 4]; local chunks of 2 looking back two (windows that wrap onto themselves);
 *   axial positions 4 × 8.
 * - `learned`: LSH only, 3 rounds of 8 buckets, chunks of 3 looking back two; a plain position table;
 *   2 heads of 6 (12 attention features under a hidden size of 16).
 */
const VARIANT_PROMPTS = { hashed: [[5, 11, 3, 8, 14, 12, 9, 7, 13], [6, 15, 4]], learned: [[3, 14, 7, 8, 11, 5, 9], [12, 4]] };
const VARIANT_EXPECTED: Record<'hashed' | 'learned', { logits: number[][]; greedy: number[][] }> = {
  hashed: {
    logits: [
      [
        -2.34591, 0.920841, 2.50852, 0.473114, 3.08137, -3.40116, -1.37129, -3.93042, -2.05032, 1.10733, 7.80424, -2.08402,
        2.62194, -8.59089, 4.06435, -5.01387, -0.955901, -1.07675, 3.1901, 1.87157, -0.21643, -4.60646, -4.35532, 0.761449,
        -1.12302, 6.85323, 6.13386, -5.21455, 3.33321, -7.20193, 5.55873, -0.789425, -3.07395, 4.48882, -0.804148, -0.495645,
        1.85965, -3.42548, 2.9946, 3.69889, 5.09964, -4.66906, 4.90157, -1.74186, -0.166437, -8.92481, -5.68206, -0.300661,
        4.72162, 2.23992, 5.68753, -5.49485, 2.66267, -3.06447, -3.11253, 0.505793, 0.656242, -3.7269, -6.66756, 0.998001,
        0.693345, -4.64016, -0.247443, 2.07315, 1.09016, 3.92683, 0.324912, -1.71815, 3.61921, -5.55284, -0.253742, -2.82942,
        -1.41002, -1.03606, 3.05217, -3.74224, 2.02494, -6.8501, -1.45053, -4.58715, 0.438442, 2.49356, 0.0197891, 2.5909,
        -0.0267618, -4.43796, -2.4784, 1.27585, 0.179901, 5.80898, 5.87432, -5.76211, 1.1504, -7.19338, 4.97378, -1.78219,
        4.74486, -1.71614, 0.317518, -1.0966, 4.20314, -0.641746, 2.3515, 3.1144, -0.499874, 2.21421, 0.0182372, -2.48871,
        -2.0707, -0.702759, -1.56042, 0.0116197, 0.727942, -0.0942399, -0.116813, -2.90283, 2.24951, 1.30837, 1.31765, 0.104431,
        -2.76245, 7.51249, 8.12331, -4.19508, -2.26985, 1.57971, -2.43791, 0.282892, -4.08476, 1.84185, -2.78032, 3.35773,
        10.4051, -6.95882, 6.79073, 0.373387, -2.51255, 3.51517, 3.61563, -4.24808, 2.31221, -0.451657, 0.332977, 1.81496,
      ],
      [
        -0.328171, 5.08342, 0.246949, -2.07765, 2.5065, 2.76974, 0.279191, -4.24346, -2.06428, 3.68358, 8.20419, -2.44959,
        -4.18617, -6.64154, -6.74339, 2.45502, 0.0249964, 2.83427, 2.4785, -1.39935, 1.80677, -2.42606, -1.77191, -3.69282,
        -4.80375, 7.74568, 6.05687, -4.53832, -4.24144, -4.22026, -3.3853, 4.35313, -1.64643, 2.93297, -3.38927, -4.49123,
        3.72791, -0.684489, 0.116409, -2.42153, -3.91951, 2.3108, 3.19953, -0.741914, -4.32431, -6.64204, -9.07968, 0.459566,
      ],
    ],
    greedy: [[4, 9, 4, 4, 4], [4, 4, 4, 10, 10]],
  },
  learned: {
    logits: [
      [
        3.12167, 3.95195, 0.0582763, -0.663323, 0.760419, -10.2471, -10.2956, 0.299306, 2.49643, 1.83948, -4.54531, 0.759668,
        9.29381, 3.68515, -2.16149, 2.08612, 5.4824, 0.62202, -5.75192, -2.3323, 0.306749, -7.37461, -4.93034, 1.57205,
        0.508218, 2.56568, -6.46012, 3.38179, 5.77384, 3.13301, -0.392714, 4.60965, -1.52463, 1.43494, 0.123331, -6.2058,
        7.29876, -10.1997, -8.35403, 5.42698, -0.261739, 0.423306, -11.6596, -1.52246, 2.70255, 3.9471, -2.94445, 4.49921,
        -1.78039, 1.60271, 1.31269, -6.06686, 6.0222, -6.23812, -3.30751, 4.78458, -2.16636, -0.468355, -7.38421, -3.165,
        -1.18768, 2.83327, -4.49691, 2.73792, 1.63448, 0.553214, 3.32086, -7.93072, 2.74642, 0.346138, -6.68759, 2.21681,
        -1.39744, -4.51056, -6.58905, -6.64936, -10.6877, -0.385141, -2.15651, 2.07171, 2.09249, -2.4624, 3.60494, -4.31929,
        7.2547, -2.4637, -1.64057, 6.20723, -1.14546, -2.26884, -7.24469, -2.98781, -2.75574, 0.274063, -4.78053, 3.61302,
        -0.033614, 2.45072, -0.131911, -5.88627, 4.72928, -8.61537, -9.00352, 2.79223, -1.90087, 0.466821, -6.07256, -8.21057,
        0.301171, 2.89425, -2.60407, 0.775229,
      ],
      [
        0.389918, 1.06221, -3.28654, -3.19188, 2.41253, -10.9064, -7.33127, -2.19567, -0.309534, 4.18007, -1.80585, 1.62132,
        9.41861, 5.50712, 2.71469, -4.5134, 2.44209, -1.04358, -4.56415, -6.27914, 3.83629, -7.65753, -2.08775, -2.29873,
        -1.97788, -0.443568, -4.59405, -1.52289, 5.09696, 3.75538, 1.09676, -5.83835,
      ],
    ],
    greedy: [[4, 0, 7, 4, 0], [12, 2, 15, 0, 4]],
  },
};

const variantBase = { model_type: 'reformer', architectures: ['ReformerModelWithLMHead'], is_decoder: true, eos_token_id: 2, pad_token_id: 0, layer_norm_eps: 1e-12, tie_word_embeddings: false, lsh_num_chunks_after: 0, local_num_chunks_after: 0 };
const VARIANT_CONFIGS = {
  hashed: { ...variantBase, vocab_size: 16, hidden_size: 24, num_attention_heads: 3, attention_head_size: 8, attn_layers: ['lsh', 'local', 'lsh'], num_hidden_layers: 3, lsh_attn_chunk_length: 4, local_attn_chunk_length: 2, lsh_num_chunks_before: 1, local_num_chunks_before: 2, num_buckets: [2, 4], num_hashes: 2, hash_seed: 7, axial_pos_embds: true, axial_pos_shape: [4, 8], axial_pos_embds_dim: [8, 16], max_position_embeddings: 32, feed_forward_size: 20, hidden_act: 'gelu' },
  learned: { ...variantBase, vocab_size: 16, hidden_size: 16, num_attention_heads: 2, attention_head_size: 6, attn_layers: ['lsh', 'lsh'], num_hidden_layers: 2, lsh_attn_chunk_length: 3, local_attn_chunk_length: 4, lsh_num_chunks_before: 2, local_num_chunks_before: 1, num_buckets: 8, num_hashes: 3, hash_seed: 1, axial_pos_embds: false, max_position_embeddings: 24, feed_forward_size: 12, hidden_act: 'relu' },
};

type VariantConfig = (typeof VARIANT_CONFIGS)[keyof typeof VARIANT_CONFIGS];

/** The checkpoint's tensors, in HF's names, from seeded normals (norm weights around 1, projections scaled by fan-in). */
function variantTensors(config: VariantConfig, seed: number): Array<{ name: string; shape: number[]; data: Float32Array }> {
  const { hidden_size: h, vocab_size: vocab, feed_forward_size: ff } = config;
  const inner = config.num_attention_heads * config.attention_head_size;
  const out: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const add = (name: string, shape: number[], mean: number, std: number) => out.push({ name, shape, data: fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), tensorSeed(seed, name), mean, std) });
  add('reformer.embeddings.word_embeddings.weight', [vocab, h], 0, 1);
  if (config.axial_pos_embds) {
    const axial = config as typeof VARIANT_CONFIGS.hashed;
    axial.axial_pos_shape.forEach((n, i) => add(`reformer.embeddings.position_embeddings.weights.${i}`, [...axial.axial_pos_shape.map((m, j) => (j === i ? m : 1)), axial.axial_pos_embds_dim[i]!], 0, 1));
  } else {
    add('reformer.embeddings.position_embeddings.embedding.weight', [config.max_position_embeddings, h], 0, 1);
  }
  config.attn_layers.forEach((kind, i) => {
    const p = `reformer.encoder.layers.${i}.`;
    add(`${p}attention.layer_norm.weight`, [h], 1, 0.1);
    add(`${p}attention.layer_norm.bias`, [h], 0, 0.1);
    for (const m of kind === 'lsh' ? ['query_key', 'value'] : ['query', 'key', 'value']) add(`${p}attention.self_attention.${m}.weight`, [inner, h], 0, 2 / Math.sqrt(h));
    add(`${p}attention.output.dense.weight`, [h, inner], 0, 1 / Math.sqrt(inner));
    add(`${p}feed_forward.layer_norm.weight`, [h], 1, 0.1);
    add(`${p}feed_forward.layer_norm.bias`, [h], 0, 0.1);
    add(`${p}feed_forward.dense.dense.weight`, [ff, h], 0, 1 / Math.sqrt(h));
    add(`${p}feed_forward.dense.dense.bias`, [ff], 0, 0.1);
    add(`${p}feed_forward.output.dense.weight`, [h, ff], 0, 1 / Math.sqrt(ff));
    add(`${p}feed_forward.output.dense.bias`, [h], 0, 0.1);
  });
  add('reformer.encoder.layer_norm.weight', [2 * h], 1, 0.1);
  add('reformer.encoder.layer_norm.bias', [2 * h], 0, 0.1);
  add('lm_head.decoder.weight', [vocab, 2 * h], 0, 4 / Math.sqrt(2 * h));
  add('lm_head.bias', [vocab], 0, 0.1);
  return out;
}

/** One f32 safetensors file. */
function safetensors(tensors: ReadonlyArray<{ name: string; shape: number[]; data: Float32Array }>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(Buffer.from(json), 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

describe.each([
  ['hashed', [1, 2, 3]],
  ['learned', [1, 2]],
] as const)('reformer variant %s', (name, sizes) => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), `tp-reformer-${name}-`));
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(VARIANT_CONFIGS[name]));
    await writeFile(path.join(dir, 'model.safetensors'), safetensors(variantTensors(VARIANT_CONFIGS[name], 1234)));
  });
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  for (const tp of sizes) {
    test(`TP=${tp}: logits of each prompt match transformers' within ${GOLDEN_TOL} of their spread, and 5 greedy tokens are transformers'`, async () => {
      const expected = VARIANT_EXPECTED[name];
      const prompts = VARIANT_PROMPTS[name];
      await withSession(dir, { tpSize: tp }, async (s) => {
        const logits = await s.logits(prompts);
        prompts.forEach((_, b) => expect(relativeError(logits[b]!, Float32Array.from(expected.logits[b]!)), `prompt ${b}`).toBeLessThanOrEqual(GOLDEN_TOL));
        const gen = await s.generate(prompts, { maxNewTokens: 5, stopAtEos: false });
        expect(gen.map((r) => r.tokens)).toEqual(expected.greedy);
      });
    });
  }
});
