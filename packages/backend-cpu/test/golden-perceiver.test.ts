/**
 * Perceiver IO's masked-LM (transformers' PerceiverForMaskedLM) beyond the golden comparison the
 * encoder suite makes (golden-encoder.test.ts: latents and logits at TP 1–4, TP=N against TP=1):
 * what each rank's plan holds (the decoder split by its own 8 heads, which the class fixes), the
 * shapes of what the session returns (16 latents, 10 decoder query positions, whatever the input
 * length), padding masked out of the encoder's cross-attention, and an input longer than the text
 * position table refused. Then a synthetic checkpoint with the real checkpoints' geometry, which the
 * golden (d_model = d_latents = 64) cannot tell apart: d_model ≠ d_latents (the decoder, d_model
 * wide, split by heads and MLP features all the same), qk_channels ≠ v_channels, num_blocks 2,
 * against a float64 reference of transformers' PerceiverForMaskedLM.forward built from
 * @tp/core/testing's reference kernels.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeSafetensors } from '@tp/core';
import { reference } from '@tp/core/testing';
import { concat, expectTpError, relativeError, withSession } from './helpers/engine.js';
import { readGolden } from './helpers/golden.js';
import { goldenDir, hasGolden, needsGolden } from './helpers/shared.js';

const DIR = goldenDir('perceiver');
const TP_TOL = 1e-5;
const GOLDEN_TOL = 1e-4;
/** num_latents × d_latents, and the decoder's max_position_embeddings query positions × vocabulary. */
const LATENTS = 16;
const D_LATENTS = 64;
const QUERIES = 10;
const VOCAB = 256;

describe('perceiver', () => {
  test.skipIf(!hasGolden)(`TP=3 splits the encoder's attentions by heads (4 as 2, 1, 1), the decoder's by its 8 (3, 3, 2) and every MLP, keeps the latents, the decoder queries and the norms whole, and still gives golden's logits${needsGolden}`, async () => {
    await withSession(DIR, { tpSize: 3 }, async (s) => {
      const heads = (group: string) => s.plan.attention.find((a) => a.group === group)?.ranks.map((r) => r.heads);
      expect(heads('cross')).toEqual([2, 1, 1]);
      expect(heads('self')).toEqual([2, 1, 1]);
      expect(heads('decoder')).toEqual([3, 3, 2]);
      expect(s.plan.attention.map((a) => a.group).sort()).toEqual(['cross', 'decoder', 'self']);
      const split = (name: string) => s.plan.tensors.find((t) => t.name === name)?.split;
      expect(split('perceiver.encoder.cross_attention.attention.self.key.weight')).toBe('column');
      expect(split('perceiver.encoder.cross_attention.attention.output.dense.weight')).toBe('row');
      expect(split('perceiver.encoder.self_attends.1.mlp.dense2.weight')).toBe('row');
      expect(split('perceiver.decoder.decoding_cross_attention.attention.self.query.weight')).toBe('column');
      expect(split('perceiver.decoder.decoding_cross_attention.attention.output.dense.weight')).toBe('row');
      expect(split('perceiver.decoder.decoding_cross_attention.mlp.dense1.weight')).toBe('column');
      expect(split('perceiver.decoder.decoding_cross_attention.mlp.dense2.weight')).toBe('row');
      for (const whole of [
        'perceiver.embeddings.latents',
        'perceiver.decoder.output_position_encodings.position_embeddings',
        'perceiver.encoder.cross_attention.attention.self.layernorm2.weight',
        'perceiver.decoder.decoding_cross_attention.attention.self.layernorm1.weight',
      ]) {
        expect(split(whole), whole).toBe('replicate');
      }
      expect(s.plan.lmHead?.split).toBe('row');

      const g = readGolden('perceiver');
      const [out] = await s.encoderOutputs([g.input_ids[0]!]);
      expect(out!.hidden!.length).toBe(LATENTS * D_LATENTS);
      expect(out!.hiddenRows).toBe(LATENTS);
      expect(out!.logits!.length).toBe(QUERIES * VOCAB);
      expect(out!.logitRows).toBe(QUERIES);
      expect(relativeError(out!.logits!, Float32Array.from(g.logits[0]!.flat()))).toBeLessThanOrEqual(GOLDEN_TOL);
    });
  });

  test.skipIf(!hasGolden)(`a short input padded into a batch gives what it gives alone (padding masked out of the encoder's cross-attention), still 16 latents and 10 query positions, at TP=2${needsGolden}`, async () => {
    const g = readGolden('perceiver');
    const short = g.input_ids[1]!.slice(0, 6);
    await withSession(DIR, { tpSize: 2 }, async (s) => {
      const [alone] = await s.encoderOutputs([short]);
      const [full, padded] = await s.encoderOutputs([g.input_ids[0]!, short]);
      expect(padded!.tokens).toEqual(short);
      expect(padded!.hidden!.length).toBe(LATENTS * D_LATENTS);
      expect(padded!.logits!.length).toBe(QUERIES * VOCAB);
      expect(relativeError(padded!.hidden!, alone!.hidden!)).toBeLessThanOrEqual(TP_TOL);
      expect(relativeError(padded!.logits!, alone!.logits!)).toBeLessThanOrEqual(TP_TOL);
      // The padding changed nothing for the full-length sequence beside it either.
      expect(relativeError(full!.hidden!, Float32Array.from(g.last_hidden_state![0]!.flat()))).toBeLessThanOrEqual(GOLDEN_TOL);
      // And the short input is not the full one: the mask did not hide everything.
      expect(relativeError(padded!.hidden!, full!.hidden!)).toBeGreaterThan(1e-3);
    });
  });

  test.skipIf(!hasGolden)(`an input longer than max_position_embeddings (10) is refused before any rank runs, naming the limit; the session still works after${needsGolden}`, async () => {
    await withSession(DIR, { tpSize: 2 }, async (s) => {
      const long = Array.from({ length: 11 }, (_, i) => 20 + i);
      const error = await expectTpError(s.encoderOutputs([long]), 'invalid-argument', { argument: 'prompts' });
      expect(error.message).toMatch(/11 tokens.*10 positions; shorten it to 10 tokens or fewer/);
      await expectTpError(s.logits([long.slice(0, 5), long]), 'invalid-argument', { argument: 'prompts' });
      const [ok] = await s.encoderOutputs([long.slice(0, 10)], { hidden: false });
      expect(ok!.hidden).toBeUndefined();
      expect(ok!.logits!.length).toBe(QUERIES * VOCAB);
    });
  });
});

