/**
 * Storage dtypes: `storageDtypeFor` (what the planner records as each tensor's storage, and the loader
 * uploads) and the plan's memory numbers in the storage and KV dtypes. Matrices take the requested
 * storage; vectors (norm weights, biases) are always f32.
 */
import { describe, expect, it } from 'vitest';
import {
  analyzeModel,
  openCheckpoint,
  planTensorParallel,
  storageDtypeFor,
  tensorByteLength,
  type Dtype,
  type HfConfig,
  type StorageDtype,
  type TPPlan,
  type TensorToWrite,
} from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { expectTpError, useTempDirs, writeCheckpoint } from '../helpers/files.js';
import { planViolations } from '../helpers/invariants.js';

const CONFIG: HfConfig = {
  model_type: 'llama',
  architectures: ['LlamaForCausalLM'],
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 128,
  intermediate_size: 128,
};

function shapes(): Record<string, number[]> {
  const out: Record<string, number[]> = { 'model.embed_tokens.weight': [128, 64], 'model.norm.weight': [64], 'lm_head.weight': [128, 64] };
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(out, {
      [`${p}self_attn.q_proj.weight`]: [64, 64],
      [`${p}self_attn.k_proj.weight`]: [32, 64],
      [`${p}self_attn.v_proj.weight`]: [32, 64],
      [`${p}self_attn.o_proj.weight`]: [64, 64],
      [`${p}mlp.gate_proj.weight`]: [128, 64],
      [`${p}mlp.up_proj.weight`]: [128, 64],
      [`${p}mlp.down_proj.weight`]: [64, 128],
      [`${p}input_layernorm.weight`]: [64],
      [`${p}post_attention_layernorm.weight`]: [64],
    });
  }
  return out;
}

const count = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const ELEMENTS = Object.values(shapes()).reduce((n, s) => n + count(s), 0);
/** Elements in matrices (rank ≥ 2: held in the requested storage) and in vectors (held as f32). */
const MATRIX_ELEMENTS = Object.values(shapes()).reduce((n, s) => n + (s.length >= 2 ? count(s) : 0), 0);
const VECTOR_ELEMENTS = ELEMENTS - MATRIX_ELEMENTS;

/** Each rank's parameter bytes, from its tensors: matrices at `matrixBytes` per element, vectors at 4. */
const rankParamBytes = (p: TPPlan, matrixBytes: number) =>
  p.ranks.map((_, r) => p.tensors.filter((t) => t.read).reduce((n, t) => n + count(t.ranks[r]!.shape) * (t.shape.length >= 2 ? matrixBytes : 4), 0));

function plan(dtype: Dtype, options: Parameters<typeof planTensorParallel>[1] = { tpSize: 2 }, dtypes: Record<string, Dtype> = {}, extra: Record<string, number[]> = {}): TPPlan {
  return planTensorParallel(analyzeModel(fakeCheckpoint(CONFIG, { ...shapes(), ...extra }, dtype, dtypes)), options);
}

/** A tensor for `storageDtypeFor`: a matrix unless a shape is given. */
const T = (name: string, dtype: Dtype, shape: number[] = [64, 64]) => ({ name, dtype, shape });

