/**
 * Beam search and banned words on a fake model whose next-token distribution the test controls: the
 * searches are worked by hand (transformers' semantics: K = max(2, 1 + eos ids) × beams candidates,
 * finished hypotheses among the first numBeams scored sum / length^lengthPenalty, the early-stopping
 * heuristic), and the fake batch keeps each sequence's tokens the way a KV cache would, following the
 * order the search sends, so a wrong reorder gives the wrong distributions.
 */
import { describe, expect, it } from 'vitest';
import { beamSearch, BeamSearch, logSoftmax, type BeamSettings } from '../../src/runtime/beam.js';
import { greedyOrSample, stepOutput, type DecodeBatch } from '../../src/runtime/decode-loop.js';
import type { StepOutput, StepResult } from '../../src/runtime/engine.js';
import { badWordRules, bannedAfter, mostBanned, type TokenRules } from '../../src/runtime/generation.js';

/** A model as a table: the context (tokens joined by ',') → probabilities of each token. */
type Table = Record<string, number[]>;

/** A batch of `prompts` × `beams` sequences whose logits are ln p of the table (uniform when absent). */
function fakeBatch(table: Table, vocab: number, prompts: number, beams = 1): DecodeBatch & { steps: number; orders: Int32Array[] } {
  const batch = prompts * beams;
  let histories: number[][] = Array.from({ length: batch }, () => []);
  const respond = (output: StepOutput): StepResult => {
    const logits = new Float32Array(batch * vocab);
    histories.forEach((h, b) => {
      const p = table[h.join(',')] ?? new Array<number>(vocab).fill(1 / vocab);
      p.forEach((x, t) => (logits[b * vocab + t] = Math.log(x)));
    });
    if (output === 'logits') return { logits };
    const k = output === 'argmax' ? 1 : output.topk;
    const values = new Float32Array(batch * k);
    const indices = new Int32Array(batch * k);
    for (let b = 0; b < batch; b++) {
      const row = Array.from(logits.subarray(b * vocab, (b + 1) * vocab), (l, i) => ({ l, i })).sort((x, y) => y.l - x.l || x.i - y.i);
      for (let j = 0; j < k; j++) {
        values[b * k + j] = row[j]!.l;
        indices[b * k + j] = row[j]!.i;
      }
    }
    return output === 'argmax' ? { ids: indices } : { topk: { values, indices } };
  };
  const run = {
    batch,
    steps: 0,
    orders: [] as Int32Array[],
    context: () => [],
    start: async (output: StepOutput) => respond(output),
    next: async (_i: number, tokens: Int32Array, output: StepOutput, order?: Int32Array) => {
      run.steps++;
      if (order) {
        run.orders.push(order);
        histories = Array.from(order, (s) => [...histories[s]!]);
      }
      histories.forEach((h, b) => h.push(tokens[b]!));
      return respond(output);
    },
  };
  return run;
}

const rules = (over: Partial<TokenRules> = {}): TokenRules => ({ eos: new Set([0]), forcedFirst: undefined, forcedLast: undefined, banned: new Set(), bannedSequences: [], ...over });

function settings(over: Partial<BeamSettings> = {}): BeamSettings {
  return { maxNew: 4, rules: rules(), stopAtEos: true, options: {}, numBeams: 2, lengthPenalty: 1, earlyStopping: false, numReturnSequences: 2, ...over };
}

const ln = Math.log;

