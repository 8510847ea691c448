/**
 * The decode loop of greedy search and sampling, on the coordinator: one step per new token, the
 * token chosen from what rank 0 returned (an argmax, top-k candidates or the logits) under the
 * generation rules (forced tokens, banned words, end of sequence), and sent to every rank. What a
 * generation asks for and returns is declared here too; beam search is `beam.ts`.
 */
import type { StepOutput, StepResult } from './engine.js';
import { bannedAfter, forcedToken, mostBanned, type TokenRules } from './generation.js';
import { sampleToken, seededRandom, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate per prompt (default generation_config.json's max_new_tokens, then 32). */
  maxNewTokens?: number;
  /** Stop a sequence at the model's end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /**
   * Called for every new token of every sequence, as it is chosen. Under beam search a token is only
   * chosen when the search ends: the returned sequence's tokens are reported then, in order.
   */
  onToken?: (event: { sequence: number; token: number; step: number }) => void;
  /** Keep the logits that chose each token (for comparisons). */
  returnLogits?: boolean;
  /** End-of-sequence id(s); default generation_config.json's eos_token_id, then config.json's. */
  eosTokenId?: number | number[];
  /** Force the first new token (M2M100's target language); null: not even generation_config.json's. */
  forcedBosTokenId?: number | null;
  /** Force the last new token allowed by maxNewTokens; null: not even generation_config.json's. */
  forcedEosTokenId?: number | null;
  /**
   * Token sequences never produced: a single token is never chosen, a longer sequence's last token is
   * never chosen right after its other tokens (a lone end-of-sequence id is ignored, as transformers
   * does); null: not even generation_config.json's.
   */
  badWordsIds?: number[][] | null;
  /** Encoder–decoder models: the decoder's first token (default generation_config.json's, then config.json's). */
  decoderStartTokenId?: number;
  /** Beam search with this many beams per prompt (default generation_config.json's num_beams, then 1: greedy or sampling). */
  numBeams?: number;
  /**
   * Beam search: a finished hypothesis scores its summed log-probabilities divided by
   * (new tokens)^lengthPenalty (default generation_config.json's length_penalty, then 1). Above 0
   * favours longer sequences, below 0 shorter ones.
   */
  lengthPenalty?: number;
  /**
   * Beam search: `true` stops a prompt as soon as it has numBeams finished hypotheses; `false` (the
   * default, as transformers) stops when the best running beam can no longer beat the worst finished
   * one at its current length; `'never'` only when it could not at the longest length allowed.
   */
  earlyStopping?: boolean | 'never';
  /** Beam search: the best hypotheses returned per prompt, at most numBeams (default 1). */
  numReturnSequences?: number;
  /**
   * Stops the generation at the next step boundary. Greedy search and sampling return what each
   * sequence has so far, with finishReason `aborted`; beam search (whose hypotheses are not final
   * until it ends) rejects with a TpError of code `aborted`.
   */
  signal?: AbortSignal;
}

/** One finished beam-search hypothesis. */
export interface BeamSequence {
  tokens: number[];
  text: string | undefined;
  finishReason: 'length' | 'eos';
  /** Summed log-probabilities of the new tokens divided by (new tokens)^lengthPenalty (transformers' sequences_scores). */
  score: number;
  /** Summed log-probabilities of the new tokens, as the search saw them (a forced token counts 0, as transformers). */
  logProb: number;
  stepLogits?: Float32Array[];
}

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string | undefined;
  /** `aborted`: stopped by `signal` before its length or end-of-sequence token. */
  finishReason: 'length' | 'eos' | 'aborted';
  /** Options that had no effect (e.g. topK at temperature 0), one sentence each; absent when none. */
  warnings?: string[];
  stepLogits?: Float32Array[];
  /** Beam search: the hypothesis' score (see BeamSequence). */
  score?: number;
  /** Beam search: the hypothesis' summed log-probabilities. */
  logProb?: number;
  /** Beam search with numReturnSequences > 1: the best hypotheses, best first (the first is this result's). */
  sequences?: BeamSequence[];
}

/**
 * A batch on the ranks, as a decode loop drives it: the coordinator's side of the steps. `batch` is
 * the number of sequences the ranks hold (prompts × beams).
 */
export interface DecodeBatch {
  readonly batch: number;
  /**
   * What the model has seen of sequence b before its new tokens: a causal model's prompt, an
   * encoder–decoder's decoder start (multi-token banned words match against it).
   */
  context(b: number): readonly number[];
  /** The first step (the prompts, or the encoder input with the decoder start): next-token results. */
  start(output: StepOutput): Promise<StepResult>;
  /** Feed new token i (0-based) of every sequence; with `order`, sequence b first continues sequence order[b]. */
  next(i: number, tokens: Int32Array, output: StepOutput, order?: Int32Array): Promise<StepResult>;
}

/** The settings a decode loop runs under, the options already resolved against generation_config.json. */
export interface DecodeSettings {
  maxNew: number;
  rules: TokenRules;
  stopAtEos: boolean;
  options: GenerateOptions;
}