describe('storageDtypeFor', () => {
  it('auto keeps F32, F16 and BF16 as stored, and makes F64 f32', () => {
    expect(storageDtypeFor(T('w', 'F32'), 'auto')).toBe('f32');
    expect(storageDtypeFor(T('w', 'F16'), 'auto')).toBe('f16');
    expect(storageDtypeFor(T('w', 'BF16'), 'auto')).toBe('bf16');
    expect(storageDtypeFor(T('w', 'F64'), 'auto')).toBe('f32');
    expect(storageDtypeFor(T('w', 'BF16'))).toBe('bf16'); // auto and all three by default
  });

  it('auto widens to f32 what the backend cannot hold', () => {
    expect(storageDtypeFor(T('w', 'F16'), 'auto', ['f32'])).toBe('f32');
    expect(storageDtypeFor(T('w', 'BF16'), 'auto', ['f32', 'f16'])).toBe('f32');
    expect(storageDtypeFor(T('w', 'F16'), 'auto', ['f32', 'bf16'])).toBe('f32');
  });

  it('auto refuses when the backend has neither the stored dtype nor f32', async () => {
    const e = await expectTpError(() => storageDtypeFor(T('lm_head.weight', 'F32'), 'auto', ['bf16']), { code: 'dtype-unsupported', name: 'DtypeError', tensor: 'lm_head.weight' });
    expect(e['supported']).toEqual(['bf16']);
    // A vector follows the same rules when the backend has no f32 to hold it in.
    await expectTpError(() => storageDtypeFor(T('model.norm.weight', 'F32', [64]), 'auto', ['bf16']), { code: 'dtype-unsupported', tensor: 'model.norm.weight' });
    expect(storageDtypeFor(T('model.norm.weight', 'F32', [64]), 'bf16', ['bf16'])).toBe('bf16');
  });

  it('vectors (rank < 2) are f32 whatever is asked, bf16 → f16 included; matrices take the request', async () => {
    for (const shape of [[64], []]) {
      for (const requested of ['auto', 'f32', 'f16', 'bf16'] as const) {
        for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as const) expect(storageDtypeFor(T('model.norm.weight', dtype, shape), requested), `${dtype} ${requested}`).toBe('f32');
      }
    }
    expect(storageDtypeFor(T('model.norm.weight', 'BF16', [64]), 'f16', ['f32', 'f16'])).toBe('f32');
    expect(storageDtypeFor(T('model.layers.0.mlp.up_proj.weight', 'BF16', [128, 64]), 'auto')).toBe('bf16');
    await expectTpError(() => storageDtypeFor(T('model.layers.0.mlp.up_proj.weight', 'BF16', [128, 64]), 'f16'), { code: 'dtype-unsupported' });
    // Non-float vectors are still refused: they are not weights.
    await expectTpError(() => storageDtypeFor(T('attn.mask', 'BOOL', [64]), 'auto'), { code: 'dtype-unsupported', tensor: 'attn.mask' });
  });

  it('an explicit dtype converts', () => {
    expect(storageDtypeFor(T('w', 'F32'), 'bf16')).toBe('bf16');
    expect(storageDtypeFor(T('w', 'F32'), 'f16')).toBe('f16');
    expect(storageDtypeFor(T('w', 'F16'), 'bf16')).toBe('bf16');
    expect(storageDtypeFor(T('w', 'BF16'), 'f32')).toBe('f32');
    expect(storageDtypeFor(T('w', 'F64'), 'bf16')).toBe('bf16');
    expect(storageDtypeFor(T('w', 'F32'), 'BF16' as StorageDtype)).toBe('bf16'); // case-insensitive
  });

  it('refuses bf16 → f16 (a bf16 value can exceed f16), naming the tensor', async () => {
    const e = await expectTpError(() => storageDtypeFor(T('model.layers.0.mlp.up_proj.weight', 'BF16'), 'f16'), {
      code: 'dtype-unsupported',
      name: 'DtypeError',
      tensor: 'model.layers.0.mlp.up_proj.weight',
    });
    expect(e['dtype']).toBe('BF16');
    expect(e['requested']).toBe('f16');
    expect(e.message).toContain('--dtype bf16');
  });

  it('refuses a dtype the backend does not store', async () => {
    const e = await expectTpError(() => storageDtypeFor(T('lm_head.weight', 'F32'), 'f16', ['f32', 'bf16']), { code: 'dtype-unsupported', tensor: 'lm_head.weight' });
    expect(e['supported']).toEqual(['f32', 'bf16']);
  });

  it('refuses non-float tensors: they are not weights to convert', async () => {
    await expectTpError(() => storageDtypeFor(T('embeddings.position_ids', 'I64'), 'auto'), { code: 'dtype-unsupported', tensor: 'embeddings.position_ids' });
  });

  it('refuses unknown requests and backend lists as invalid arguments', async () => {
    await expectTpError(() => storageDtypeFor(T('w', 'F32'), 'f8' as StorageDtype), { code: 'invalid-argument' });
    await expectTpError(() => storageDtypeFor(T('w', 'F32'), 'auto', []), { code: 'invalid-argument' });
    await expectTpError(() => storageDtypeFor(T('w', 'F32'), 'auto', ['int8' as StorageDtype]), { code: 'invalid-argument' });
  });
});