describe('beam search on a hand-made distribution', () => {
  // Greedy takes 1 (0.5) then 3 (0.4): 0.2. Two beams keep 2 (0.4) and find 3 after it (0.9): 0.36.
  const trap: Table = {
    '': [1e-6, 0.5, 0.4, 0.1 - 1e-6],
    '1': [0, 0.3, 0.3, 0.4],
    '2': [0.05, 0.025, 0.025, 0.9],
  };

  it('finds the sequence greedy misses, scored by summed log-probs / length', async () => {
    const run = fakeBatch(trap, 4, 1, 2);
    const [hyps] = await beamSearch(run, settings({ maxNew: 2 }));
    expect(hyps!.map((h) => h.tokens)).toEqual([
      [2, 3],
      [1, 3],
    ]);
    const step0 = logSoftmax(trap['']!.map(ln));
    expect(hyps![0]!.logProb).toBeCloseTo(step0[2]! + ln(0.9), 6);
    expect(hyps![0]!.score).toBeCloseTo((step0[2]! + ln(0.9)) / 2, 6);
    expect(hyps![1]!.logProb).toBeCloseTo(step0[1]! + ln(0.4), 6);
    expect(hyps![0]!.finishReason).toBe('length');
    // The cache followed the beams: after step 0 the two live beams came from beam 0 of the prompt.
    expect(Array.from(run.orders[0]!)).toEqual([0, 0]);

    const greedy = await greedyOrSample(fakeBatch(trap, 4, 1), { maxNew: 2, rules: rules(), stopAtEos: true, options: {} });
    expect(greedy[0]!.tokens).toEqual([1, 3]);
  });

  // Step 0: eos (0.4) finishes at once; step 1: [1, 0] (0.35·0.9) finishes; step 2: [2, 2, 0] (0.25·0.8·0.7).
  const ending: Table = {
    '': [0.4, 0.35, 0.25],
    '1': [0.9, 0.05, 0.05],
    '2': [0.1, 0.1, 0.8],
    '2,2': [0.7, 0.2, 0.1],
  };
  const s10 = ln(0.35 * 0.9);
  const s220 = ln(0.25 * 0.8 * 0.7);

  it('earlyStopping false: runs while the best open beam could still beat the worst finished one', async () => {
    const run = fakeBatch(ending, 3, 1, 2);
    const [hyps] = await beamSearch(run, settings());
    expect(hyps!.map((h) => h.tokens)).toEqual([
      [1, 0],
      [2, 2, 0],
    ]);
    expect(hyps!.map((h) => h.score)).toEqual([expect.closeTo(s10 / 2, 6), expect.closeTo(s220 / 3, 6)]);
    expect(hyps!.map((h) => h.finishReason)).toEqual(['eos', 'eos']);
    // Steps 0, 1 and 2 ran; after step 2 the best open beam, [2, 2, 1] at ln(0.04)/3, cannot beat ln(0.14)/3.
    expect(run.steps).toBe(2);
  });

  it('earlyStopping true: stops as soon as numBeams hypotheses are finished', async () => {
    const run = fakeBatch(ending, 3, 1, 2);
    const [hyps] = await beamSearch(run, settings({ earlyStopping: true }));
    expect(hyps!.map((h) => h.tokens)).toEqual([[1, 0], [0]]);
    expect(hyps![1]!.score).toBeCloseTo(ln(0.4), 6);
    expect(run.steps).toBe(1);
  });

  it('lengthPenalty 0 ranks by the plain sum: the one-token hypothesis wins', async () => {
    const [hyps] = await beamSearch(fakeBatch(ending, 3, 1, 2), settings({ lengthPenalty: 0 }));
    expect(hyps!.map((h) => h.tokens)).toEqual([[0], [1, 0]]);
    expect(hyps![0]!.score).toBeCloseTo(ln(0.4), 6);
  });

  it('numBeams 1 equals greedy, token for token', async () => {
    const table: Table = { '': [0.1, 0.6, 0.3], '1': [0.2, 0.2, 0.6], '1,2': [0.5, 0.3, 0.2] };
    const [hyps] = await beamSearch(fakeBatch(table, 3, 1, 1), settings({ numBeams: 1, numReturnSequences: 1 }));
    const greedy = await greedyOrSample(fakeBatch(table, 3, 1), { maxNew: 4, rules: rules(), stopAtEos: true, options: {} });
    expect(hyps![0]!.tokens).toEqual(greedy[0]!.tokens);
    expect(greedy[0]!.tokens).toEqual([1, 2, 0]);
  });

  it('prompts of a batch are searched independently', async () => {
    const alone = await beamSearch(fakeBatch(ending, 3, 1, 2), settings());
    const two = await beamSearch(fakeBatch(ending, 3, 2, 2), settings());
    expect(two[0]).toEqual(alone[0]);
    expect(two[1]).toEqual(alone[0]);
  });

  it('a forced first token scores 0, as transformers processes it', async () => {
    const [hyps] = await beamSearch(fakeBatch(trap, 4, 1, 2), settings({ maxNew: 2, rules: rules({ forcedFirst: 1 }) }));
    expect(hyps![0]!.tokens).toEqual([1, 3]);
    expect(hyps![0]!.logProb).toBeCloseTo(ln(0.4), 6);
  });

  it('reordering: a beam continued twice and one dropped', () => {
    // After step 1 the better beam is a continuation of beam 1, so the two beams swap caches.
    const table: Table = { '': [0, 0.6, 0.4], '1': [0, 0.5, 0.5], '2': [0, 0.01, 0.99] };
    const search = new BeamSearch(1, { ...settings({ maxNew: 5 }) }, () => []);
    const logits = (rows: number[][]) => Float32Array.from(rows.flat().map(ln));
    const first = search.advance(logits([table['']!, table['']!]), 0)!;
    expect(Array.from(first.tokens)).toEqual([1, 2]);
    expect(Array.from(first.order)).toEqual([0, 0]);
    const second = search.advance(logits([table['1']!, table['2']!]), 1)!;
    // [2, 2] = 0.396 beats [1, 1] = [1, 2] = 0.3: beam 1 is continued first, then beam 0; ties by token.
    expect(Array.from(second.tokens)).toEqual([2, 1]);
    expect(Array.from(second.order)).toEqual([1, 0]);
  });
});

