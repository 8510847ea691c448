/**
 * A config.json that disagrees with its weights is refused at analysis time: a ShapeError
 * (`shape-mismatch`) naming the config key, its value, the tensor and its shape. One wrong key at a
 * time, on the transformers fixtures of llama, gpt2, t5, bert and perceiver, and on a self-contained
 * llama. Perceiver's decoder reads and writes d_model-wide rows (its rules declare that width) and
 * has 8 heads fixed by its class: both are checked on their own.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel, FIXED_BY_CLASS, planTensorParallel, type HfConfig } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { expectTpError } from '../helpers/files.js';
import { FIXTURES_DIR, hasShared, needsShared } from '../helpers/shared.js';

interface FamilyFixture {
  model_type: string;
  config: HfConfig;
  tensors: Record<string, number[]>;
}

const families: Record<string, FamilyFixture> = hasShared
  ? JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'families_tiny_checkpoints.json'), 'utf8')).families
  : {};

interface Case {
  /** The config keys to change. */
  set: HfConfig;
  key: string;
  tensor: string;
  /** The tensor's stored shape (omitted for a missing layer). */
  actual?: number[];
  expected?: number[];
}

async function expectMismatch(config: HfConfig, shapes: Record<string, readonly number[]>, c: Case) {
  const e = await expectTpError(() => analyzeModel(fakeCheckpoint({ ...config, ...c.set }, shapes)), {
    code: 'shape-mismatch',
    name: 'ShapeError',
    file: 'config.json',
    key: c.key,
    tensor: c.tensor,
  });
  expect(e['value']).toEqual(c.set[c.key]);
  if (c.actual !== undefined) expect(e['actual']).toEqual(c.actual);
  if (c.expected !== undefined) expect(e['expected']).toEqual(c.expected);
  expect(e.message).toContain(`"${c.key}"`);
  expect(e.message).toContain(c.tensor);
  return e;
}