describe('plan memory in the storage dtype', () => {
  it('records the options: compute f32, storage as asked, kv f32 by default', () => {
    const p = plan('F32');
    expect(p.options).toMatchObject({ computeDtype: 'f32', storageDtype: 'auto', kvDtype: 'f32', supportedStorage: ['f32', 'f16', 'bf16'] });
    expect(p.storageDtypes).toEqual(['f32']);
    expect(p.totals.paramBytes).toBe(ELEMENTS * 4);
    expect(p.totals.paramBytes).toBe(p.totals.bytes);
  });

  it('a BF16 checkpoint with auto: matrices bf16, vectors f32, storageDtypes just bf16', () => {
    const bf16 = plan('BF16');
    const f32 = plan('BF16', { tpSize: 2, storageDtype: 'f32' });
    expect(bf16.model.dtype).toBe('BF16');
    expect(bf16.storageDtypes).toEqual(['bf16']);
    for (const t of bf16.tensors) expect(t.storage, t.name).toBe(t.shape.length >= 2 ? 'bf16' : 'f32');
    for (const t of f32.tensors) expect(t.storage, t.name).toBe('f32');
    expect(bf16.totals.paramBytes).toBe(MATRIX_ELEMENTS * 2 + VECTOR_ELEMENTS * 4);
    expect(f32.totals.paramBytes).toBe(ELEMENTS * 4);
    expect(bf16.ranks.map((r) => r.paramBytes)).toEqual(rankParamBytes(bf16, 2));
    expect(f32.ranks.map((r) => r.paramBytes)).toEqual(rankParamBytes(f32, 4));
    // Bytes read from disk do not depend on the storage dtype.
    expect(bf16.ranks.map((r) => r.bytesToRead)).toEqual(f32.ranks.map((r) => r.bytesToRead));
    expect(planViolations(bf16)).toEqual([]);
  });

  it('a norm weight of a BF16 checkpoint is held as f32, a matmul weight as bf16', () => {
    const p = plan('BF16');
    const storage = (name: string) => p.tensors.find((t) => t.name === name)!.storage;
    expect(storage('model.norm.weight')).toBe('f32');
    expect(storage('model.layers.0.input_layernorm.weight')).toBe('f32');
    expect(storage('model.layers.0.mlp.up_proj.weight')).toBe('bf16');
    expect(storage('model.layers.0.self_attn.q_proj.weight')).toBe('bf16');
    expect(storage('model.embed_tokens.weight')).toBe('bf16');
  });

  it('storageDtype f16 on BF16 weights is refused, naming a matrix', async () => {
    await expectTpError(() => plan('BF16', { tpSize: 2, storageDtype: 'f16' }), { code: 'dtype-unsupported', name: 'DtypeError', tensor: 'lm_head.weight' });
  });

  it('an F16 checkpoint with auto on a backend that stores only f32: f32', () => {
    const p = plan('F16', { tpSize: 2, supportedStorage: ['f32'] });
    expect(p.storageDtypes).toEqual(['f32']);
    for (const t of p.tensors) expect(t.storage).toBe('f32');
    expect(p.totals.paramBytes).toBe(ELEMENTS * 4);
    expect(p.totals.bytes).toBe(ELEMENTS * 2);
    expect(p.options.supportedStorage).toEqual(['f32']);
  });

  it('an F32 checkpoint stored as bf16 halves the matrices\' memory, not the bytes read', () => {
    const p = plan('F32', { tpSize: 2, storageDtype: 'bf16' });
    expect(p.options.storageDtype).toBe('bf16');
    expect(p.storageDtypes).toEqual(['bf16']);
    expect(p.totals.paramBytes).toBe(MATRIX_ELEMENTS * 2 + VECTOR_ELEMENTS * 4);
    expect(p.ranks.map((r) => r.paramBytes)).toEqual(rankParamBytes(p, 2));
    expect(p.totals.bytes).toBe(ELEMENTS * 4);
  });

  it('mixed checkpoints: each matrix keeps its own dtype under auto; storageDtypes lists the matrices\' dtypes, most bytes first', () => {
    const p = plan('BF16', { tpSize: 2 }, { 'lm_head.weight': 'F32', 'model.norm.weight': 'F32' });
    const head = p.tensors.find((t) => t.name === 'lm_head.weight')!;
    expect(head.storage).toBe('f32');
    expect(p.tensors.find((t) => t.name === 'model.embed_tokens.weight')!.storage).toBe('bf16');
    expect(p.tensors.find((t) => t.name === 'model.norm.weight')!.storage).toBe('f32');
    expect(p.storageDtypes).toEqual(['bf16', 'f32']);
    const headElements = count(head.shape);
    expect(p.totals.paramBytes).toBe((MATRIX_ELEMENTS - headElements) * 2 + headElements * 4 + VECTOR_ELEMENTS * 4);
    // F32 vectors alone do not make a BF16 checkpoint "mixed".
    expect(plan('BF16', { tpSize: 2 }, { 'model.norm.weight': 'F32' }).storageDtypes).toEqual(['bf16']);
  });

  it('buffers that are not read (an I64 one included) have no storage and do not block a conversion', () => {
    const p = plan('BF16', { tpSize: 2, storageDtype: 'f32' }, { 'model.rotary_emb.inv_freq': 'I64' }, { 'model.rotary_emb.inv_freq': [8] });
    const buffer = p.tensors.find((t) => t.name === 'model.rotary_emb.inv_freq')!;
    expect(buffer.read).toBe(false);
    expect(buffer.storage).toBeUndefined();
    expect(p.totals.paramBytes).toBe(ELEMENTS * 4);
  });

  it('KV bytes per token are in the KV dtype', () => {
    const f32 = plan('F32');
    const bf16 = plan('F32', { tpSize: 2, kvDtype: 'bf16' });
    // 2 layers × (k + v) × 2 kv heads × head dim 16
    expect(f32.totals.kvCacheBytesPerToken).toBe(2 * 2 * 2 * 16 * 4);
    expect(bf16.totals.kvCacheBytesPerToken).toBe(2 * 2 * 2 * 16 * 2);
    expect(bf16.ranks.map((r) => r.kvCacheBytesPerToken)).toEqual([2 * 2 * 16 * 2, 2 * 2 * 16 * 2]);
    expect(bf16.options.kvDtype).toBe('bf16');
    // The KV dtype does not follow the checkpoint's: a BF16 model's cache is f32 unless asked.
    expect(plan('BF16').totals.kvCacheBytesPerToken).toBe(2 * 2 * 2 * 16 * 4);
  });

  it('refuses a bad KV dtype, one the backend lacks, and a compute dtype other than f32', async () => {
    await expectTpError(() => plan('F32', { tpSize: 2, kvDtype: 'f8' as StorageDtype }), { code: 'invalid-argument' });
    await expectTpError(() => plan('F32', { tpSize: 2, kvDtype: 'f16', supportedKv: ['f32'] }), { code: 'dtype-unsupported', tensor: undefined });
    await expectTpError(() => plan('F32', { tpSize: 2, computeDtype: 'F16' as 'f32' }), { code: 'invalid-argument' });
    expect(plan('F32', { tpSize: 2, computeDtype: 'F32' }).options.computeDtype).toBe('f32');
  });
});

