/**
 * Every family: the checkpoint opens in @tp/core, analyses as its own model type with every weight
 * matched by a family rule, and plans at tp = 2. With a golden checkpoint's dimensions, the tensor
 * names, shapes and the whole safetensors header, config.json and generation_config.json match what
 * transformers 4.57.6 wrote.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { analyzeModel, planTensorParallel } from '@tp/core';
import { describe, expect, it } from 'vitest';
import { FAMILY_NAMES, familyVariants, writeTinyModel } from '../src/index.js';
import { GOLDEN_DIR, hasGolden, needsGolden, optionsFromGolden, useTempDirs, withCheckpoint } from './helpers.js';

const tempDir = useTempDirs();

interface Case {
  family: string;
  variant: string | undefined;
}
const CASES = FAMILY_NAMES.flatMap((family): Case[] => {
  const variants = familyVariants(family);
  return variants.length === 0 ? [{ family, variant: undefined }] : variants.map((variant) => ({ family, variant }));
});

describe('every family analyses and plans in @tp/core', () => {
  it('covers the 21 decoder families and 5 variants, BERT (2 variants), and the T5 (2 variants) and BART encoder–decoders', () => {
    expect(FAMILY_NAMES).toHaveLength(24);
    expect(FAMILY_NAMES.slice(-3)).toEqual(['bert', 't5', 'bart']);
    expect(CASES).toHaveLength(29);
    expect(familyVariants('t5')).toEqual(['v1_1', 'v1_0']);
    expect(familyVariants('bert')).toEqual(['mlm', 'pretraining']);
    expect(familyVariants('falcon')).toEqual(['multi_query', 'new_arch', 'alibi_mha']);
    expect(familyVariants('gpt_bigcode')).toEqual(['mqa', 'mha']);
  });

  it.each(CASES)('$family $variant', async ({ family, variant }) => {
    const dir = await tempDir();
    const result = await writeTinyModel(dir, { family, variant });
    expect(result.config['model_type']).toBe(family);
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensors.size).toBe(result.tensorCount);
      const graph = analyzeModel(ckpt);
      expect(graph.modelType).toBe(family);
      expect(graph.family).toBe(family);
      expect(graph.warnings).toEqual([]);
      expect(graph.weights.filter((w) => w.rule.startsWith('generic:')).map((w) => w.name)).toEqual([]);
      expect(graph.geometry.hidden).toBe(64);
      expect(graph.geometry.layers).toBe(2);
      const plan = planTensorParallel(graph, { tpSize: 2 });
      expect(plan.tpSize).toBe(2);
      expect(plan.tensors).toHaveLength(result.tensorCount);
      expect(plan.warnings).toEqual([]);
    });
  });
});

const GOLDEN_FOLDERS = [
  'llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'phi3', 'mixtral', 'qwen2_moe', 'gpt_neox', 'opt', 'bloom',
  'falcon', 'falcon_new_arch', 'gptj', 'gpt_neo', 'gpt2', 'openai-gpt', 'gpt_bigcode', 'mpt', 'phi', 'codegen', 'xglm',
];

/** The safetensors header (length prefix and JSON) of a file. */
async function header(file: string): Promise<string> {
  const bytes = await readFile(file);
  return bytes.subarray(0, 8 + Number(bytes.readBigUInt64LE(0))).toString('latin1');
}

describe('matches the golden checkpoints written by transformers 4.57.6', () => {
  it.skipIf(!hasGolden).each(GOLDEN_FOLDERS)(`%s: same tensors, header, config and generation config${needsGolden}`, async (folder) => {
    const golden = path.join(GOLDEN_DIR, folder);
    const goldenConfigText = await readFile(path.join(golden, 'config.json'), 'utf8');
    const options = optionsFromGolden(JSON.parse(goldenConfigText) as Record<string, unknown>);
    const dir = await tempDir();
    await writeTinyModel(dir, options);

    const shapes = (ckpt: { tensors: ReadonlyMap<string, { shape: readonly number[] }> }) =>
      Object.fromEntries([...ckpt.tensors.entries()].map(([name, t]) => [name, [...t.shape]]));
    const ours = await withCheckpoint(dir, shapes);
    const theirs = await withCheckpoint(golden, shapes);
    expect(ours).toEqual(theirs);
    // same tensor order, offsets, dtype and JSON layout: the header bytes are identical
    expect(await header(path.join(dir, 'model.safetensors'))).toBe(await header(path.join(golden, 'model.safetensors')));

    const configText = await readFile(path.join(dir, 'config.json'), 'utf8');
    if (folder === 'mpt') {
      // the golden writer set expansion_ratio 2, which HF ignores (MptMLP is always 4 × d_model); we write 4
      expect(goldenConfigText).toContain('"expansion_ratio": 2,');
      expect(configText).toBe(goldenConfigText.replace('"expansion_ratio": 2,', '"expansion_ratio": 4,'));
    } else {
      expect(configText).toBe(goldenConfigText);
    }
    expect(await readFile(path.join(dir, 'generation_config.json'), 'utf8')).toBe(await readFile(path.join(golden, 'generation_config.json'), 'utf8'));
  });
});