describe('banned words', () => {
  it('single tokens always, a longer word only right after its prefix; a lone eos is ignored', () => {
    const r = badWordRules([[7], [0], [3, 4, 5], [9, 5]], new Set([0]));
    expect([...r.banned]).toEqual([7]);
    expect(r.bannedSequences).toEqual([
      [3, 4, 5],
      [9, 5],
    ]);
    expect([...bannedAfter(r, [1, 3, 4])].sort()).toEqual([5, 7]);
    expect([...bannedAfter(r, [3, 4, 1])]).toEqual([7]);
    expect([...bannedAfter(r, [9])].sort()).toEqual([5, 7]);
    expect([...bannedAfter(r, [])]).toEqual([7]);
    expect(mostBanned(r)).toBe(2);
  });

  it('greedy never completes a banned sequence, with argmax-sized top-k candidates', async () => {
    const table: Table = { '': [0, 0.5, 0.4, 0.1], '1': [0, 0.3, 0.3, 0.4] };
    const r = rules(badWordRules([[1, 3]], new Set([0])));
    expect(stepOutput({}, r)).toEqual({ topk: 2 });
    const [out] = await greedyOrSample(fakeBatch(table, 4, 1), { maxNew: 2, rules: r, stopAtEos: true, options: {} });
    expect(out!.tokens).toEqual([1, 1]);
  });

  it('beam search never completes a banned sequence', async () => {
    const table: Table = { '': [1e-6, 0.5, 0.4, 0.1 - 1e-6], '1': [0, 0.3, 0.3, 0.4], '2': [0.05, 0.025, 0.025, 0.9] };
    const [hyps] = await beamSearch(fakeBatch(table, 4, 1, 2), settings({ maxNew: 2, rules: rules(badWordRules([[2, 3]], new Set([0]))) }));
    for (const h of hyps!) expect(h.tokens.join(',')).not.toContain('2,3');
    expect(hyps![0]!.tokens).toEqual([1, 3]);
  });
});
