/**
 * Random policies, run: every policy the planner accepts loads on every rank and computes what TP=1
 * computes; every one it refuses is refused before any rank starts (split-mismatch and the like,
 * never an error from a rank). The planning-only property (many more policies, every family) is
 * packages/core/test/plan/policy-property.test.ts.
 */
import * as fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { analyzeModel, genericName, openCheckpoint, planTensorParallel, TpError, type ModelGraph } from '@tp/core';
import { relativeError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const STYLES = ['colwise', 'rowwise', 'replicated', 'colwise_rep', 'embedding_rowwise'];
const LINEARS = new Set(['attn.q', 'attn.k', 'attn.v', 'attn.qkv', 'attn.out', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'mlp.down', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up', 'moe.expert.down']);
const modulePath = (name: string, param: string) => (param === name ? name : name.slice(0, -(param.length + 1)));

function policies(graph: ModelGraph, count: number, seed: number): unknown[] {
  const modules = [...new Set(graph.weights.filter((w) => w.role !== 'buffer').map((w) => modulePath(w.name, w.param)))];
  const patterns = [...new Set([...modules.map((m) => genericName(m)), ...modules])];
  const tpPlan = fc.dictionary(fc.constantFrom(...patterns), fc.constantFrom(...STYLES), { minKeys: 1, maxKeys: 5 });
  const list = graph.weights.find((w) => w.block !== undefined)!.block!.list;
  const rows = [...new Set(graph.weights.filter((w) => w.block?.list === list && LINEARS.has(w.role)).map((w) => modulePath(w.name, w.param).slice(list.length + 1).replace(/^\d+\./, '')))];
  const deepspeed = fc.subarray(rows, { minLength: 1 }).map((r) => ({ [`${list}.*`]: r }));
  return fc.sample(fc.oneof(tpPlan, deepspeed), { numRuns: count, seed });
}

const MODELS = [
  { name: 'llama', options: { family: 'llama', vocab: 256, seed: 3, tokenizer: false } },
  { name: 'gpt2', options: { family: 'gpt2', vocab: 256, seed: 3, tokenizer: false } },
  { name: 'qwen2_moe', options: { family: 'qwen2_moe', vocab: 256, seed: 3, tokenizer: false } },
] as const;

describe('random policies that plan also run, and match TP=1', () => {
  for (const m of MODELS) {
    test(`${m.name}: accepted policies load and match TP=1; refused ones never reach a rank`, async () => {
      const { dir } = await tiny(m.name, m.options);
      const ckpt = await openCheckpoint(dir);
      const graph = analyzeModel(ckpt);
      ckpt.close();
      const accepted: unknown[] = [];
      const seen = new Set<string>();
      for (const policy of policies(graph, 200, 5)) {
        try {
          const plan = planTensorParallel(graph, { tpSize: 2, policy });
          const key = JSON.stringify(plan.tensors.map((t) => [t.split, t.ranks.map((r) => r.ranges)]));
          if (!seen.has(key)) {
            seen.add(key);
            accepted.push(policy);
          }
        } catch (error) {
          expect(TpError.isInstance(error), String(error)).toBe(true);
        }
      }
      expect(accepted.length).toBeGreaterThan(1);
      const tokens = [1, 17, 42, 99, 5];
      const [reference] = await withSession(dir, { tpSize: 1 }, (s) => s.logits([tokens]));
      for (const policy of accepted.slice(0, 5)) {
        const [ours] = await withSession(dir, { tpSize: 2, policy }, (s) => s.logits([tokens])).catch((e: unknown) => {
          throw new Error(`${JSON.stringify(policy)}: ${String(e)}`);
        });
        expect(relativeError(ours!, reference!), JSON.stringify(policy)).toBeLessThan(1e-5);
      }
    }, 120_000);
  }

  test('the issue\'s policies are refused by initInference before any rank starts', async () => {
    const { dir } = await tiny('llama', MODELS[0].options);
    for (const rows of [['self_attn.o_proj'], ['mlp.down_proj']]) {
      let progress = 0;
      const error = await withSession(dir, { tpSize: 2, policy: { 'model.layers.*': rows }, onProgress: () => progress++ }, async () => undefined).catch((e: unknown) => e as TpError & { weight: string; producer?: string; fix: string });
      expect(error?.code).toBe('split-mismatch');
      expect(error?.fix).toMatch(/row-parallel linears of "model\.layers\.\*"/);
      expect(progress).toBe(0);
    }
  });
});
