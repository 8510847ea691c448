/**
 * Property: for any policy (either form), planTensorParallel returns a plan the engine can run or
 * refuses it with a TpError that names the weight — never a plan that fails at load. A returned plan
 * is checked here independently: every range inside its dimension, every split one the role allows,
 * and every row-parallel weight taking exactly the features its producer leaves on each rank.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeModel, genericName, openCheckpoint, planTensorParallel, TpError, type ModelGraph, type SplitMismatchError, type TPPlan } from '../../src/index.js';
import { fakeCheckpoint } from '../helpers/fake.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

const STYLES = ['colwise', 'rowwise', 'replicated', 'colwise_rep', 'local_rowwise', 'embedding_rowwise', 'replicate'];
const PRODUCERS = new Set(['attn.q', 'attn.k', 'attn.v', 'attn.qk', 'attn.qkv', 'attn.head_param', 'rel_bias', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up']);
const CONSUMERS = new Set(['attn.out', 'mlp.down', 'moe.expert.down']);
const LINEARS = new Set([...PRODUCERS, ...CONSUMERS]);

const fakeLlama = () =>
  analyzeModel(
    fakeCheckpoint(
      { model_type: 'llama', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 2, vocab_size: 128, intermediate_size: 128 },
      Object.fromEntries(
        [0, 1]
          .flatMap((i) => [
            [`model.layers.${i}.self_attn.q_proj.weight`, [64, 64]],
            [`model.layers.${i}.self_attn.k_proj.weight`, [32, 64]],
            [`model.layers.${i}.self_attn.v_proj.weight`, [32, 64]],
            [`model.layers.${i}.self_attn.o_proj.weight`, [64, 64]],
            [`model.layers.${i}.mlp.gate_proj.weight`, [128, 64]],
            [`model.layers.${i}.mlp.up_proj.weight`, [128, 64]],
            [`model.layers.${i}.mlp.down_proj.weight`, [64, 128]],
            [`model.layers.${i}.input_layernorm.weight`, [64]],
            [`model.layers.${i}.post_attention_layernorm.weight`, [64]],
          ])
          .concat([
            ['model.embed_tokens.weight', [128, 64]],
            ['model.norm.weight', [64]],
            ['lm_head.weight', [128, 64]],
          ]),
      ),
    ),
  );

const modulePath = (name: string, param: string) => (param === name ? name : name.slice(0, -(param.length + 1)));

/** Random policies over a graph's own module names: tp_plan entries (generic or one layer) or a DeepSpeed list. */
export function policyArbitrary(graph: ModelGraph): fc.Arbitrary<unknown> {
  const modules = [...new Set(graph.weights.filter((w) => w.role !== 'buffer').map((w) => modulePath(w.name, w.param)))];
  const patterns = [...new Set([...modules.map((m) => genericName(m)), ...modules])];
  const tpPlan = fc.dictionary(fc.constantFrom(...patterns), fc.constantFrom(...STYLES), { minKeys: 1, maxKeys: 6 });
  const blocks = [...new Set(graph.weights.filter((w) => w.block !== undefined).map((w) => w.block!.list))];
  const linears = (list: string) => [
    ...new Set(graph.weights.filter((w) => w.block?.list === list && LINEARS.has(w.role)).map((w) => modulePath(w.name, w.param).slice(list.length + 1).replace(/^\d+\./, ''))),
  ];
  const deepspeed = blocks.length === 0 ? tpPlan : fc.constantFrom(...blocks).chain((list) => fc.subarray(linears(list), { minLength: 1 }).map((rows) => ({ [`${list}.*`]: rows })));
  return fc.oneof(tpPlan, deepspeed);
}

/** The independent check of a returned plan (see the file comment). */
export function expectRunnable(graph: ModelGraph, plan: TPPlan): void {
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const nodes = new Map(graph.weights.map((w) => [w.name, w]));
  for (const t of plan.tensors) {
    expect(t.ranks).toHaveLength(plan.tpSize);
    if (t.shape.length === 0) continue;
    for (const slice of t.ranks) {
      for (const [s, e] of slice.ranges) {
        expect(s, `${t.name} ${JSON.stringify(slice.ranges)}`).toBeGreaterThanOrEqual(0);
        expect(e, `${t.name} ${JSON.stringify(slice.ranges)} in dim ${t.dim} of [${t.shape.join(', ')}]`).toBeLessThanOrEqual(t.shape[t.dim]!);
        expect(e).toBeGreaterThan(s);
      }
      expect(slice.shape[t.dim]).toBe(slice.ranges.reduce((n, [s, e]) => n + e - s, 0));
    }
    const w = nodes.get(t.name)!;
    const bias = w.param !== 'weight' && w.param !== w.name && w.shape.length === 1;
    if (bias || w.role === 'buffer') continue;
    if (PRODUCERS.has(w.role)) expect(['column', 'replicate'], t.name).toContain(t.split);
    else if (CONSUMERS.has(w.role)) expect(['row', 'replicate'], t.name).toContain(t.split);
    else if (w.role === 'embed') expect(['vocab', 'replicate'], t.name).toContain(t.split);
    else if (w.role !== 'lm_head' && w.role !== 'vocab_bias') expect(t.split, t.name).toBe('replicate');
  }
  // A stored (untied) LM head is used the way it was split.
  if (plan.lmHead !== null && !plan.lmHead.tied) expect(plan.lmHead.split, plan.lmHead.weight).toBe(byName.get(plan.lmHead.weight)!.split);
  // Separate (unfused) producers and their consumer in one group: same features per rank.
  const groups = new Map<string, string[]>();
  for (const w of graph.weights) if (w.param === 'weight') groups.set(w.group, [...(groups.get(w.group) ?? []), w.name]);
  for (const names of groups.values()) {
    const consumer = names.map((n) => byName.get(n)!).find((t) => CONSUMERS.has(t.role));
    if (consumer === undefined) continue;
    for (const p of names.map((n) => byName.get(n)!).filter((t) => t.role === 'attn.q' || t.role === 'mlp.up' || t.role === 'mlp.gate')) {
      if (p.layout !== undefined || nodes.get(p.name)!.headAxis !== undefined) continue;
      if (p.split === 'replicate' && !plan.attention.some((a) => a.sliceAfterNorm)) expect(consumer.split, `${consumer.name} after whole ${p.name}`).toBe('replicate');
      if (p.split === 'column') {
        expect(consumer.split, `${consumer.name} after split ${p.name}`).toBe('row');
        p.ranks.forEach((slice, r) => expect(consumer.ranks[r]!.ranges, `${consumer.name} rank ${r} vs ${p.name}`).toEqual(slice.ranges));
      }
    }
  }
}