/**
 * A random PerceiverForMaskedLM shaped like deepmind/language-perceiver, only smaller: the inputs
 * d_model = 48 wide, the latents d_latents = 80, qk_channels 32 and v_channels 80 for the encoder
 * (4 cross and 4 self heads), the decoder's fixed 8 heads with query/key width 8 × 32 and value width
 * d_model (6 per head), two stored self-attention layers run num_blocks = 2 times.
 */
const WIDE = { dModel: 48, dLatents: 80, vocab: 64, positions: 12, latents: 8, qk: 32, v: 80, layers: 2, blocks: 2, heads: 4, decoderHeads: 8 };

/** Deterministic weights (mulberry32), scaled 1/√fan_in for matrices and around 1 or 0 for norms. */
function wideWeights(): Map<string, { shape: number[]; values: Float32Array }> {
  let seed = 1234;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  const w = new Map<string, { shape: number[]; values: Float32Array }>();
  const put = (name: string, shape: number[], scale: number, center = 0) =>
    w.set(name, { shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => center + scale * random()) });
  const linear = (name: string, out: number, inp: number) => {
    put(`${name}.weight`, [out, inp], 2 / Math.sqrt(inp));
    put(`${name}.bias`, [out], 0.2);
  };
  const norm = (name: string, width: number) => {
    put(`${name}.weight`, [width], 0.2, 1);
    put(`${name}.bias`, [width], 0.2);
  };
  const layer = (p: string, qDim: number, kvDim: number, qk: number, v: number, out: number, cross: boolean) => {
    norm(`${p}.attention.self.layernorm1`, qDim);
    if (cross) norm(`${p}.attention.self.layernorm2`, kvDim);
    linear(`${p}.attention.self.query`, qk, qDim);
    linear(`${p}.attention.self.key`, qk, kvDim);
    linear(`${p}.attention.self.value`, v, kvDim);
    linear(`${p}.attention.output.dense`, out, v);
    norm(`${p}.layernorm`, qDim);
    linear(`${p}.mlp.dense1`, qDim, qDim);
    linear(`${p}.mlp.dense2`, qDim, qDim);
  };
  const { dModel, dLatents, vocab, positions, latents, qk, v, layers } = WIDE;
  put('perceiver.input_preprocessor.embeddings.weight', [vocab, dModel], 2);
  put('perceiver.input_preprocessor.position_embeddings.weight', [positions, dModel], 2);
  put('perceiver.embeddings.latents', [latents, dLatents], 2);
  layer('perceiver.encoder.cross_attention', dLatents, dModel, qk, v, dLatents, true);
  for (let i = 0; i < layers; i++) layer(`perceiver.encoder.self_attends.${i}`, dLatents, dLatents, qk, v, v, false);
  layer('perceiver.decoder.decoding_cross_attention', dModel, dLatents, WIDE.decoderHeads * 32, dModel, dModel, true);
  put('perceiver.decoder.output_position_encodings.position_embeddings', [positions, dModel], 2);
  put('embedding_decoder.bias', [vocab], 0.2);
  return w;
}

