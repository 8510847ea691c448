/**
 * The CPU backend against the backend conformance suite of @tp/core/testing: every kernel against the
 * host reference, uploads and dtypes, KV caches, attention, MoE routing, errors, and collectives over
 * worker threads at world 1–4 (those workers import backend.moduleUrl, the built dist/index.js).
 *
 * Then the attention checks the interface leaves to backends that can make them: a relative index out
 * of its table's range (a GPU backend may clamp instead) and expectation scoring with bits < 1.
 */
import { TpError, type AttentionSpec, type AttentionStep, type Rank } from '@tp/core';
import { conformanceCases } from '@tp/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backend } from '../src/index.js';

describe('CPU backend conformance', () => {
  for (const c of conformanceCases(backend)) it(c.name, c.run, 60_000);
});

describe('CPU attention refuses what the conformance suite cannot ask of every backend', () => {
  let rank: Rank;
  beforeAll(async () => {
    rank = await backend.createRank({ rank: 0, world: 1, communicator: backend.createCommunicator(1, { timeoutMs: 5000 }), options: {} });
  });
  afterAll(async () => rank.dispose());

  const f32 = (n: number, shape: number[]) => rank.upload({ bytes: new Uint8Array(new Float32Array(n).fill(0.25).buffer), dtype: 'f32', shape });
  const i32 = (values: number[], shape: number[]) => rank.upload({ bytes: new Uint8Array(Int32Array.from(values).buffer), dtype: 'i32', shape });

  /** One causal call of 2 rows over 2 keys (heads 4, kv 2, headDim 4); the error, and the cache length after it. */
  async function attempt(spec: Partial<AttentionSpec>, step: Partial<AttentionStep>): Promise<{ error: unknown; length: number }> {
    const cache = rank.createKvCache(1, 2, 4, 4, 'f32');
    rank.beginStep();
    try {
      const full: AttentionSpec = { heads: 4, kvHeads: 2, headDim: 4, valueDim: 4, scale: 0.5, mask: 'causal', ...spec };
      rank.attention(f32(32, [2, 16]), f32(16, [2, 8]), f32(16, [2, 8]), cache, { batch: 1, rows: 2, start: 0, keyMask: i32([1, 1], [1, 2]), ...step }, full);
      return { error: undefined, length: cache.length };
    } catch (error) {
      return { error, length: cache.length };
    } finally {
      await rank.endStep();
      rank.freeKvCache(cache);
    }
  }

  const expectRefused = async (attempted: Promise<{ error: unknown; length: number }>, message: RegExp) => {
    const result = await attempted;
    expect(result.error).toBeInstanceOf(TpError);
    expect((result.error as TpError).code).toBe('kernel-invalid');
    expect((result.error as Error).message).toMatch(message);
    expect(result.length).toBe(0); // checked before the keys were appended
  };

  it('a relative index at or past the table positions, or negative, is refused naming the index and the range', async () => {
    await expectRefused(attempt({ relative: { keys: f32(9 * 4, [9, 4]) } }, { relativeIndex: i32([0, 1, 9, 2], [2, 2]) }), /relative index 9 is outside the keys table's 9 positions \[0, 9\)/);
    await expectRefused(attempt({ relative: { values: f32(5 * 16, [5, 16]) } }, { relativeIndex: i32([0, -1, 2, 3], [2, 2]) }), /relative index -1 is outside the values table's 5 positions/);
    // each table is checked against its own positions
    await expectRefused(attempt({ relative: { keys: f32(9 * 4, [9, 4]), queries: f32(4 * 4, [4, 4]) } }, { relativeIndex: i32([0, 1, 5, 2], [2, 2]) }), /relative index 5 is outside the queries table's 4 positions/);
  });

  it('expectation scoring with bits < 1 (or not a number) is refused', async () => {
    for (const bits of [0, 0.5, -3, Number.NaN]) await expectRefused(attempt({ scoring: { kind: 'expectation', bits } }, {}), /expectation scoring needs bits ≥ 1/);
  });

  it('the errors of the shared suite name what is wrong and the shape expected', async () => {
    await expectRefused(attempt({ relative: { keys: f32(9 * 8, [9, 8]) } }, { relativeIndex: i32([0, 1, 2, 3], [2, 2]) }), /relative keys table \[9, 8\] is neither \[positions, heads·headDim\] = \[positions, 16\].*nor \[positions, headDim\] = \[positions, 4\]/);
    await expectRefused(attempt({ relative: { keys: f32(9 * 4, [9, 4]) } }, { relativeIndex: i32([0, 1, 2, 3], [4]) }), /relative index \[4\] \(i32\) is not i32 \[rows, keys\] = \[2, 2\]/);
    await expectRefused(attempt({ relative: { queries: f32(9 * 4, [9, 4]) } }, {}), /relative queries table needs step.relativeIndex/);
    await expectRefused(attempt({}, { bias: f32(24, [4, 2, 3]) }), /bias \[4, 2, 3\] is neither \[heads, rows, keys\] = \[4, 2, 2\] nor \[batch, heads, rows, keys\] = \[1, 4, 2, 2\]/);
  });

  it('in range, the same call runs (the refusals above are about the input, not the feature)', async () => {
    const ok = await attempt({ relative: { keys: f32(9 * 4, [9, 4]), values: f32(9 * 16, [9, 16]) }, scoring: { kind: 'softmax' } }, { relativeIndex: i32([0, 1, 8, 2], [2, 2]) });
    expect(ok.error).toBeUndefined();
    expect(ok.length).toBe(2);
  });
});
