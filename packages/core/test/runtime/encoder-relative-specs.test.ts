/**
 * What the NEZHA, DeBERTa (v1, v2), YOSO and LUKE descriptors tell the engine, from their configs
 * (the golden folders' config.json, as transformers 4.57 wrote them, plus the switches tp refuses):
 * relative positions, scale factors, scoring and padding, each as transformers computes them.
 */
import { describe, expect, test } from 'vitest';
import { createConfigReader, findFamily, type EncoderSpec } from '../../src/graph/index.js';
import { TpError } from '../../src/errors/index.js';

const specOf = (config: Record<string, unknown>): EncoderSpec => {
  const family = findFamily(String(config['model_type']));
  if (family?.encoder === undefined) throw new Error(`${String(config['model_type'])} has no encoder spec`);
  return family.encoder(createConfigReader(config));
};

const refusal = (config: Record<string, unknown>): string => {
  try {
    specOf(config);
  } catch (e) {
    expect(TpError.isInstance(e) && e.code === 'unsupported-model', String(e)).toBe(true);
    return String((e as TpError & { reason?: string }).reason ?? (e as Error).message);
  }
  throw new Error('the config was accepted');
};

const debertaV2 = {
  model_type: 'deberta-v2',
  hidden_size: 64,
  num_attention_heads: 4,
  layer_norm_eps: 1e-7,
  max_position_embeddings: 128,
  max_relative_positions: -1,
  norm_rel_ebd: 'layer_norm',
  pos_att_type: ['p2c', 'c2p'],
  position_biased_input: false,
  position_buckets: 32,
  relative_attention: true,
  share_att_key: true,
  type_vocab_size: 0,
};
const debertaV1 = {
  model_type: 'deberta',
  hidden_size: 64,
  num_attention_heads: 4,
  max_position_embeddings: 128,
  max_relative_positions: -1,
  pos_att_type: ['c2p', 'p2c'],
  position_biased_input: false,
  relative_attention: true,
  type_vocab_size: 0,
};

describe('DeBERTa', () => {
  test('v2 (v3 style): log buckets of 32 over max_relative_positions = max_position_embeddings, shared keys, normed embeddings, scores over sqrt(3d), no absolute positions', () => {
    const spec = specOf(debertaV2);
    expect(spec.relative).toEqual({ kind: 'disentangled', c2p: true, p2c: true, scaleFactor: 3, span: 32, buckets: { size: 32, maxPosition: 128 }, normEmbeddings: true, sharedKeys: true });
    expect(spec.positions).toBe('none');
    expect(spec.norm).toEqual({ kind: 'layer', eps: 1e-7 });
  });

  test('v2 without buckets spans max_relative_positions; the old "c2p|p2c" string and one term alone count as transformers counts them', () => {
    const spec = specOf({ ...debertaV2, position_buckets: -1, max_relative_positions: 20, pos_att_type: 'C2P', share_att_key: false, norm_rel_ebd: 'none', position_biased_input: true });
    expect(spec.relative).toEqual({ kind: 'disentangled', c2p: true, p2c: false, scaleFactor: 2, span: 20, normEmbeddings: false, sharedKeys: false });
    expect(spec.positions).toBe('learned');
    expect((specOf({ ...debertaV2, pos_att_type: 'p2c|c2p' }).relative as { scaleFactor: number }).scaleFactor).toBe(3);
  });

  test('v1 spans max_position_embeddings when max_relative_positions < 1, never buckets, never shares keys (even when the config says so)', () => {
    expect(specOf({ ...debertaV1, position_buckets: 32, share_att_key: true }).relative).toEqual({ kind: 'disentangled', c2p: true, p2c: true, scaleFactor: 3, span: 128, normEmbeddings: false, sharedKeys: false });
  });

  test('relative_attention false is plain attention, still scaled by sqrt(d · (1 + terms)) as DisentangledSelfAttention does', () => {
    expect(specOf({ ...debertaV1, relative_attention: false }).relative).toMatchObject({ c2p: false, p2c: false, scaleFactor: 3 });
  });

  test('switches tp does not implement are refused by name', () => {
    expect(refusal({ ...debertaV2, conv_kernel_size: 3 })).toMatch(/"conv_kernel_size": 3 .* not implemented/);
    expect(refusal({ ...debertaV2, embedding_size: 32 })).toMatch(/"embedding_size": 32 ≠ hidden_size 64/);
    expect(refusal({ ...debertaV1, talking_head: true })).toMatch(/"talking_head": true/);
    expect(refusal({ ...debertaV1, pos_att_type: ['c2p', 'p2p'] })).toMatch(/pos_att_type \["p2p"\] is not implemented/);
    // conv_kernel_size 0 (DebertaV2Config's absent default) is no convolution
    expect(() => specOf({ ...debertaV2, conv_kernel_size: 0 })).not.toThrow();
  });
});

describe('NEZHA, YOSO and LUKE', () => {
  test('NEZHA: functional relative positions clipped at max_relative_position, no absolute positions', () => {
    const spec = specOf({ model_type: 'nezha', max_relative_position: 16, max_position_embeddings: 128 });
    expect(spec.relative).toEqual({ kind: 'functional', maxDistance: 16 });
    expect(spec.positions).toBe('none');
  });

  test('YOSO: expectation scoring with hash_code_len bits, positions from 2, padding visible; conv_window and LSH sampling refused', () => {
    const yoso = { model_type: 'yoso', hash_code_len: 9, conv_window: null, use_expectation: true, position_embedding_type: 'absolute', pad_token_id: 1 };
    const spec = specOf(yoso);
    expect(spec.scoring).toEqual({ kind: 'expectation', bits: 9 });
    expect(spec.positionOffset).toBe(2);
    expect(spec.padPosition).toBeUndefined();
    expect(spec.paddingVisible).toBe(true);
    expect(refusal({ ...yoso, conv_window: 65 })).toMatch(/"conv_window": 65/);
    expect(refusal({ ...yoso, use_expectation: false })).toMatch(/"use_expectation": false/);
  });

  test("LUKE: RoBERTa's positions (padding_idx + 1) and erf-GELU LM head, every pair scored with `query`", () => {
    const spec = specOf({ model_type: 'luke', pad_token_id: 1, hidden_act: 'gelu' });
    expect(spec.positionOffset).toBe(2);
    expect(spec.padPosition).toBe(-1);
    expect(spec.mlm).toEqual({ activation: 'gelu' });
    expect(spec.relative).toBeUndefined();
  });
});