describe('storage of a checkpoint on disk', () => {
  const tempDir = useTempDirs();

  it.each(['BF16', 'F16'] as const)('a %s checkpoint plans in its own dtype, and every tensor agrees with storageDtypeFor', async (dtype) => {
    const tensors: TensorToWrite[] = Object.entries(shapes()).map(([name, shape]) => ({ name, dtype, shape, data: () => new Uint8Array(tensorByteLength(dtype, shape)) }));
    const dir = await writeCheckpoint(await tempDir(), { config: CONFIG, files: { 'model.safetensors': tensors } });
    const ckpt = await openCheckpoint(dir);
    try {
      const p = planTensorParallel(analyzeModel(ckpt), { tpSize: 2 });
      expect(p.storageDtypes).toEqual([dtype.toLowerCase()]);
      expect(p.totals.paramBytes).toBe(MATRIX_ELEMENTS * 2 + VECTOR_ELEMENTS * 4);
      for (const t of p.tensors) {
        expect(t.storage, t.name).toBe(storageDtypeFor(ckpt.tensor(t.name), p.options.storageDtype, p.options.supportedStorage));
        expect(t.storage, t.name).toBe(t.shape.length >= 2 ? dtype.toLowerCase() : 'f32');
      }
    } finally {
      ckpt.close();
    }
  });
});
