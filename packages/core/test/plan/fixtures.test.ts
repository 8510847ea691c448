/**
 * The reference fixtures: every family variant's exact safetensors header plans at tp 1-4 and 8 (or
 * fails with the documented reason), and the verified per-rank ranges of fused tensors are
 * reproduced exactly.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel, createConfigReader, findFamily, planTensorParallel, TpError, type HfConfig, type PlanError } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { planViolations } from '../helpers/invariants.js';
import { FIXTURES_DIR, hasShared, needsShared } from '../helpers/shared.js';

interface FamilyFixture {
  model_type: string;
  config: HfConfig;
  tensors: Record<string, number[]>;
}

const families: Record<string, FamilyFixture> = hasShared
  ? JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'families_tiny_checkpoints.json'), 'utf8')).families
  : {};

/** Variants with more than 4 heads, and CodeGen's block rule (8 heads: tp must divide 4 or 8 % (4·tp) = 0). */
const EXPECTED_VALID: Record<string, number[] | null> = {
  'falcon@newarch': null, // 8 heads, 2 kv heads: every tp up to 8 works
  codegen: [1, 2, 4],
};

describe(`family fixtures plan at tp 1-4 and 8${needsShared}`, () => {
  it.skipIf(!hasShared)('holds the 60 variants', () => expect(Object.keys(families).length).toBe(60));
  for (const [id, fixture] of Object.entries(families)) {
    it(id, () => {
      const graph = analyzeModel(fakeCheckpoint(fixture.config, fixture.tensors));
      expect(graph.modelType).toBe(fixture.model_type);
      expect(graph.weights.filter((w) => w.rule.startsWith('generic:')).map((w) => w.name)).toEqual([]);
      for (const tp of [1, 2, 3, 4, 8]) {
        const valid = id in EXPECTED_VALID ? EXPECTED_VALID[id] : [1, 2, 3, 4];
        const fails = valid !== null && !valid.includes(tp);
        if (fails) {
          let error: unknown;
          try {
            planTensorParallel(graph, { tpSize: tp });
          } catch (e) {
            error = e;
          }
          expect(TpError.isInstance(error), `${id} tp ${tp} should fail`).toBe(true);
          expect((error as PlanError).code).toBe('indivisible');
          expect((error as PlanError).validTp).toEqual(valid);
        } else {
          expect(planViolations(planTensorParallel(graph, { tpSize: tp })), `${id} tp ${tp}`).toEqual([]);
        }
      }
    });
  }
});

interface FusedCase {
  family: string;
  tensor: string;
  shape: number[];
  split_dim: number;
  tp: number;
  config: Record<string, unknown>;
  ranks: Array<Array<[number, number]>>;
}

const fused: FusedCase[] = hasShared ? JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'fused_shard_fixtures.json'), 'utf8')).cases : [];

/** A model around one fused tensor: the family fixture (first layer only) with the case's config. */
function modelFor(c: FusedCase) {
  const name = c.tensor.replace('{i}', '0');
  if (c.family === 'chatglm') {
    // Remote code: no transformers fixture; tensor names from families.md §4.1 (vLLM's loader).
    return fakeCheckpoint(
      { model_type: 'chatglm', hidden_size: 64, num_attention_heads: 4, multi_query_attention: true, multi_query_group_num: 2, kv_channels: 16, num_layers: 1, padded_vocab_size: 100, ffn_hidden_size: 128 },
      {
        'transformer.embedding.word_embeddings.weight': [100, 64],
        'transformer.encoder.layers.0.self_attention.query_key_value.weight': [128, 64],
        'transformer.encoder.layers.0.self_attention.dense.weight': [64, 64],
        'transformer.encoder.layers.0.mlp.dense_h_to_4h.weight': [256, 64],
        'transformer.encoder.layers.0.mlp.dense_4h_to_h.weight': [64, 128],
        'transformer.output_layer.weight': [100, 64],
        [name]: c.shape,
      },
    );
  }
  const variant = c.family === 'falcon' && c.config['new_decoder_architecture'] === true ? 'falcon@newarch' : c.family;
  const base = families[variant]!;
  const tensors = Object.fromEntries(Object.entries(base.tensors).filter(([n]) => !/\.[1-9]\d*\./.test(n)));
  // One layer is kept, so the config says one layer (analysis checks the count against the weights).
  const layersKey = createConfigReader(base.config).locate(findFamily(base.model_type)!.config.layers)!.key;
  return fakeCheckpoint({ ...base.config, ...c.config, [layersKey]: 1 }, { ...tensors, [name]: c.shape });
}

