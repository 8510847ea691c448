/**
 * config.json validation during model analysis (analyzeModel): missing and invalid keys, shapes that
 * disagree with the config, and model types without a descriptor going through the generic rules.
 * The checkpoints are real folders (tiny, zero-filled) opened with openCheckpoint.
 */
import { describe, expect, it } from 'vitest';
import { analyzeModel, openCheckpoint, planTensorParallel, tensorByteLength, type Checkpoint, type HfConfig, type ModelGraph, type TensorToWrite } from '../../src/index.js';
import { expectTpError, useTempDirs, writeCheckpoint } from '../helpers/files.js';

const tempDir = useTempDirs();

const HIDDEN = 16;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 4;
const VOCAB = 32;
const INTER = 24;
const LAYERS = 2;

const LLAMA_CONFIG: HfConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: HIDDEN,
  num_attention_heads: HEADS,
  num_key_value_heads: KV_HEADS,
  head_dim: HEAD_DIM,
  num_hidden_layers: LAYERS,
  vocab_size: VOCAB,
  intermediate_size: INTER,
  tie_word_embeddings: false,
};

const Q = (layer: number) => `model.layers.${layer}.self_attn.q_proj.weight`;

/** Llama-layout tensor shapes; `override` replaces or adds shapes by name. */
function llamaShapes(override: Record<string, readonly number[]> = {}): Record<string, readonly number[]> {
  const shapes: Record<string, readonly number[]> = {
    'model.embed_tokens.weight': [VOCAB, HIDDEN],
    'model.norm.weight': [HIDDEN],
    'lm_head.weight': [VOCAB, HIDDEN],
  };
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    shapes[`${p}.self_attn.q_proj.weight`] = [HEADS * HEAD_DIM, HIDDEN];
    shapes[`${p}.self_attn.k_proj.weight`] = [KV_HEADS * HEAD_DIM, HIDDEN];
    shapes[`${p}.self_attn.v_proj.weight`] = [KV_HEADS * HEAD_DIM, HIDDEN];
    shapes[`${p}.self_attn.o_proj.weight`] = [HIDDEN, HEADS * HEAD_DIM];
    shapes[`${p}.mlp.gate_proj.weight`] = [INTER, HIDDEN];
    shapes[`${p}.mlp.up_proj.weight`] = [INTER, HIDDEN];
    shapes[`${p}.mlp.down_proj.weight`] = [HIDDEN, INTER];
    shapes[`${p}.input_layernorm.weight`] = [HIDDEN];
    shapes[`${p}.post_attention_layernorm.weight`] = [HIDDEN];
  }
  return { ...shapes, ...override };
}

/** Write a checkpoint folder with zero-filled F16 tensors of these shapes and open it. */
async function checkpoint(config: HfConfig, shapes: Record<string, readonly number[]>): Promise<Checkpoint> {
  const tensors: TensorToWrite[] = Object.entries(shapes).map(([name, shape]) => ({
    name,
    dtype: 'F16',
    shape,
    data: () => new Uint8Array(tensorByteLength('F16', shape)),
  }));
  const dir = await writeCheckpoint(await tempDir(), { config, files: { 'model.safetensors': tensors } });
  return openCheckpoint(dir);
}

async function analyze(config: HfConfig, shapes = llamaShapes()): Promise<ModelGraph> {
  const ckpt = await checkpoint(config, shapes);
  try {
    return analyzeModel(ckpt);
  } finally {
    ckpt.close();
  }
}

async function expectConfigError(config: HfConfig, code: 'config-invalid' | 'config-missing-key', key: string | undefined, shapes = llamaShapes()) {
  const ckpt = await checkpoint(config, shapes);
  try {
    await expectTpError(() => analyzeModel(ckpt), { code, name: 'ConfigError', file: 'config.json', key });
  } finally {
    ckpt.close();
  }
}

const without = (config: HfConfig, ...keys: string[]): HfConfig => Object.fromEntries(Object.entries(config).filter(([k]) => !keys.includes(k)));