/** transformers' PerceiverForMaskedLM.forward in float64: the latents and the logits of each sequence. */
function wideReference(w: ReturnType<typeof wideWeights>, sequences: number[][]): { latents: Float64Array; logits: Float64Array } {
  const t = (name: string) => w.get(name)!.values;
  const ln = (x: ArrayLike<number>, p: string, width: number) => reference.norm(x, width, { kind: 'layer', eps: 1e-5 }, t(`${p}.weight`), t(`${p}.bias`));
  const lin = (x: ArrayLike<number>, p: string) => {
    const [out, inp] = w.get(`${p}.weight`)!.shape as [number, number];
    return reference.linear(x, t(`${p}.weight`), t(`${p}.bias`), x.length / inp, inp, out);
  };
  /** One PerceiverLayer over one sequence: queries [rows, qDim] attend to source [keys, kvDim] (masked by `mask`). */
  const layer = (p: string, queries: Float64Array, qDim: number, source: Float64Array | undefined, kvDim: number, heads: number, residual: boolean) => {
    const qIn = ln(queries, `${p}.attention.self.layernorm1`, qDim);
    const kvIn = source === undefined ? qIn : ln(source, `${p}.attention.self.layernorm2`, kvDim);
    const q = lin(qIn, `${p}.attention.self.query`);
    const k = lin(kvIn, `${p}.attention.self.key`);
    const v = lin(kvIn, `${p}.attention.self.value`);
    const rows = qIn.length / qDim;
    const keys = kvIn.length / kvDim;
    const headDim = q.length / rows / heads;
    const valueDim = v.length / keys / heads;
    const o = reference.attention({ q, kCache: k, vCache: v, slots: keys, batch: 1, rows, start: 0, keys, keyMask: new Array(keys).fill(1), heads, kvHeads: heads, headDim, valueDim, scale: 1 / Math.sqrt(headDim), mask: 'bidirectional' });
    let h = lin(o, `${p}.attention.output.dense`);
    if (residual) h = reference.add(h, queries);
    return reference.add(h, lin(reference.activation(lin(ln(h, `${p}.layernorm`, qDim), `${p}.mlp.dense1`), 'gelu'), `${p}.mlp.dense2`));
  };
  const { dModel, dLatents, heads } = WIDE;
  const latents: number[] = [];
  const logits: number[] = [];
  for (const ids of sequences) {
    const x = reference.add(
      reference.embedding(t('perceiver.input_preprocessor.embeddings.weight'), WIDE.vocab, dModel, ids),
      reference.embedding(t('perceiver.input_preprocessor.position_embeddings.weight'), WIDE.positions, dModel, ids.map((_, i) => i)),
    );
    let z = layer('perceiver.encoder.cross_attention', Float64Array.from(t('perceiver.embeddings.latents')), dLatents, x, dModel, heads, true);
    for (let block = 0; block < WIDE.blocks; block++) {
      for (let i = 0; i < WIDE.layers; i++) z = layer(`perceiver.encoder.self_attends.${i}`, z, dLatents, undefined, dLatents, heads, true);
    }
    const queries = Float64Array.from(t('perceiver.decoder.output_position_encodings.position_embeddings'));
    const decoded = layer('perceiver.decoder.decoding_cross_attention', queries, dModel, z, dLatents, WIDE.decoderHeads, false);
    latents.push(...z);
    logits.push(...reference.linear(decoded, t('perceiver.input_preprocessor.embeddings.weight'), t('embedding_decoder.bias'), WIDE.positions, dModel, WIDE.vocab));
  }
  return { latents: Float64Array.from(latents), logits: Float64Array.from(logits) };
}