const merge = (ranges: Array<[number, number]>) => {
  const out: Array<[number, number]> = [];
  for (const [s, e] of ranges) {
    const last = out[out.length - 1];
    if (last && last[1] === s) last[1] = e;
    else out.push([s, e]);
  }
  return out;
};

describe(`fused_shard_fixtures.json is reproduced exactly${needsShared}`, () => {
  it.skipIf(!hasShared)('holds 26 cases', () => expect(fused.length).toBe(26));
  for (const c of fused) {
    it(`${c.family} ${c.tensor} tp ${c.tp}`, () => {
      const plan = planTensorParallel(analyzeModel(modelFor(c)), { tpSize: c.tp });
      const t = plan.tensors.find((x) => x.name === c.tensor.replace('{i}', '0'))!;
      expect(t.split).toBe('column');
      expect(t.dim).toBe(c.split_dim);
      expect(t.ranks.map((r) => r.ranges)).toEqual(c.ranks.map(merge));
    });
  }
});

/**
 * Perceiver's decoder (PerceiverForMaskedLM's PerceiverBasicDecoder) reads and writes d_model-wide
 * rows (32 in this fixture) where the hidden state, the latents, is d_latents wide (64). Its rules
 * declare the d_model width and its 8 heads are a constant of the class, so it is split like the
 * encoder: by its own heads and MLP width, not replicated as it was before (when every rank held the
 * whole decoder). The tp-8 refusal above is unchanged: 8 decoder heads would allow it, the encoder's
 * 4 do not.
 */
describe(`perceiver's d_model-wide decoder is split by its own 8 heads${needsShared}`, () => {
  it.skipIf(!hasShared)('at tp 3: q/k by 3, 3, 2 heads of 32, v and the output projection by 3, 3, 2 heads of 4 (d_model / 8), the MLP by its 32 features', () => {
    const fixture = families['perceiver']!;
    expect([fixture.config['d_model'], fixture.config['d_latents']]).toEqual([32, 64]);
    const plan = planTensorParallel(analyzeModel(fakeCheckpoint(fixture.config, fixture.tensors)), { tpSize: 3 });
    const decoder = plan.attention.find((a) => a.group === 'decoder')!;
    expect(decoder.ranks.map((r) => [r.heads, r.headDim, r.valueDim])).toEqual([[3, 32, 4], [3, 32, 4], [2, 32, 4]]);
    expect(plan.attention.find((a) => a.group === 'cross')!.ranks.map((r) => r.heads)).toEqual([2, 1, 1]);
    const at = (module: string) => {
      const t = plan.tensors.find((x) => x.name === `perceiver.decoder.decoding_cross_attention.${module}.weight`)!;
      return { split: t.split, dim: t.dim, ranges: t.ranks.map((r) => r.ranges) };
    };
    const qk = [[[0, 96]], [[96, 192]], [[192, 256]]];
    const v = [[[0, 12]], [[12, 24]], [[24, 32]]];
    expect(at('attention.self.query')).toEqual({ split: 'column', dim: 0, ranges: qk });
    expect(at('attention.self.key')).toEqual({ split: 'column', dim: 0, ranges: qk });
    expect(at('attention.self.value')).toEqual({ split: 'column', dim: 0, ranges: v });
    expect(at('attention.output.dense')).toEqual({ split: 'row', dim: 1, ranges: v });
    // The decoder's MLP is its own width group (32), not the encoder cross-attention's (64).
    const mlp = [[[0, 16]], [[16, 24]], [[24, 32]]];
    expect(at('mlp.dense1')).toEqual({ split: 'column', dim: 0, ranges: mlp });
    expect(at('mlp.dense2')).toEqual({ split: 'row', dim: 1, ranges: mlp });
    expect(plan.tensors.find((t) => t.name === 'perceiver.encoder.cross_attention.mlp.dense1.weight')!.ranks.map((r) => r.ranges)).toEqual([[[0, 32]], [[32, 48]], [[48, 64]]]);
    expect(planViolations(plan)).toEqual([]);
    // The invariants pair the decoder's output projection with its own queries (per head), not the encoder's.
    const tampered = structuredClone(plan);
    tampered.tensors.find((t) => t.name === 'perceiver.decoder.decoding_cross_attention.attention.output.dense.weight')!.ranks.reverse();
    const problems = planViolations(tampered);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.includes('decoding_cross_attention.attention.output.dense') && p.includes('decoding_cross_attention.attention.self.query'))).toBe(true);
  });
});