describe('a valid config', () => {
  it('analyzes the tiny llama with the llama rules', async () => {
    const graph = await analyze(LLAMA_CONFIG);
    expect(graph.family).toBe('llama');
    expect(graph.geometry).toMatchObject({ hidden: HIDDEN, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM, layers: LAYERS, vocab: VOCAB, intermediate: INTER });
    const q = graph.weights.find((w) => w.name === Q(0))!;
    expect(q.role).toBe('attn.q');
    expect(q.rule).toBe('llama:self_attn.q_proj');
    expect(graph.weights.every((w) => w.rule.startsWith('llama:'))).toBe(true);
  });

  it('derives head_dim from q_proj when the config does not give it', async () => {
    const graph = await analyze(without(LLAMA_CONFIG, 'head_dim'));
    expect(graph.geometry.headDim).toBe(HEAD_DIM);
  });

  it('reads numbers nested under text_config', async () => {
    const { architectures, model_type, ...text } = LLAMA_CONFIG;
    const graph = await analyze({ architectures, model_type, text_config: text });
    expect(graph.geometry).toMatchObject({ hidden: HIDDEN, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM });
  });
});

describe('missing or invalid keys', () => {
  it('rejects a config without model_type (config-missing-key "model_type")', async () => {
    await expectConfigError(without(LLAMA_CONFIG, 'model_type'), 'config-missing-key', 'model_type');
  });

  it.each([
    ['empty', ''],
    ['a number', 7],
    ['null', null],
    ['a list', ['llama']],
  ])('rejects a model_type that is %s (config-missing-key "model_type")', async (_, value) => {
    await expectConfigError({ ...LLAMA_CONFIG, model_type: value }, 'config-missing-key', 'model_type');
  });

  it('rejects a llama config without num_attention_heads (config-missing-key "num_attention_heads")', async () => {
    await expectConfigError(without(LLAMA_CONFIG, 'num_attention_heads'), 'config-missing-key', 'num_attention_heads');
  });

  it.each([
    ['zero', 0],
    ['negative', -4],
    ['fractional', 2.5],
    ['a string', '4'],
    ['null', null],
  ])('rejects num_attention_heads that is %s (config-missing-key "num_attention_heads")', async (_, value) => {
    await expectConfigError({ ...LLAMA_CONFIG, num_attention_heads: value }, 'config-missing-key', 'num_attention_heads');
  });

  it.each(['hidden_size', 'vocab_size', 'num_hidden_layers'])('rejects a llama config without %s (config-missing-key)', async (key) => {
    await expectConfigError(without(LLAMA_CONFIG, key), 'config-missing-key', key);
  });

  it.each([
    [4, 3],
    [6, 4],
    [2, 4],
  ])('rejects %i heads over %i kv heads: not a multiple (config-invalid)', async (heads, kv) => {
    await expectConfigError({ ...LLAMA_CONFIG, num_attention_heads: heads, num_key_value_heads: kv }, 'config-invalid', undefined);
  });

  it.each([0, -1, 1.5])('rejects num_key_value_heads = %s (config-invalid)', async (kv) => {
    await expectConfigError({ ...LLAMA_CONFIG, num_key_value_heads: kv }, 'config-invalid', undefined);
  });

  it('rejects a generic config with no head count under any known key (config-missing-key "num_attention_heads")', async () => {
    await expectConfigError({ ...without(LLAMA_CONFIG, 'num_attention_heads'), model_type: 'acme_lm' }, 'config-missing-key', 'num_attention_heads');
  });
});

