/** User policies: both forms override the analysis; mistakes are specific errors. */
import { describe, expect, it } from 'vitest';
import { analyzeModel, planTensorParallel, TpError, type PolicyError, type PlanError, type SplitMismatchError } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';

const L = 'model.layers.0.';
const llama = () =>
  analyzeModel(
    fakeCheckpoint(
      { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 100, intermediate_size: 128 },
      Object.fromEntries(
        [0, 1].flatMap((i) => [
          [`model.layers.${i}.self_attn.q_proj.weight`, [64, 64]],
          [`model.layers.${i}.self_attn.k_proj.weight`, [32, 64]],
          [`model.layers.${i}.self_attn.v_proj.weight`, [32, 64]],
          [`model.layers.${i}.self_attn.o_proj.weight`, [64, 64]],
          [`model.layers.${i}.mlp.gate_proj.weight`, [128, 64]],
          [`model.layers.${i}.mlp.up_proj.weight`, [128, 64]],
          [`model.layers.${i}.mlp.down_proj.weight`, [64, 128]],
          [`model.layers.${i}.input_layernorm.weight`, [64]],
        ]).concat([
          ['model.embed_tokens.weight', [100, 64]],
          ['lm_head.weight', [100, 64]],
        ]),
      ),
    ),
  );

const splits = (plan: ReturnType<typeof planTensorParallel>) => plan.tensors.map((t) => [t.name, t.split, t.dim, JSON.stringify(t.ranks.map((r) => r.ranges))]);

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

describe('policies', () => {
  it('a DeepSpeed injection policy naming the row-parallel linears reproduces the automatic plan', () => {
    const graph = llama();
    const auto = planTensorParallel(graph, { tpSize: 2 });
    const ds = planTensorParallel(graph, { tpSize: 2, policy: { 'model.layers.*': ['self_attn.o_proj', 'mlp.down_proj'] } });
    expect(splits(ds)).toEqual(splits(auto));
    expect(ds.tensors.find((t) => t.name === `${L}mlp.down_proj.weight`)!.decidedBy).toMatch(/policy \(DeepSpeed\)/);
  });

  it('a DeepSpeed class name (unknowable from a checkpoint) applies to every block, with a warning', () => {
    const plan = planTensorParallel(llama(), { tpSize: 2, policy: { LlamaDecoderLayer: ['o_proj', 'down_proj'] } });
    expect(plan.warnings.some((w) => w.includes('LlamaDecoderLayer'))).toBe(true);
    expect(plan.tensors.find((t) => t.name === `${L}self_attn.o_proj.weight`)!.split).toBe('row');
  });

  it('an HF tp_plan reproduces the automatic plan, and "replicated" keeps a weight whole', () => {
    const graph = llama();
    const hf = {
      'layers.*.self_attn.q_proj': 'colwise',
      'layers.*.self_attn.k_proj': 'colwise',
      'layers.*.self_attn.v_proj': 'colwise',
      'layers.*.self_attn.o_proj': 'rowwise',
      'layers.*.mlp.gate_proj': 'colwise',
      'layers.*.mlp.up_proj': 'colwise',
      'layers.*.mlp.down_proj': 'rowwise',
    };
    expect(splits(planTensorParallel(graph, { tpSize: 2, policy: { tp_plan: hf } }))).toEqual(splits(planTensorParallel(graph, { tpSize: 2 })));
    const plan = planTensorParallel(graph, { tpSize: 2, policy: { ...hf, 'layers.*.mlp.gate_proj': 'replicated', 'layers.*.mlp.up_proj': 'replicated', 'layers.*.mlp.down_proj': 'replicated' } });
    expect(plan.tensors.find((t) => t.name === `${L}mlp.down_proj.weight`)!.split).toBe('replicate');
    expect(plan.tensors.find((t) => t.name === `${L}mlp.down_proj.weight`)!.after).toBeNull();
  });

  it('a pattern that matches nothing is an error listing the closest names', () => {
    const e = errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'layers.*.self_attn.out_proj': 'rowwise' } })) as PolicyError;
    expect(TpError.isInstance(e)).toBe(true);
    expect(e.code).toBe('policy-no-match');
    expect(e.pattern).toBe('layers.*.self_attn.out_proj');
    expect(e.closest).toContain('model.layers.*.self_attn.o_proj');
    const ds = errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'model.layers.*': ['o_projection'] } })) as PolicyError;
    expect(ds.code).toBe('policy-no-match');
    expect(ds.closest).toContain('self_attn.o_proj');
  });

  it('a policy whose producers disagree, or whose row weight does not consume its producer\'s split, is refused', () => {
    const e = errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'layers.*.mlp.up_proj': 'replicated' } })) as SplitMismatchError;
    expect(e.code).toBe('split-mismatch');
    expect(e.weight).toMatch(/mlp\.up_proj\.weight$/);
    expect(e.producer).toMatch(/mlp\.gate_proj\.weight$/);
    const down = errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'layers.*.mlp.up_proj': 'replicated', 'layers.*.mlp.gate_proj': 'replicated' } })) as SplitMismatchError;
    expect(down.code).toBe('split-mismatch');
    expect(down.weight).toMatch(/mlp\.down_proj\.weight$/);
    expect(down.producer).toMatch(/mlp\.(gate|up)_proj\.weight$/);
    expect(down.fix).toMatch(/replicated/);
  });

  it('malformed policies are specific errors', () => {
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: [] })) as PolicyError).code).toBe('policy-invalid');
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: {} })) as PolicyError).code).toBe('policy-invalid');
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'layers.*.mlp.up_proj': 'colwiseish' } })) as PolicyError).code).toBe('policy-invalid');
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 2, policy: { 'layers.*.mlp.up_proj': 3 } })) as PolicyError).code).toBe('policy-invalid');
  });

  it('tp sizes that cannot work are refused with the sizes that do', () => {
    const e = errorOf(() => planTensorParallel(llama(), { tpSize: 5 })) as PlanError;
    expect(e.code).toBe('indivisible');
    expect(e.validTp).toEqual([1, 2, 3, 4]);
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 0 })) as TpError).code).toBe('invalid-argument');
    expect((errorOf(() => planTensorParallel(llama(), { tpSize: 1.5 })) as TpError).code).toBe('invalid-argument');
  });
});