const CASES: Record<string, Case[]> = {
  llama: [
    { set: { hidden_size: 128 }, key: 'hidden_size', tensor: 'model.layers.0.mlp.down_proj.weight', actual: [64, 128], expected: [128, 128] },
    { set: { intermediate_size: 256 }, key: 'intermediate_size', tensor: 'model.layers.0.mlp.down_proj.weight', actual: [64, 128], expected: [64, 256] },
    { set: { num_attention_heads: 8 }, key: 'num_attention_heads', tensor: 'model.layers.0.self_attn.q_proj.weight', actual: [64, 64], expected: [128, 64] },
    { set: { num_key_value_heads: 4 }, key: 'num_key_value_heads', tensor: 'model.layers.0.self_attn.k_proj.weight', actual: [32, 64], expected: [64, 64] },
    { set: { head_dim: 8 }, key: 'head_dim', tensor: 'model.layers.0.self_attn.q_proj.weight', actual: [64, 64], expected: [32, 64] },
    { set: { vocab_size: 120 }, key: 'vocab_size', tensor: 'lm_head.weight', actual: [100, 64], expected: [120, 64] },
    { set: { num_hidden_layers: 3 }, key: 'num_hidden_layers', tensor: 'model.layers.2', actual: [] },
    { set: { num_hidden_layers: 1 }, key: 'num_hidden_layers', tensor: 'model.layers.1.input_layernorm.weight', actual: [64] },
  ],
  gpt2: [
    { set: { n_embd: 128 }, key: 'n_embd', tensor: 'transformer.h.0.attn.c_attn.weight', actual: [64, 192], expected: [128, 192] },
    { set: { n_head: 3 }, key: 'n_head', tensor: 'transformer.h.0.attn.c_attn.weight', actual: [64, 192] },
    { set: { n_inner: 128 }, key: 'n_inner', tensor: 'transformer.h.0.mlp.c_fc.weight', actual: [64, 256], expected: [64, 128] },
    { set: { vocab_size: 50 }, key: 'vocab_size', tensor: 'transformer.wte.weight', actual: [100, 64], expected: [50, 64] },
    { set: { n_layer: 3 }, key: 'n_layer', tensor: 'transformer.h.2', actual: [] },
  ],
  t5: [
    { set: { d_model: 32 }, key: 'd_model', tensor: 'decoder.block.0.layer.0.SelfAttention.o.weight', actual: [64, 64], expected: [32, 64] },
    { set: { d_ff: 256 }, key: 'd_ff', tensor: 'decoder.block.0.layer.2.DenseReluDense.wi.weight', actual: [128, 64], expected: [256, 64] },
    { set: { num_heads: 3 }, key: 'num_heads', tensor: 'decoder.block.0.layer.0.SelfAttention.k.weight', actual: [64, 64], expected: [48, 64] },
    { set: { vocab_size: 200 }, key: 'vocab_size', tensor: 'shared.weight', actual: [100, 64], expected: [200, 64] },
    { set: { num_decoder_layers: 2 }, key: 'num_decoder_layers', tensor: 'decoder.block.1', actual: [] },
    // The encoder's depth has its own key.
    { set: { num_layers: 2 }, key: 'num_layers', tensor: 'encoder.block.1', actual: [] },
  ],
  bert: [
    { set: { hidden_size: 32 }, key: 'hidden_size', tensor: 'bert.encoder.layer.0.attention.output.dense.weight', actual: [64, 64], expected: [32, 64] },
    { set: { intermediate_size: 64 }, key: 'intermediate_size', tensor: 'bert.encoder.layer.0.intermediate.dense.weight', actual: [128, 64], expected: [64, 64] },
    { set: { num_attention_heads: 3 }, key: 'num_attention_heads', tensor: 'bert.encoder.layer.0.attention.output.dense.weight', actual: [64, 64] },
    { set: { vocab_size: 50 }, key: 'vocab_size', tensor: 'bert.embeddings.word_embeddings.weight', actual: [100, 64], expected: [50, 64] },
    { set: { num_hidden_layers: 1 }, key: 'num_hidden_layers', tensor: 'bert.encoder.layer.1.attention.output.LayerNorm.bias', actual: [64] },
  ],
  // d_model 32 (the inputs and the decoder's rows), d_latents 64 (the hidden state): each checked on its own.
  perceiver: [
    { set: { d_model: 48 }, key: 'd_model', tensor: 'perceiver.decoder.decoding_cross_attention.attention.output.dense.weight', actual: [32, 32], expected: [48, 32] },
    { set: { d_latents: 32 }, key: 'd_latents', tensor: 'perceiver.encoder.cross_attention.attention.output.dense.weight', actual: [64, 32], expected: [32, 32] },
    { set: { num_cross_attention_heads: 3 }, key: 'num_cross_attention_heads', tensor: 'perceiver.encoder.cross_attention.attention.output.dense.weight', actual: [64, 32] },
  ],
};

describe(`a config that disagrees with the fixture's weights is refused${needsShared}`, () => {
  for (const [family, cases] of Object.entries(CASES)) {
    describe(family, () => {
      it.skipIf(!hasShared)('the fixture as it is analyzes and plans', () => {
        const f = families[family]!;
        expect(() => planTensorParallel(analyzeModel(fakeCheckpoint(f.config, f.tensors)), { tpSize: 2 })).not.toThrow();
      });
      for (const c of cases) {
        it.skipIf(!hasShared)(`${JSON.stringify(c.set)} → ${c.key} on ${c.tensor}`, async () => {
          const f = families[family]!;
          await expectMismatch(f.config, f.tensors, c);
        });
      }
    });
  }
});