describe('variants and overrides change exactly what HF would', () => {
  it('falcon alibi_mha has biases, two norms and a 3·hidden per-head qkv', async () => {
    const dir = await tempDir();
    const r = await writeTinyModel(dir, { family: 'falcon', variant: 'alibi_mha' });
    expect(r.config).toMatchObject({ alibi: true, bias: true, multi_query: false, new_decoder_architecture: false, parallel_attn: false, num_kv_heads: 4 });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensor('transformer.h.0.self_attention.query_key_value.weight').shape).toEqual([192, 64]);
      expect(ckpt.tensor('transformer.h.0.self_attention.query_key_value.bias').shape).toEqual([192]);
      expect(ckpt.tensors.has('transformer.h.0.post_attention_layernorm.weight')).toBe(true);
      expect(ckpt.tensors.has('lm_head.weight')).toBe(false);
      expect(analyzeModel(ckpt).geometry.kvHeads).toBe(4);
    });
  });

  it('falcon new_arch with 8 heads over 2 kv heads stores (8 + 2·2)·head_dim qkv rows', async () => {
    const dir = await tempDir();
    await writeTinyModel(dir, { family: 'falcon', variant: 'new_arch', heads: 8, kvHeads: 2 });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensor('transformer.h.1.self_attention.query_key_value.weight').shape).toEqual([96, 64]);
      expect(ckpt.tensors.has('transformer.h.1.ln_attn.weight')).toBe(true);
      const graph = analyzeModel(ckpt);
      expect([graph.geometry.heads, graph.geometry.kvHeads]).toEqual([8, 2]);
      expect(planTensorParallel(graph, { tpSize: 4 }).tpSize).toBe(4);
    });
  });

  it('gpt_bigcode mha: c_attn is 3·hidden rows and num_key_value_heads = heads', async () => {
    const dir = await tempDir();
    const r = await writeTinyModel(dir, { family: 'gpt_bigcode', variant: 'mha' });
    expect(r.config).toMatchObject({ multi_query: false, num_key_value_heads: 4 });
    await withCheckpoint(dir, (ckpt) => expect(ckpt.tensor('transformer.h.0.attn.c_attn.weight').shape).toEqual([192, 64]));
  });

  it('untying gpt2 stores lm_head.weight and writes tie_word_embeddings: false', async () => {
    const dir = await tempDir();
    const r = await writeTinyModel(dir, { family: 'gpt2', tie: false });
    expect(r.config['tie_word_embeddings']).toBe(false);
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensor('lm_head.weight').shape).toEqual([256, 64]);
      expect(analyzeModel(ckpt).lmHead).toEqual({ tensor: 'lm_head.weight', tied: false, embed: undefined });
    });
  });

  it('tying llama drops lm_head.weight; tying gptj keeps lm_head.bias', async () => {
    const llama = await tempDir();
    const r = await writeTinyModel(llama, { family: 'llama', tie: true });
    expect(r.config['tie_word_embeddings']).toBe(true);
    await withCheckpoint(llama, (ckpt) => {
      expect(ckpt.tensors.has('lm_head.weight')).toBe(false);
      expect(analyzeModel(ckpt).lmHead).toEqual({ tensor: undefined, tied: true, embed: 'model.embed_tokens.weight' });
    });
    const gptj = await tempDir();
    await writeTinyModel(gptj, { family: 'gptj', tie: true });
    await withCheckpoint(gptj, (ckpt) => {
      expect(ckpt.tensors.has('lm_head.weight')).toBe(false);
      expect(ckpt.tensor('lm_head.bias').shape).toEqual([256]);
    });
  });

  it('a head_dim other than hidden/heads sizes q/o and is written for qwen2, which only then has the key', async () => {
    const dir = await tempDir();
    const r = await writeTinyModel(dir, { family: 'qwen2', headDim: 32 });
    expect(r.config['head_dim']).toBe(32);
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensor('model.layers.0.self_attn.q_proj.weight').shape).toEqual([128, 64]);
      expect(ckpt.tensor('model.layers.0.self_attn.k_proj.weight').shape).toEqual([64, 64]);
      expect(ckpt.tensor('model.layers.0.self_attn.o_proj.weight').shape).toEqual([64, 128]);
      expect(analyzeModel(ckpt).geometry.headDim).toBe(32);
    });
    const plain = await writeTinyModel(await tempDir(), { family: 'qwen2' });
    expect('head_dim' in plain.config).toBe(false);
  });

  it('mixtral with 3 experts, top-1 stores 3 experts per layer and a [3, hidden] router', async () => {
    const dir = await tempDir();
    const r = await writeTinyModel(dir, { family: 'mixtral', experts: 3, expertsPerToken: 1 });
    expect(r.config).toMatchObject({ num_local_experts: 3, num_experts_per_tok: 1 });
    await withCheckpoint(dir, (ckpt) => {
      expect(ckpt.tensor('model.layers.1.block_sparse_moe.gate.weight').shape).toEqual([3, 64]);
      expect(ckpt.tensors.has('model.layers.1.block_sparse_moe.experts.2.w3.weight')).toBe(true);
      expect(ckpt.tensors.has('model.layers.1.block_sparse_moe.experts.3.w3.weight')).toBe(false);
      expect(analyzeModel(ckpt).geometry.experts).toBe(3);
    });
  });

  it('gpt_neo with 3 layers lists every layer in attention_types', async () => {
    const r = await writeTinyModel(await tempDir(), { family: 'gpt_neo', layers: 3 });
    expect(r.config['attention_layers']).toEqual(['global', 'local', 'global']);
    expect(r.config['attention_types']).toEqual([[['global', 'local'], 1], [['global'], 1]]);
  });
});
