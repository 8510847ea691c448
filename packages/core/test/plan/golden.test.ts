/**
 * Every golden checkpoint (written by transformers itself) plans at tp 1, 2, 3, 4 and 8, or fails
 * with the documented reason, and every plan satisfies the invariants.
 */
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeModel, openCheckpoint, planTensorParallel, TpError, type PlanError } from '../../src/index.js';
import { planViolations } from '../helpers/invariants.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

/**
 * The golden models have 4 attention heads, so tp 8 would leave ranks without a head; CodeGen's
 * qkv_proj holds 4 blocks of heads, so tp must divide 4 (or heads % (4·tp) = 0).
 */
const EXPECTED_FAILURES: Record<string, Record<number, number[]>> = {
  codegen: { 3: [1, 2, 4], 8: [1, 2, 4] },
};
const FOUR_HEADS_VALID = [1, 2, 3, 4];

const folders = hasShared ? readdirSync(GOLDEN_DIR).filter((d) => statSync(path.join(GOLDEN_DIR, d)).isDirectory()) : [];

describe(`golden checkpoints plan at tp 1-4 and 8${needsShared}`, () => {
  it.skipIf(!hasShared)('finds the 49 golden folders', () => {
    expect(folders.length).toBe(49);
  });
  for (const folder of folders) {
    it(`${folder}`, async () => {
      const ckpt = await openCheckpoint(path.join(GOLDEN_DIR, folder));
      const graph = analyzeModel(ckpt);
      expect(graph.weights.filter((w) => w.rule.startsWith('generic:')).map((w) => w.name)).toEqual([]);
      expect(graph.warnings).toEqual([]);
      for (const tp of [1, 2, 3, 4, 8]) {
        const expectedValid = EXPECTED_FAILURES[folder]?.[tp] ?? (tp === 8 ? FOUR_HEADS_VALID : undefined);
        if (expectedValid !== undefined) {
          let error: unknown;
          try {
            planTensorParallel(graph, { tpSize: tp });
          } catch (e) {
            error = e;
          }
          expect(TpError.isInstance(error), `${folder} tp ${tp} should fail`).toBe(true);
          expect((error as PlanError).code).toBe('indivisible');
          expect((error as PlanError).validTp).toEqual(expectedValid);
        } else {
          const plan = planTensorParallel(graph, { tpSize: tp });
          expect(planViolations(plan), `${folder} tp ${tp}`).toEqual([]);
          const vocab = planTensorParallel(graph, { tpSize: tp, vocabParallel: true });
          expect(planViolations(vocab), `${folder} tp ${tp} vocab-parallel`).toEqual([]);
        }
      }
      ckpt.close();
    });
  }
});