describe('a self-contained llama', () => {
  const config: HfConfig = { model_type: 'llama', hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 64, intermediate_size: 48 };
  const shapes: Record<string, number[]> = { 'model.embed_tokens.weight': [64, 32], 'model.norm.weight': [32], 'lm_head.weight': [64, 32] };
  for (let l = 0; l < 2; l++) {
    Object.assign(shapes, {
      [`model.layers.${l}.self_attn.q_proj.weight`]: [32, 32],
      [`model.layers.${l}.self_attn.k_proj.weight`]: [16, 32],
      [`model.layers.${l}.self_attn.v_proj.weight`]: [16, 32],
      [`model.layers.${l}.self_attn.o_proj.weight`]: [32, 32],
      [`model.layers.${l}.mlp.gate_proj.weight`]: [48, 32],
      [`model.layers.${l}.mlp.up_proj.weight`]: [48, 32],
      [`model.layers.${l}.mlp.down_proj.weight`]: [32, 48],
      [`model.layers.${l}.input_layernorm.weight`]: [32],
    });
  }

  it('analyzes as it is', () => {
    expect(analyzeModel(fakeCheckpoint(config, shapes)).geometry).toMatchObject({ hidden: 32, layers: 2, vocab: 64, intermediate: 48, heads: 4, kvHeads: 2, headDim: 8 });
  });

  it.each<Case>([
    { set: { hidden_size: 64 }, key: 'hidden_size', tensor: 'model.layers.0.mlp.down_proj.weight', actual: [32, 48], expected: [64, 48] },
    { set: { intermediate_size: 64 }, key: 'intermediate_size', tensor: 'model.layers.0.mlp.down_proj.weight', actual: [32, 48], expected: [32, 64] },
    { set: { num_attention_heads: 3, num_key_value_heads: 1 }, key: 'num_attention_heads', tensor: 'model.layers.0.self_attn.o_proj.weight', actual: [32, 32] },
    { set: { num_key_value_heads: 4 }, key: 'num_key_value_heads', tensor: 'model.layers.0.self_attn.k_proj.weight', actual: [16, 32], expected: [32, 32] },
    { set: { head_dim: 16 }, key: 'head_dim', tensor: 'model.layers.0.self_attn.q_proj.weight', actual: [32, 32], expected: [64, 32] },
    { set: { vocab_size: 32 }, key: 'vocab_size', tensor: 'lm_head.weight', actual: [64, 32], expected: [32, 32] },
    { set: { num_hidden_layers: 4 }, key: 'num_hidden_layers', tensor: 'model.layers.2', actual: [] },
  ])('$key = $set.$key is refused on $tensor', async (c) => {
    await expectMismatch(config, shapes, c);
  });

  it('without num_key_value_heads, kv heads default to the heads and k_proj disagrees: the key is named though unset', async () => {
    const { num_key_value_heads: _, ...rest } = config;
    const e = await expectTpError(() => analyzeModel(fakeCheckpoint(rest, shapes)), { code: 'shape-mismatch', key: 'num_key_value_heads', tensor: 'model.layers.0.self_attn.k_proj.weight' });
    expect(e['value']).toBeUndefined();
  });

  it('one damaged tensor (the other layers agree) is named, with the key that implies its shape', async () => {
    const e = await expectTpError(() => analyzeModel(fakeCheckpoint(config, { ...shapes, 'model.layers.1.mlp.up_proj.weight': [40, 32] })), {
      code: 'shape-mismatch',
      key: 'intermediate_size',
      tensor: 'model.layers.1.mlp.up_proj.weight',
    });
    expect(e['actual']).toEqual([40, 32]);
  });

  it('a padded vocabulary (chatglm padded_vocab_size) is not a mismatch', () => {
    const glm: HfConfig = {
      model_type: 'chatglm',
      hidden_size: 32,
      num_attention_heads: 4,
      multi_query_attention: true,
      multi_query_group_num: 2,
      kv_channels: 8,
      num_layers: 1,
      padded_vocab_size: 72,
      vocab_size: 64,
      ffn_hidden_size: 48,
    };
    const graph = analyzeModel(
      fakeCheckpoint(glm, {
        'transformer.embedding.word_embeddings.weight': [72, 32],
        'transformer.encoder.layers.0.self_attention.query_key_value.weight': [64, 32],
        'transformer.encoder.layers.0.self_attention.dense.weight': [32, 32],
        'transformer.encoder.layers.0.mlp.dense_h_to_4h.weight': [96, 32],
        'transformer.encoder.layers.0.mlp.dense_4h_to_h.weight': [32, 48],
        'transformer.output_layer.weight': [72, 32],
      }),
    );
    expect(graph.geometry.vocab).toBe(72);
  });

  it('an unknown model type keeps only the head checks (its name rules are a guess)', () => {
    const graph = analyzeModel(fakeCheckpoint({ ...config, model_type: 'acme_lm', hidden_size: 48 }, shapes));
    expect(graph.family).toBe('generic');
  });
});