describe('perceiver with the real checkpoints\' geometry (d_model ≠ d_latents, qk_channels ≠ v_channels, num_blocks 2)', () => {
  let dir = '';
  let expected: { latents: Float64Array; logits: Float64Array };
  const sequences = [
    [5, 9, 13, 22, 40, 41, 7, 8, 30, 31, 2, 3],
    [17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28],
  ];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tp-perceiver-wide-'));
    const weights = wideWeights();
    const config = {
      architectures: ['PerceiverForMaskedLM'],
      model_type: 'perceiver',
      d_model: WIDE.dModel,
      d_latents: WIDE.dLatents,
      vocab_size: WIDE.vocab,
      max_position_embeddings: WIDE.positions,
      num_latents: WIDE.latents,
      qk_channels: WIDE.qk,
      v_channels: WIDE.v,
      num_blocks: WIDE.blocks,
      num_self_attends_per_block: WIDE.layers,
      num_self_attention_heads: WIDE.heads,
      num_cross_attention_heads: WIDE.heads,
      cross_attention_shape_for_attention: 'kv',
      cross_attention_widening_factor: 1,
      self_attention_widening_factor: 1,
      use_query_residual: true,
      hidden_act: 'gelu',
      layer_norm_eps: 1e-12,
    };
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
    await writeSafetensors(
      path.join(dir, 'model.safetensors'),
      [...weights].map(([name, { shape, values }]) => ({ name, dtype: 'F32' as const, shape, data: new Uint8Array(values.buffer) })),
    );
    expected = wideReference(weights, sequences);
  });
  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  /** The decoder's 8 heads per rank (near-even, lower ranks first). */
  const DECODER_HEADS: Record<number, number[]> = { 1: [8], 2: [4, 4], 3: [3, 3, 2], 4: [2, 2, 2, 2] };

  for (const tp of [1, 2, 3, 4]) {
    test(`TP=${tp}: the decoder is split by its heads (${DECODER_HEADS[tp]!.join(', ')}), and the latents [8 × 80] and the logits at the 12 decoder query positions match the float64 reference within ${GOLDEN_TOL} of their spread`, async () => {
      await withSession(dir, { tpSize: tp }, async (s) => {
        const heads = DECODER_HEADS[tp]!;
        const decoder = s.plan.attention.find((a) => a.group === 'decoder')!;
        expect(decoder.ranks.map((r) => [r.heads, r.headDim, r.valueDim])).toEqual(heads.map((h) => [h, 32, WIDE.dModel / 8]));
        const tensor = (module: string) => s.plan.tensors.find((t) => t.name === `perceiver.decoder.decoding_cross_attention.${module}.weight`)!;
        // Each rank holds its heads' rows of the query (32 per head) reading d_model = 48 inputs, and
        // their value columns (6 per head) of the output projection writing d_model.
        const query = tensor('attention.self.query');
        expect([query.split, query.dim]).toEqual(['column', 0]);
        expect(query.ranks.map((r) => r.shape)).toEqual(heads.map((h) => [h * 32, WIDE.dModel]));
        const output = tensor('attention.output.dense');
        expect([output.split, output.dim, output.after]).toEqual(['row', 1, 'all-reduce']);
        expect(output.ranks.map((r) => r.shape)).toEqual(heads.map((h) => [WIDE.dModel, h * 6]));
        const [up, down] = [tensor('mlp.dense1'), tensor('mlp.dense2')];
        expect([up.split, down.split, down.after]).toEqual(['column', 'row', 'all-reduce']);
        expect(up.ranks.map((r) => r.shape[0]).reduce((a, b) => a + b)).toBe(WIDE.dModel);
        expect(down.ranks.map((r) => r.ranges)).toEqual(up.ranks.map((r) => r.ranges));

        const out = await s.encoderOutputs(sequences);
        expect(out.map((o) => [o.hiddenRows, o.logitRows])).toEqual([[WIDE.latents, WIDE.positions], [WIDE.latents, WIDE.positions]]);
        expect(relativeError(concat(out.map((o) => o.hidden!)), expected.latents)).toBeLessThanOrEqual(GOLDEN_TOL);
        expect(relativeError(concat(out.map((o) => o.logits!)), expected.logits)).toBeLessThanOrEqual(GOLDEN_TOL);
      });
    });
  }
});
