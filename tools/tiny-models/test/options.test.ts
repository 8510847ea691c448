/** Option defaults and the checks that stop a checkpoint HF could not load. */
import { describe, expect, it } from 'vitest';
import { TinyModelError, resolveDims, writeTinyModel } from '../src/index.js';
import { useTempDirs } from './helpers.js';

const tempDir = useTempDirs();

describe('defaults', () => {
  it('hidden 64, 2 layers, 4 heads, 2 kv heads for GQA families, intermediate 128, vocab 256, 128 positions', () => {
    const d = resolveDims({ family: 'llama' });
    expect(d).toMatchObject({ hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128, vocab: 256, maxPositions: 128, experts: 0, tie: false });
  });

  it('per family: MHA, multi-query, 4 × hidden MLPs, MoE expert counts, tied defaults', () => {
    expect(resolveDims({ family: 'gpt2' })).toMatchObject({ kvHeads: 4, tie: true });
    expect(resolveDims({ family: 'phi' })).toMatchObject({ kvHeads: 4 });
    expect(resolveDims({ family: 'phi', kvHeads: 2 })).toMatchObject({ kvHeads: 2 });
    expect(resolveDims({ family: 'falcon' })).toMatchObject({ variant: 'multi_query', kvHeads: 1, intermediate: 256 });
    expect(resolveDims({ family: 'falcon', variant: 'alibi_mha' })).toMatchObject({ kvHeads: 4 });
    expect(resolveDims({ family: 'gpt_bigcode' })).toMatchObject({ variant: 'mqa', kvHeads: 1 });
    expect(resolveDims({ family: 'bloom', hidden: 32 })).toMatchObject({ intermediate: 128 });
    expect(resolveDims({ family: 'mixtral' })).toMatchObject({ experts: 4, expertsPerToken: 2 });
    expect(resolveDims({ family: 'qwen2_moe', experts: 1 })).toMatchObject({ experts: 1, expertsPerToken: 1 });
    expect(resolveDims({ family: 'gemma' }).tie).toBe(true);
    expect(resolveDims({ family: 'llama', heads: 3, hidden: 48 })).toMatchObject({ kvHeads: 3 });
  });
});

describe('refused options', () => {
  it.each([
    [{ family: 'nope' }, /unknown family "nope"; choose one of: llama, mistral/],
    [{ family: 'llama', heads: 4, kvHeads: 3 }, /4 heads cannot be grouped over 3 kv heads/],
    [{ family: 'gpt2', kvHeads: 2 }, /gpt2: has no grouped-query attention/],
    [{ family: 'falcon', kvHeads: 2 }, /multi_query is multi-query: exactly 1 kv head/],
    [{ family: 'llama', hidden: 60, heads: 8 }, /hidden 60 is not divisible by 8 heads/],
    [{ family: 'gpt2', headDim: 32 }, /head_dim is always hidden \/ heads/],
    [{ family: 'llama', headDim: 15 }, /even head_dim/],
    [{ family: 'mpt', intermediate: 128 }, /fixed at 4 × hidden = 256/],
    [{ family: 'llama', experts: 4 }, /not a mixture-of-experts family/],
    [{ family: 'mixtral', experts: 2, expertsPerToken: 3 }, /expertsPerToken 3 exceeds the 2 experts/],
    [{ family: 'codegen', heads: 2 }, /heads divisible by 4/],
    [{ family: 'gpt_neox', hidden: 16, heads: 4 }, /rotary_pct/],
    [{ family: 'llama', variant: 'x' }, /llama: has no variants/],
    [{ family: 'falcon', variant: 'x' }, /unknown variant "x"; choose one of: multi_query, new_arch, alibi_mha/],
    [{ family: 'qwen2', vocab: 1 }, /vocab 1 is too small/],
    [{ family: 'llama', hidden: 0 }, /hidden must be a positive integer, got 0/],
    [{ family: 'llama', layers: 1.5 }, /layers must be a positive integer/],
  ])('%j', (options, message) => {
    expect(() => resolveDims(options)).toThrow(TinyModelError);
    expect(() => resolveDims(options)).toThrow(message);
  });

  it.each([
    [{ family: 'llama', dtype: 'f64' as never }, /dtype must be one of f32, f16, bf16/],
    [{ family: 'llama', seed: -1 }, /seed must be a non-negative integer/],
    [{ family: 'llama', shards: 0 }, /shards must be a positive integer/],
    [{ family: 'llama', shards: 100 }, /cannot write 100 shards: the model has only 21 tensors/],
  ])('write option %j', async (options, message) => {
    await expect(writeTinyModel(await tempDir(), options)).rejects.toThrow(message);
  });
});