describe('shapes against the config', () => {
  it('rejects a q_proj wider than heads x head_dim, naming it and the implied shape (ShapeError)', async () => {
    const shapes = llamaShapes({ [Q(1)]: [HEADS * HEAD_DIM + 4, HIDDEN] });
    const ckpt = await checkpoint(LLAMA_CONFIG, shapes);
    try {
      const error = await expectTpError(() => analyzeModel(ckpt), { code: 'shape-mismatch', name: 'ShapeError', tensor: Q(1) });
      expect(error['expected']).toEqual([HEADS * HEAD_DIM, HIDDEN]);
      expect(error['actual']).toEqual([HEADS * HEAD_DIM + 4, HIDDEN]);
    } finally {
      ckpt.close();
    }
  });

  it('rejects a q_proj whose width is not a multiple of the heads, when head_dim is derived (ShapeError)', async () => {
    const shapes = llamaShapes({ [Q(1)]: [HEADS * HEAD_DIM + 2, HIDDEN] });
    const ckpt = await checkpoint(without(LLAMA_CONFIG, 'head_dim'), shapes);
    try {
      const error = await expectTpError(() => analyzeModel(ckpt), { code: 'shape-mismatch', name: 'ShapeError', tensor: Q(1) });
      // head_dim comes from layer 0's q_proj (16 / 4 = 4), so layer 1's must be 4 x 4 wide.
      expect(error['expected']).toEqual([HEADS * HEAD_DIM, HIDDEN]);
    } finally {
      ckpt.close();
    }
  });

  it('rejects k_proj sized for fewer kv heads than the config says (ShapeError)', async () => {
    const K = 'model.layers.0.self_attn.k_proj.weight';
    const ckpt = await checkpoint(without(LLAMA_CONFIG, 'num_key_value_heads'), llamaShapes());
    try {
      // Without num_key_value_heads, kv heads = heads: k_proj must be [heads x head_dim, hidden].
      const error = await expectTpError(() => analyzeModel(ckpt), { code: 'shape-mismatch', name: 'ShapeError', tensor: K });
      expect(error['expected']).toEqual([HEADS * HEAD_DIM, HIDDEN]);
      expect(error['actual']).toEqual([KV_HEADS * HEAD_DIM, HIDDEN]);
    } finally {
      ckpt.close();
    }
  });
});

describe('an unknown model_type', () => {
  it('analyzes and plans llama-like names through the generic rules', async () => {
    const graph = await analyze({ ...LLAMA_CONFIG, model_type: 'acme_lm', architectures: ['AcmeForCausalLM'] });
    expect(graph.family).toBe('generic');
    expect(graph.modelType).toBe('acme_lm');
    expect(graph.weights.length).toBe(Object.keys(llamaShapes()).length);
    for (const w of graph.weights) expect(w.rule, w.name).toMatch(/^generic:/);

    const role = (name: string) => graph.weights.find((w) => w.name === name)!.role;
    expect(role(Q(0))).toBe('attn.q');
    expect(role('model.layers.0.self_attn.k_proj.weight')).toBe('attn.k');
    expect(role('model.layers.0.self_attn.v_proj.weight')).toBe('attn.v');
    expect(role('model.layers.0.self_attn.o_proj.weight')).toBe('attn.out');
    expect(role('model.layers.1.mlp.gate_proj.weight')).toBe('mlp.gate');
    expect(role('model.layers.1.mlp.up_proj.weight')).toBe('mlp.up');
    expect(role('model.layers.1.mlp.down_proj.weight')).toBe('mlp.down');
    expect(role('model.layers.1.input_layernorm.weight')).toBe('norm');
    expect(role('model.embed_tokens.weight')).toBe('embed');
    expect(role('lm_head.weight')).toBe('lm_head');
    expect(graph.geometry).toMatchObject({ heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM });

    const plan = planTensorParallel(graph, { tpSize: 2 });
    expect(plan.tensors.length).toBe(graph.weights.length);
    for (const t of plan.tensors) expect(t.rule, t.name).toMatch(/^generic:/);
    const split = (name: string) => plan.tensors.find((t) => t.name === name)!.split;
    expect(split(Q(0))).toBe('column');
    expect(split('model.layers.0.self_attn.o_proj.weight')).toBe('row');
  });

  it('still checks shapes against the config (ShapeError)', async () => {
    const shapes = llamaShapes({ [Q(1)]: [HEADS * HEAD_DIM + 4, HIDDEN] });
    const ckpt = await checkpoint({ ...LLAMA_CONFIG, model_type: 'acme_lm' }, shapes);
    try {
      const error = await expectTpError(() => analyzeModel(ckpt), { code: 'shape-mismatch', tensor: Q(1) });
      expect(error['expected']).toEqual([HEADS * HEAD_DIM, HIDDEN]);
    } finally {
      ckpt.close();
    }
  });
});
