/**
 * The plan carries every byte permutation the loader applies (interface v2: per-rank values come from
 * the plan): `transposed` for Conv1D weights and, per rank, the fused q/k/v row order — the local
 * heads, rows per head and CodeGen's local blocks — worked out here by hand for the golden checkpoints
 * (hidden 64, 4 heads of 16).
 */
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { analyzeModel, canonicalQkvOrder, openCheckpoint, planTensorParallel, type TPPlan } from '../../src/index.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

const plan = async (family: string, tpSize: number): Promise<TPPlan> => planTensorParallel(analyzeModel(await openCheckpoint(path.join(GOLDEN_DIR, family))), { tpSize });
const tensor = (p: TPPlan, name: string) => p.tensors.find((t) => t.name === name)!;

describe('row orders and transposition in the plan', () => {
  test.skipIf(!hasShared)(`gpt2: Conv1D weights are transposed; c_attn's [Q; K; V] rows per rank (tp 3: heads 2, 1, 1)${needsShared}`, async () => {
    const p = await plan('gpt2', 3);
    const attn = tensor(p, 'transformer.h.0.attn.c_attn.weight');
    expect(attn.transposed).toBe(true);
    expect(tensor(p, 'transformer.h.0.ln_1.weight').transposed).toBeUndefined();
    expect(attn.ranks.map((r) => r.rowOrder)).toEqual([
      { layout: 'qkv-concat', qHeads: 2, kvHeads: 2, headWidth: 16, codegenBlocks: 1 },
      { layout: 'qkv-concat', qHeads: 1, kvHeads: 1, headWidth: 16, codegenBlocks: 1 },
      { layout: 'qkv-concat', qHeads: 1, kvHeads: 1, headWidth: 16, codegenBlocks: 1 },
    ]);
    // The bias is 1-D: its rows are its only dimension.
    expect(tensor(p, 'transformer.h.0.attn.c_attn.bias').ranks[1]!.rowOrder).toEqual({ layout: 'qkv-concat', qHeads: 1, kvHeads: 1, headWidth: 16, codegenBlocks: 1 });
    expect(tensor(p, 'transformer.h.0.attn.c_proj.weight').ranks[0]!.rowOrder).toBeUndefined();
  });

  test.skipIf(!hasShared)(`bloom: per-head interleaved [q, k, v] rows become [Q; K; V] (tp 2: 2 heads each)${needsShared}`, async () => {
    const p = await plan('bloom', 2);
    const qkv = tensor(p, 'transformer.h.0.self_attention.query_key_value.weight');
    expect(qkv.transposed).toBeUndefined();
    expect(qkv.ranks[0]!.rowOrder).toEqual({ layout: 'qkv-interleaved', qHeads: 2, kvHeads: 2, headWidth: 16, codegenBlocks: 1 });
    const o = qkv.ranks[0]!.rowOrder!;
    const order = Array.from(canonicalQkvOrder(o.layout, o.qHeads, o.kvHeads, o.headWidth, o.codegenBlocks));
    // Head 0's q rows 0–15, head 1's q rows 48–63, then the k rows 16–31 and 64–79, then v.
    expect(order.slice(0, 16)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(order.slice(16, 32)).toEqual(Array.from({ length: 16 }, (_, i) => 48 + i));
    expect(order.slice(32, 48)).toEqual(Array.from({ length: 16 }, (_, i) => 16 + i));
    expect(order.slice(80, 96)).toEqual(Array.from({ length: 16 }, (_, i) => 80 + i));
  });

  test.skipIf(!hasShared)(`codegen: the local tensor keeps the 4 mp_num blocks whole, 2 per rank at tp 2${needsShared}`, async () => {
    const whole = await plan('codegen', 1);
    const split = await plan('codegen', 2);
    const name = 'transformer.h.0.attn.qkv_proj.weight';
    expect(tensor(whole, name).ranks[0]!.rowOrder).toMatchObject({ layout: 'qkv-codegen', qHeads: 4, kvHeads: 4, headWidth: 16 });
    // 4 heads over 2 ranks: 4 % (4·2) ≠ 0, so whole mp blocks move — each rank holds 2 of the 4.
    expect(tensor(whole, name).ranks[0]!.rowOrder!.codegenBlocks).toBe(4);
    expect(tensor(split, name).ranks.map((r) => [r.rowOrder!.qHeads, r.rowOrder!.codegenBlocks])).toEqual([
      [2, 2],
      [2, 2],
    ]);
  });
});