describe(`perceiver's decoder: its d_model width and its 8 heads fixed by PerceiverForMaskedLM${needsShared}`, () => {
  const fixture = () => families['perceiver']!;
  const decoder = 'perceiver.decoder.decoding_cross_attention';

  it.skipIf(!hasShared)('the 8 heads are the class\'s, whatever config.json says', () => {
    const graph = analyzeModel(fakeCheckpoint({ ...fixture().config, num_heads: 4 }, fixture().tensors));
    expect(graph.geometry.attention['decoder']).toEqual({ heads: 8, kvHeads: 8, headDim: 32 });
    expect(graph.weights.find((w) => w.name === `${decoder}.mlp.dense1.weight`)!.width).toMatchObject({ size: 32, source: { key: 'd_model', value: 32 } });
    expect(graph.weights.find((w) => w.name === `${decoder}.attention.self.key.weight`)!.width).toBeUndefined();
  });

  it.skipIf(!hasShared)('one damaged decoder tensor is refused, naming d_model and the tensor', async () => {
    const e = await expectTpError(() => analyzeModel(fakeCheckpoint(fixture().config, { ...fixture().tensors, [`${decoder}.mlp.dense1.weight`]: [32, 40] })), {
      code: 'shape-mismatch',
      name: 'ShapeError',
      key: 'd_model',
      tensor: `${decoder}.mlp.dense1.weight`,
    });
    expect(e['actual']).toEqual([32, 40]);
    expect(e['expected']).toEqual([32, 32]);
    expect(e.message).toContain('"d_model" is 32');
    expect(e.message).toContain('its input width (dimension 1), the width set by "d_model", is 40, not 32');
    expect(e.message).toContain('the checkpoint is damaged or mixes two models');
  });

  it.skipIf(!hasShared)('without d_model the decoder\'s width is unknown: refused, naming the key', async () => {
    const { d_model: _, ...config } = fixture().config;
    const e = await expectTpError(() => analyzeModel(fakeCheckpoint(config, fixture().tensors)), { code: 'config-missing-key', key: 'd_model' });
    expect(e.message).toContain('none of "d_model" is set');
  });

  it.skipIf(!hasShared)('decoder queries that are not 8 whole heads are refused as not of this class (no config key can fix it)', async () => {
    const tensors = { ...fixture().tensors, [`${decoder}.attention.self.query.weight`]: [252, 32], [`${decoder}.attention.self.query.bias`]: [252] };
    const e = await expectTpError(() => analyzeModel(fakeCheckpoint(fixture().config, tensors)), {
      code: 'shape-mismatch',
      name: 'ShapeError',
      key: FIXED_BY_CLASS,
      tensor: `${decoder}.attention.self.query.weight`,
    });
    expect(e['value']).toBe(8);
    expect(e['keys']).toEqual([]);
    expect(e.message).toContain('the model class fixes the number of attention heads at 8');
    expect(e.message).toContain('must hold 8 attention heads');
    expect(e.message).toContain('No config key changes it: these weights are not of this class');
  });
});
