/**
 * Beam search, with transformers' semantics (its vectorised `_beam_search`, 4.57): per prompt,
 * `numBeams` running beams scored by their summed log-probabilities (log-softmax of the logits, then
 * the generation rules: banned words −∞, a forced token 0 and every other −∞). Each step keeps the
 * best K = max(2, 1 + end-of-sequence ids) × numBeams continuations over all beams; those that end
 * (an end-of-sequence token, or the length limit) and rank among the first numBeams become finished
 * hypotheses scored sum / (new tokens)^lengthPenalty, the numBeams best kept; the best numBeams that
 * do not end run on. Only the first beam starts live (the others at −1e9), so the first step does
 * not pick one token numBeams times. A prompt stops taking hypotheses under `earlyStopping` (see
 * GenerateOptions); the search stops when no prompt can improve, or at the length limit.
 *
 * `BeamSearch` is the pure search over logits; `beamSearch` drives the ranks with it, reordering
 * their KV caches as beams are continued (StepInput.order). Scores are kept in f64.
 */
import { TpError } from '../errors/index.js';
import { bannedAfter, forcedToken } from './generation.js';
import type { BeamSequence, DecodeBatch, DecodeSettings } from './decode-loop.js';

export interface BeamSettings extends DecodeSettings {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  numReturnSequences: number;
}

/** What a beam or a hypothesis holds. */
interface Hypothesis {
  tokens: number[];
  /** Summed log-probabilities (running beams: including the −1e9 of a beam that must not run). */
  sum: number;
  logits?: Float32Array[];
}

interface Finished extends Hypothesis {
  /** sum / length^lengthPenalty, or a placeholder's −1e9. */
  score: number;
  done: boolean;
}

interface Candidate {
  beam: number;
  token: number;
  /** The running beam's sum plus the token's log-probability. */
  sum: number;
  hits: boolean;
}

const NEG = -1e9;

/** The next step a search asks for: the token of every sequence, and which sequence each continues. */
export interface BeamStep {
  tokens: Int32Array;
  order: Int32Array;
}

export class BeamSearch {
  private readonly running: Hypothesis[][];
  private readonly finished: Finished[][];
  private readonly unsatisfied: boolean[];
  private readonly keep: number;

  /**
   * `prompts` prompts of `settings.numBeams` beams each; `context(p)` is what the model saw of prompt
   * p before its new tokens (banned words match against it and the beam's tokens).
   */
  constructor(
    readonly prompts: number,
    private readonly settings: Omit<BeamSettings, 'options' | 'numReturnSequences'> & { keepLogits?: boolean },
    private readonly context: (p: number) => readonly number[],
  ) {
    const n = settings.numBeams;
    const eos = settings.stopAtEos ? settings.rules.eos.size : 0;
    this.keep = Math.max(2, 1 + eos) * n;
    this.running = Array.from({ length: prompts }, () => Array.from({ length: n }, (_, j) => ({ tokens: [], sum: j === 0 ? 0 : NEG, ...(settings.keepLogits ? { logits: [] } : {}) })));
    this.finished = Array.from({ length: prompts }, () => Array.from({ length: n }, () => ({ tokens: [], sum: NEG, score: NEG, done: false })));
    this.unsatisfied = new Array<boolean>(prompts).fill(true);
  }

