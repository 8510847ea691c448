/**
 * A failing rank fails the request promptly with that rank's own error, stops every worker, and
 * leaves the session failed; a rank that stops answering makes the others time out in a collective.
 */
import { describe, expect, test } from 'vitest';
import { initInference, RankFailedError, TpError } from '@tp/core';
import { backend, expectTpError, rejection, waitUntil } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();
const model = () => tiny('llama', { family: 'llama', hidden: 96, heads: 6, kvHeads: 3, intermediate: 192, vocab: 300, seed: 2, tokenizer: false });
const PROMPTS = [
  [5, 17, 33, 2, 9],
  [250, 3, 44],
];

describe.each([
  { tp: 2, rank: 1 },
  { tp: 3, rank: 1 },
  { tp: 2, rank: 0 },
  { tp: 3, rank: 2 },
])('an injected fault in rank $rank at tp $tp (after 1 forward pass)', ({ tp, rank }) => {
  test('generate rejects within 10 s with rank-failed naming the rank; workers stop; later requests reject at once with the same failure', async () => {
    const { dir } = await model();
    const session = await initInference(dir, { backend, tpSize: tp, faultInjection: { rank, afterForwards: 1 } });
    try {
      expect(session.liveWorkers).toBe(tp);
      const tokens: number[] = [];
      const started = Date.now();
      const error = await expectTpError(
        session.generate(PROMPTS, { maxNewTokens: 8, stopAtEos: false, onToken: (e) => tokens.push(e.step) }),
        'rank-failed',
        { rank },
      );
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(error).toBeInstanceOf(RankFailedError);
      expect(error.message).toContain('injected fault');
      // The prompt pass (forward 1) succeeded and chose one token per prompt; the next pass failed.
      expect(tokens).toEqual([0, 0]);
      expect(session.failed).toBe(error);

      expect(await waitUntil(() => session.liveWorkers === 0, 5_000), `liveWorkers is still ${session.liveWorkers}`).toBe(true);

      const again = Date.now();
      const second = await rejection(session.generate(PROMPTS, { maxNewTokens: 2 }));
      expect(Date.now() - again).toBeLessThan(500);
      expect(second).toBe(error);
      expect(await rejection(session.logits(PROMPTS))).toBe(error);
    } finally {
      await session.dispose();
    }
  });
});

test('a fault before the first forward pass (afterForwards 0) fails logits() too, with rank-failed and the rank', async () => {
  const { dir } = await model();
  const session = await initInference(dir, { backend, tpSize: 2, faultInjection: { rank: 1, afterForwards: 0 } });
  try {
    const error = await expectTpError(session.logits(PROMPTS), 'rank-failed', { rank: 1 });
    expect(error.message).toContain('injected fault');
    expect(await waitUntil(() => session.liveWorkers === 0, 5_000)).toBe(true);
  } finally {
    await session.dispose();
  }
});

test('without a fault the same session shape generates normally (the fault hook is what fails the runs above)', async () => {
  const { dir } = await model();
  const session = await initInference(dir, { backend, tpSize: 2, faultInjection: { rank: 1, afterForwards: 100 } });
  try {
    const out = await session.generate(PROMPTS, { maxNewTokens: 8, stopAtEos: false });
    expect(out.map((r) => r.tokens.length)).toEqual([8, 8]);
    expect(session.failed).toBeUndefined();
    expect(session.liveWorkers).toBe(2);
  } finally {
    await session.dispose();
  }
  expect(await waitUntil(() => session.liveWorkers === 0, 5_000)).toBe(true);
});

describe('collective timeout: rank 1 stalls for 4 s in an all-reduce, with collectiveTimeoutMs 300', () => {
  /**
   * test/helpers/stalling-backend.mjs is the built CPU backend with one rank made to sleep before an
   * all-reduce (backendOptions.stall); the other rank waits in the collective and times out.
   */
  const stalling = { ...backend, moduleUrl: new URL('./helpers/stalling-backend.mjs', import.meta.url).href };
  const TIMEOUT_MS = 300;
  const open = async () =>
    initInference((await model()).dir, {
      backend: stalling,
      tpSize: 2,
      collectiveTimeoutMs: TIMEOUT_MS,
      backendOptions: { stall: { rank: 1, afterCollectives: 3, ms: 4_000 } },
    });

  test('generate rejects with code timeout well before the stall ends, naming rank 1 as the one that never arrived; workers stop', async () => {
    const session = await open();
    try {
      const started = Date.now();
      const error = await expectTpError(session.generate(PROMPTS, { maxNewTokens: 4, stopAtEos: false }), 'timeout');
      const elapsed = Date.now() - started;
      expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(elapsed).toBeLessThan(3_000);
      expect(error.message).toMatch(/for rank 1, which never arrived/);
      expect(await waitUntil(() => session.liveWorkers === 0, 5_000), `liveWorkers is still ${session.liveWorkers}`).toBe(true);
      const second = await rejection(session.generate(PROMPTS, { maxNewTokens: 1 }));
      expect(second).toBe(error);
    } finally {
      await session.dispose();
    }
  });

  test("the timeout error's rank field is the rank that never arrived (1), not the rank that waited", async () => {
    const session = await open();
    try {
      const error = await expectTpError(session.generate(PROMPTS, { maxNewTokens: 4, stopAtEos: false }), 'timeout');
      expect(TpError.isInstance(error)).toBe(true);
      expect(error['rank'], error.message).toBe(1);
    } finally {
      await session.dispose();
    }
  });
});
