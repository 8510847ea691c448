/**
 * Weights stored as f16 or bf16 are converted to f32 as they are read: the same model saved in each
 * dtype computes (nearly) the same logits, and TP=2 equals TP=1 for each.
 */
import { describe, expect, it } from 'vitest';
import { concat, relativeError, withSession } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const prompt = [[5, 17, 29, 40, 41, 42, 100, 7]];
const base = { family: 'llama' as const, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 300, seed: 3 };

describe('f16 and bf16 checkpoints', () => {
  it('match the f32 checkpoint within the rounding of their format, at TP=1 and TP=2', async () => {
    const f32 = await tiny('f32', { ...base, dtype: 'f32' });
    const reference = concat(await withSession(f32.dir, { tpSize: 1 }, (s) => s.logits(prompt)));
    for (const [dtype, bound] of [
      ['f16', 1e-2],
      ['bf16', 5e-2],
    ] as const) {
      const model = await tiny(dtype, { ...base, dtype });
      const one = concat(await withSession(model.dir, { tpSize: 1 }, (s) => s.logits(prompt)));
      const two = concat(await withSession(model.dir, { tpSize: 2 }, (s) => s.logits(prompt)));
      const err = relativeError(one, reference);
      expect(err, `${dtype} vs f32`).toBeLessThan(bound);
      expect(err, `${dtype} must differ from f32 (its weights were rounded)`).toBeGreaterThan(0);
      expect(relativeError(two, one), `${dtype} TP=2 vs TP=1`).toBeLessThan(1e-5);
    }
  });
});