  /**
   * Take step i's logits ([prompts × beams, vocab], beam-major within a prompt) and advance. Returns
   * the next step to run, or undefined when the search is over.
   */
  advance(logits: Float32Array, i: number): BeamStep | undefined {
    const { numBeams: n, rules, stopAtEos, maxNew, lengthPenalty, earlyStopping } = this.settings;
    const vocab = logits.length / (this.prompts * n);
    const forced = forcedToken(rules, i, maxNew);
    const tokens = new Int32Array(this.prompts * n);
    const order = new Int32Array(this.prompts * n);
    let allHit = true;
    for (let p = 0; p < this.prompts; p++) {
      const running = this.running[p]!;
      const context = this.context(p);
      // The best K (beam, token) continuations of this prompt, best first (ties: lower beam, then lower token).
      const best: Candidate[] = [];
      for (let j = 0; j < n; j++) {
        const beam = running[j]!;
        const row = logits.subarray((p * n + j) * vocab, (p * n + j + 1) * vocab);
        const logProbs = logSoftmax(row);
        if (forced !== undefined) {
          logProbs.fill(-Infinity);
          logProbs[forced] = 0;
        } else {
          const banned = rules.bannedSequences.length === 0 ? rules.banned : bannedAfter(rules, [...context, ...beam.tokens]);
          for (const t of banned) if (t < vocab) logProbs[t] = -Infinity;
        }
        for (let t = 0; t < vocab; t++) {
          const sum = beam.sum + logProbs[t]!;
          if (best.length === this.keep && !(sum > best[best.length - 1]!.sum)) continue;
          let at = best.length;
          while (at > 0 && sum > best[at - 1]!.sum) at--;
          best.splice(at, 0, { beam: j, token: t, sum, hits: false });
          if (best.length > this.keep) best.pop();
        }
      }
      for (const c of best) {
        c.hits = (stopAtEos && rules.eos.has(c.token)) || i + 1 >= maxNew;
        allHit &&= c.hits;
      }
      const rowOf = this.settings.keepLogits ? memo((j: number) => logits.slice((p * n + j) * vocab, (p * n + j + 1) * vocab)) : undefined;
      const extend = (c: Candidate): Hypothesis => {
        const beam = running[c.beam]!;
        return { tokens: [...beam.tokens, c.token], sum: c.sum, ...(rowOf ? { logits: [...beam.logits!, rowOf(c.beam)] } : {}) };
      };

      // Finished hypotheses: the ending continuations among the first numBeams, unless the prompt takes no more.
      const length = (i + 1) ** lengthPenalty;
      const full = this.finished[p]!.every((f) => f.done) && earlyStopping === true;
      const merged: Finished[] = [...this.finished[p]!];
      best.forEach((c, rank) => {
        const ends = c.hits && rank < n;
        const score = c.sum / length + (full ? NEG : 0) + (this.unsatisfied[p] ? 0 : NEG) + (ends ? 0 : NEG);
        merged.push({ ...extend(c), score, done: ends });
      });
      this.finished[p] = stableTop(merged, n, (f) => f.score);

      // The running beams of the next step: the best continuations that do not end.
      const next = stableTop(best, n, (c) => c.sum + (c.hits ? NEG : 0));
      this.running[p] = next.map((c) => ({ ...extend(c), sum: c.sum + (c.hits ? NEG : 0) }));
      next.forEach((c, j) => {
        tokens[p * n + j] = c.token;
        order[p * n + j] = p * n + c.beam;
      });

      // Can the best running beam still beat the worst finished hypothesis?
      const hypothetical = earlyStopping === 'never' && lengthPenalty > 0 ? maxNew : i + 1;
      const bestPossible = this.running[p]![0]!.sum / hypothetical ** lengthPenalty;
      const finished = this.finished[p]!;
      const worst = Math.min(...finished.map((f) => f.score));
      this.unsatisfied[p] &&= finished.some((f) => bestPossible > (f.done ? worst : NEG));
    }
    const improvable = this.unsatisfied.some(Boolean);
    const open = !(earlyStopping === true && this.finished.every((f) => f.every((h) => h.done)));
    return improvable && open && !allHit ? { tokens, order } : undefined;
  }

  /** The best `count` finished hypotheses of each prompt, best first. */
  results(count: number): Array<Omit<BeamSequence, 'text'>[]> {
    const { rules, stopAtEos } = this.settings;
    return this.finished.map((hyps) =>
      hyps
        .filter((h) => h.done)
        .slice(0, count)
        .map((h) => ({
          tokens: h.tokens,
          finishReason: stopAtEos && rules.eos.has(h.tokens.at(-1)!) ? ('eos' as const) : ('length' as const),
          score: h.score,
          logProb: h.sum,
          ...(h.logits ? { stepLogits: h.logits } : {}),
        })),
    );
  }
}

/** Run a beam search on the ranks: `run` holds prompts × numBeams sequences, beam-major per prompt. */
export async function beamSearch(run: DecodeBatch, settings: BeamSettings): Promise<Array<Omit<BeamSequence, 'text'>[]>> {
  const prompts = run.batch / settings.numBeams;
  const search = new BeamSearch(prompts, { ...settings, keepLogits: settings.options.returnLogits === true }, (p) => run.context(p * settings.numBeams));
  let result = await run.start('logits');
  for (let i = 0; ; i++) {
    const next = search.advance(result.logits!, i);
    if (next === undefined) break;
    if (settings.options.signal?.aborted) throw new TpError('aborted', 'beam search was stopped by its AbortSignal before any hypothesis was final');
    result = await run.next(i, next.tokens, 'logits', next.order);
  }
  return search.results(settings.numReturnSequences);
}

/** log-softmax of a row, in f64. */
export function logSoftmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let total = 0;
  for (let i = 0; i < row.length; i++) total += Math.exp(row[i]! - max);
  const shift = max + Math.log(total);
  const out = new Float64Array(row.length);
  for (let i = 0; i < row.length; i++) out[i] = row[i]! - shift;
  return out;
}

/** The `k` items with the highest key, highest first; equal keys keep their order. */
function stableTop<T>(items: readonly T[], k: number, key: (item: T) => number): T[] {
  return items
    .map((item, index) => ({ item, index, key: key(item) }))
    .sort((a, b) => (b.key > a.key ? 1 : b.key < a.key ? -1 : a.index - b.index))
    .slice(0, k)
    .map((x) => x.item);
}

function memo<T>(fn: (j: number) => T): (j: number) => T {
  const cache = new Map<number, T>();
  return (j) => {
    if (!cache.has(j)) cache.set(j, fn(j));
    return cache.get(j)!;
  };
}