const REFUSALS = new Set(['split-mismatch', 'indivisible', 'policy-no-match', 'policy-invalid']);

function checkProperty(graph: ModelGraph, runs: number) {
  let planned = 0;
  let refused = 0;
  fc.assert(
    fc.property(policyArbitrary(graph), fc.constantFrom(2, 3, 4), (policy, tpSize) => {
      let plan: TPPlan;
      try {
        plan = planTensorParallel(graph, { tpSize, policy });
      } catch (error) {
        expect(TpError.isInstance(error), String((error as Error)?.stack)).toBe(true);
        const e = error as SplitMismatchError;
        expect(REFUSALS.has(e.code), `${e.code}: ${e.message}`).toBe(true);
        if (e.code === 'split-mismatch') {
          expect(e.weight).toBeTruthy();
          if (e.fix !== undefined) expect(e.fix.length).toBeGreaterThan(0);
        }
        refused++;
        return;
      }
      expectRunnable(graph, plan);
      planned++;
    }),
    { numRuns: runs, seed: 11 },
  );
  // The generator is useful only if it reaches both outcomes.
  expect(planned).toBeGreaterThan(0);
  expect(refused).toBeGreaterThan(0);
}

describe('random policies: a plan validates or is refused', () => {
  it('synthetic llama (GQA)', () => checkProperty(fakeLlama(), 400));

  it('the issue\'s two DeepSpeed policies are refused naming the weight, its role and the fix', () => {
    for (const [rows, wrong, missing] of [
      [['self_attn.o_proj'], 'mlp.down_proj', 'mlp.down_proj'],
      [['mlp.down_proj'], 'self_attn.o_proj', 'self_attn.o_proj'],
    ] as const) {
      let error: SplitMismatchError | undefined;
      try {
        planTensorParallel(fakeLlama(), { tpSize: 2, policy: { 'model.layers.*': rows } });
      } catch (e) {
        error = e as SplitMismatchError;
      }
      expect(error?.code).toBe('split-mismatch');
      expect(error?.weight).toBe(`model.layers.0.${wrong}.weight`);
      expect(error?.fix).toBe(`list "${missing}" among the row-parallel linears of "model.layers.*"`);
    }
  });

  it('a replicated attention in one layer only is refused (one head assignment serves every layer)', () => {
    let error: SplitMismatchError | undefined;
    try {
      planTensorParallel(fakeLlama(), { tpSize: 2, policy: { 'model.layers.1.self_attn.q_proj': 'replicated', 'model.layers.1.self_attn.k_proj': 'replicated', 'model.layers.1.self_attn.v_proj': 'replicated', 'model.layers.1.self_attn.o_proj': 'replicated' } });
    } catch (e) {
      error = e as SplitMismatchError;
    }
    expect(error?.code).toBe('split-mismatch');
    expect(error?.weight).toMatch(/^model\.layers\.1\.self_attn\./);
    expect(error?.producer).toMatch(/^model\.layers\.0\.self_attn\./);
  });

  it('HF colwise on lm_head is a vocabulary split (as HF\'s own "colwise_rep" means)', () => {
    const plan = planTensorParallel(fakeLlama(), { tpSize: 2, policy: { lm_head: 'colwise_rep' } });
    expect(plan.lmHead?.split).toBe('vocab');
    expect(plan.tensors.find((t) => t.name === 'lm_head.weight')!.split).toBe('vocab');
  });

  for (const name of ['llama', 'gpt2', 'qwen2_moe', 'mixtral', 'mpt', 'falcon', 'codegen', 't5', 'bart', 'bert', 'phi3']) {
    it.skipIf(!hasShared)(`golden ${name}${needsShared}`, async () => {
      const ckpt = await openCheckpoint(`${GOLDEN_DIR}/${name}`);
      try {
        checkProperty(analyzeModel(ckpt), 150);
      } finally {
        ckpt.close();
      }
    });
  }
});