export type DecodedSequence = Pick<GenerateResult, 'tokens' | 'finishReason' | 'stepLogits'>;

/** Greedy search or sampling: one sequence per prompt. */
export async function greedyOrSample(run: DecodeBatch, settings: DecodeSettings): Promise<DecodedSequence[]> {
  const { maxNew, rules, stopAtEos, options } = settings;
  const { batch } = run;
  const random = seededRandom(options.seed ?? 0);
  const output = stepOutput(options, rules);
  const results: DecodedSequence[] = Array.from({ length: batch }, () => ({ tokens: [], finishReason: 'length', ...(options.returnLogits ? { stepLogits: [] } : {}) }));
  const contexts = Array.from({ length: batch }, (_, b) => [...run.context(b)]);
  const done = new Array<boolean>(batch).fill(false);
  const aborted = () => {
    for (let b = 0; b < batch; b++) if (!done[b]) results[b]!.finishReason = 'aborted';
    return results;
  };
  if (options.signal?.aborted) return aborted();
  let result = await run.start(output);
  for (let i = 0; i < maxNew; i++) {
    const next = new Int32Array(batch);
    const vocab = result.logits ? result.logits.length / batch : 0;
    const forced = forcedToken(rules, i, maxNew);
    for (let b = 0; b < batch; b++) {
      const row = result.logits?.subarray(b * vocab, (b + 1) * vocab);
      const token = done[b] ? (results[b]!.tokens.at(-1) ?? 0) : (forced ?? chooseToken(result, b, batch, options, random, bannedAfter(rules, contexts[b]!)));
      next[b] = token;
      if (done[b]) continue;
      results[b]!.tokens.push(token);
      contexts[b]!.push(token);
      if (row) results[b]!.stepLogits?.push(row.slice());
      options.onToken?.({ sequence: b, token, step: i });
      if (stopAtEos && rules.eos.has(token)) {
        done[b] = true;
        results[b]!.finishReason = 'eos';
      }
    }
    if (i === maxNew - 1 || done.every(Boolean)) break;
    // A step boundary: every sequence has its token i and none is half made.
    if (options.signal?.aborted) return aborted();
    result = await run.next(i, next, output);
  }
  return results;
}

/** Names of the sampling options, as a caller spells them (the CLI's flags, the API's fields). */
export interface SamplingNames {
  temperature: string;
  topK: string;
  topP: string;
  seed: string;
}

const API_NAMES: SamplingNames = { temperature: 'temperature', topK: 'topK', topP: 'topP', seed: 'seed' };

/** Sampling options that change nothing, one sentence each: at temperature 0 (greedy) topK, topP and seed; topP 1. */
export function samplingWarnings(options: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP' | 'seed' | 'numBeams'>, names: SamplingNames = API_NAMES): string[] {
  const unused = (['topK', 'topP', 'seed'] as const).filter((k) => options[k] !== undefined);
  if ((options.temperature ?? 0) === 0 && unused.length > 0) {
    const search = (options.numBeams ?? 1) > 1 ? 'beam search' : 'greedy: the most likely token every time';
    return [`${unused.map((k) => names[k]).join(', ')} ${unused.length === 1 ? 'has' : 'have'} no effect at ${names.temperature} 0 (${search}); set ${names.temperature} above 0 to sample`];
  }
  if (options.topP === 1) return [`${names.topP} 1 has no effect (it keeps every token)`];
  return [];
}

/**
 * What a step must return for these options: one id when greedy, k candidates for top-k — with room
 * for the most tokens the banned words can ban at one step — and the logits otherwise.
 */
export function stepOutput(options: GenerateOptions, rules: TokenRules): StepOutput {
  const banned = mostBanned(rules);
  if (options.returnLogits) return 'logits';
  if ((options.temperature ?? 0) <= 0) return banned === 0 ? 'argmax' : { topk: banned + 1 };
  if (options.topK !== undefined && options.topK > 0) return { topk: options.topK + banned };
  return 'logits';
}

/** The next token of sequence b (of `batch`) from what the step returned, never a banned one. */
export function chooseToken(result: StepResult, b: number, batch: number, options: SamplingOptions, random: () => number, banned: ReadonlySet<number>): number {
  if (result.ids) return result.ids[b]!;
  if (result.topk) {
    // The k best logits, best first with ties by index: the candidates sampleToken would keep.
    const k = result.topk.values.length / batch;
    const indices = Array.from(result.topk.indices.subarray(b * k, (b + 1) * k));
    const keep = indices.flatMap((id, j) => (banned.has(id) ? [] : [j])).slice(0, options.topK ?? k);
    const values = Float32Array.from(keep, (j) => result.topk!.values[b * k + j]!);
    return indices[keep[sampleToken(values, options, random)]!]!;
  }
  const vocab = result.logits!.length / batch;
  let row = result.logits!.subarray(b * vocab, (b + 1) * vocab);
  if (banned.size > 0) {
    row = row.slice();
    for (const id of banned) if (id < vocab) row[id] = -Infinity;
  }
  return sampleToken(row, options, random);
}
