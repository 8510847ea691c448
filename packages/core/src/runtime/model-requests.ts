/**
 * What a coordinator asks of a model's ranks, however it reaches them (Node's InferenceSession,
 * session.ts; a page's WebModel, web-session.ts): the checks of token ids and positions, the first
 * step of a batch (batches.ts), the steps of a decode loop, the token rules and beam settings resolved
 * against generation_config.json, and `generate` itself (decode-loop.ts for greedy search and
 * sampling, beam.ts for beams). Browser-safe: no Node module.
 */
import { ArgumentError } from '../errors/index.js';
import type { DecoderSpec, EncoderSpec, ModelGraph, Seq2SeqSpec } from '../graph/index.js';
import { decoderBatch, encoderBatch, promptBatch } from './batches.js';
import { beamSearch, type BeamSettings } from './beam.js';
import type { RankCoordinator } from './coordinator.js';
import { greedyOrSample, samplingWarnings, type DecodeBatch, type GenerateOptions, type GenerateResult } from './decode-loop.js';
import type { StepInput } from './engine.js';
import { badWordRules, type GenerationDefaults, type TokenRules } from './generation.js';
import { checkSourceLength } from './source-limit.js';
import type { TextTokenizer } from './tokenizer.js';

/** A model's kind, as messages name it. */
export const KIND_NAMES: Record<ModelGraph['kind'], string> = { causal: 'a causal language model', encoder: 'an encoder', seq2seq: 'an encoder–decoder model' };

export interface ModelRequestsInit {
  graph: ModelGraph;
  /** The decoder's spec (an encoder–decoder's decoder stack), or an encoder's. */
  spec: DecoderSpec;
  seq2seq: Seq2SeqSpec | undefined;
  generation: GenerationDefaults;
  tokenizer: TextTokenizer | undefined;
  /** Where the checkpoint is (a folder, a URL), for messages. */
  source: string;
  ranks: RankCoordinator;
}

export class ModelRequests {
  readonly graph: ModelGraph;
  readonly spec: DecoderSpec;
  readonly seq2seq: Seq2SeqSpec | undefined;
  readonly generation: GenerationDefaults;
  readonly tokenizer: TextTokenizer | undefined;
  readonly source: string;
  readonly ranks: RankCoordinator;

  constructor(init: ModelRequestsInit) {
    this.graph = init.graph;
    this.spec = init.spec;
    this.seq2seq = init.seq2seq;
    this.generation = init.generation;
    this.tokenizer = init.tokenizer;
    this.source = init.source;
    this.ranks = init.ranks;
  }

  encode(text: string): number[] {
    if (this.tokenizer === undefined) throw new ArgumentError({ argument: 'prompt', detail: `${this.source} has no tokenizer.json; pass token ids instead of text` });
    return this.tokenizer.encode(text);
  }

  /** A causal model's next-token logits at every position of each sequence: [length × vocab] per sequence. */
  causalLogits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    return this.ranks.serial(async () => {
      const step = await this.prefill(sequences);
      const logits = (await this.ranks.forward({ ...step, logits: 'all', output: 'logits' })).logits!;
      const vocab = logits.length / (step.batch * step.rows);
      return sequences.map((seq, b) => {
        const pad = step.rows - seq.length;
        return logits.slice((b * step.rows + pad) * vocab, (b + 1) * step.rows * vocab);
      });
    });
  }

  /**
   * Generate from text prompts (with the tokenizer) or token-id prompts: greedy search, sampling, or
   * beam search when numBeams (or generation_config.json's num_beams) is above 1. A causal model or an
   * encoder–decoder (the caller checks the kind).
   */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    return this.ranks.serial(async () => {
      const sequences = prompts.map((p) => (typeof p === 'string' ? this.encode(p) : [...p]));
      const maxNew = options.maxNewTokens ?? this.generation.maxNewTokens ?? 32;
      if (!Number.isInteger(maxNew) || maxNew < 1) throw new ArgumentError({ argument: 'maxNewTokens', detail: `must be a positive integer, got ${maxNew}` });
      const beam = this.beamSettings(options);
      const settings = { maxNew, rules: this.tokenRules(options), stopAtEos: options.stopAtEos ?? true, options };
      this.checkTokens(sequences);
      this.checkPositions(sequences, maxNew);
      const warnings = samplingWarnings(options);
      const withWarnings = <T extends GenerateResult>(r: T): T => (warnings.length > 0 ? { ...r, warnings } : r);
      const run = await this.decodeBatch(sequences, options, maxNew, beam.numBeams);
      const text = (tokens: number[]) => this.tokenizer?.decode(tokens);
      if (beam.numBeams === 1) {
        const decoded = await greedyOrSample(run, settings);
        return decoded.map((d, b) => withWarnings({ promptTokens: sequences[b]!, tokens: d.tokens, text: text(d.tokens), finishReason: d.finishReason, ...(d.stepLogits ? { stepLogits: d.stepLogits } : {}) }));
      }
      const found = await beamSearch(run, { ...settings, ...beam });
      return found.map((hyps, b) => {
        const sequencesOut = hyps.map((h) => ({ ...h, text: text(h.tokens) }));
        const best = sequencesOut[0]!;
        best.tokens.forEach((token, step) => options.onToken?.({ sequence: b, token, step }));
        return withWarnings({
          promptTokens: sequences[b]!,
          tokens: best.tokens,
          text: best.text,
          finishReason: best.finishReason,
          ...(best.stepLogits ? { stepLogits: best.stepLogits } : {}),
          score: best.score,
          logProb: best.logProb,
          ...(beam.numReturnSequences > 1 ? { sequences: sequencesOut } : {}),
        });
      });
    });
  }

  /** The most positions a sequence may use (see positionLimit), or undefined when the model has no limit. */
  get positionLimit(): number | undefined {
    return positionLimit(this.graph, this.graph.kind === 'encoder' ? undefined : this.spec);
  }

  /** Reject what would fail in a rank: empty prompts, ids outside the vocabulary. */
  checkTokens(sequences: ReadonlyArray<readonly number[]>): void {
    if (sequences.length === 0 || sequences.some((s) => s.length === 0)) throw new ArgumentError({ argument: 'prompts', detail: 'every prompt needs at least one token' });
    const vocab = Math.max(this.graph.geometry.vocab, this.graph.geometry.paddedVocab);
    for (const s of sequences) {
      const bad = s.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
      if (bad !== undefined) throw new ArgumentError({ argument: 'tokens', detail: `token id ${bad} is outside the vocabulary (0 to ${vocab - 1})` });
    }
  }

  /** Prompt plus new tokens must fit the model's position table. */
  checkLength(sequences: ReadonlyArray<readonly number[]>, maxNew: number): void {
    const rows = Math.max(...sequences.map((s) => s.length));
    const table = this.positionTableSize();
    if (table !== undefined && rows + maxNew > table) {
      // An encoder's input (no new tokens) only has to fit the table.
      if (maxNew === 0) throw new ArgumentError({ argument: 'prompts', detail: `the input has ${rows} tokens, but this model's position table has ${table} positions; shorten it to ${table} tokens or fewer` });
      throw new ArgumentError({
        argument: 'prompts',
        detail: `${rows} prompt tokens plus ${maxNew} new ones need ${rows + maxNew} positions, but this model's position table has ${table}; shorten the prompt or ask for at most ${Math.max(0, table - rows)} new tokens`,
      });
    }
  }

  /** Prompt + new tokens within the model's positions, refused before any step runs, saying how many fit. */
  checkPositions(sequences: ReadonlyArray<readonly number[]>, maxNew: number): void {
    const limit = this.positionLimit;
    if (limit === undefined) return;
    const seq2seq = this.graph.kind === 'seq2seq';
    const longest = seq2seq ? 1 : Math.max(...sequences.map((s) => s.length));
    if (longest + maxNew <= limit) return;
    const fit = limit - longest;
    throw new ArgumentError({
      argument: 'maxNewTokens',
      detail: `${seq2seq ? 'the decoder' : `a prompt of ${longest} tokens`} plus ${maxNew} new tokens needs ${longest + maxNew} positions, but ${this.graph.title} takes at most ${limit}: ${fit > 0 ? `${fit} new token${fit === 1 ? ' fits' : 's fit'}` : 'the prompt alone fills them'}`,
    });
  }

  /** numBeams and its companions: the options, then generation_config.json, then transformers' defaults. */
  beamSettings(options: GenerateOptions): Pick<BeamSettings, 'numBeams' | 'lengthPenalty' | 'earlyStopping' | 'numReturnSequences'> {
    const g = this.generation;
    const numBeams = options.numBeams ?? g.numBeams ?? 1;
    if (!Number.isInteger(numBeams) || numBeams < 1) throw new ArgumentError({ argument: 'numBeams', detail: `must be a positive integer, got ${numBeams}` });
    const numReturnSequences = options.numReturnSequences ?? g.numReturnSequences ?? 1;
    if (!Number.isInteger(numReturnSequences) || numReturnSequences < 1 || numReturnSequences > numBeams) {
      throw new ArgumentError({ argument: 'numReturnSequences', detail: `must be an integer from 1 to numBeams (${numBeams}), got ${numReturnSequences}` });
    }
    const lengthPenalty = options.lengthPenalty ?? g.lengthPenalty ?? 1;
    if (!Number.isFinite(lengthPenalty)) throw new ArgumentError({ argument: 'lengthPenalty', detail: `must be a finite number, got ${lengthPenalty}` });
    const earlyStopping = options.earlyStopping ?? g.earlyStopping ?? false;
    if (numBeams > 1 && (options.temperature ?? 0) > 0) {
      throw new ArgumentError({ argument: 'numBeams', detail: `beam search (${numBeams} beams${options.numBeams === undefined ? ', from generation_config.json' : ''}) does not sample; drop temperature, or pass numBeams: 1 to sample` });
    }
    return { numBeams, lengthPenalty, earlyStopping, numReturnSequences };
  }

  /** End-of-sequence ids, forced and banned tokens: the options, then generation_config.json, then config.json. */
  tokenRules(options: GenerateOptions): TokenRules {
    const g = this.generation;
    const pick = (given: number | null | undefined, fallback: number | undefined) => (given === null ? undefined : (given ?? fallback));
    const eos = new Set(options.eosTokenId === undefined ? (g.eosTokenIds ?? [this.spec.eosTokenId ?? []].flat()) : [options.eosTokenId].flat());
    const bad = options.badWordsIds === undefined ? (g.badWordsIds ?? []) : (options.badWordsIds ?? []);
    if (!Array.isArray(bad) || bad.some((w) => !Array.isArray(w) || w.some((t) => !Number.isInteger(t) || t < 0))) {
      throw new ArgumentError({ argument: 'badWordsIds', detail: 'must be a list of token-id lists' });
    }
    return {
      eos,
      forcedFirst: pick(options.forcedBosTokenId, g.forcedBosTokenId),
      forcedLast: pick(options.forcedEosTokenId, g.forcedEosTokenId),
      ...badWordRules(bad, eos),
    };
  }

  /**
   * Start a batch: fresh KV caches on every rank, and the prompt rows left-padded to the longest,
   * with padding masked out (and given position 1, as transformers does).
   */
  async prefill(sequences: ReadonlyArray<readonly number[]>, maxNew = 0): Promise<Omit<StepInput, 'logits'>> {
    this.checkTokens(sequences);
    this.checkLength(sequences, maxNew);
    const step = promptBatch(sequences, this.spec.padTokenId ?? 0);
    await this.ranks.reset(step.batch);
    return step;
  }

  /**
   * The first step of an encoder–decoder batch: the prompts as the encoder input (right-padded,
   * padding masked) and the decoder start token as the decoder's first row.
   */
  async decoderStart(sequences: ReadonlyArray<readonly number[]>, options: { decoderStartTokenId?: number }, decoderTokens?: ReadonlyArray<readonly number[]>, repeat = 1): Promise<Omit<StepInput, 'logits'>> {
    const spec = this.seq2seq!;
    const start = options.decoderStartTokenId ?? this.generation.decoderStartTokenId ?? spec.decoderStartTokenId;
    const batch = sequences.length * repeat;
    const decoder = decoderTokens ?? Array.from({ length: batch }, () => [start]);
    this.checkTokens(decoder);
    checkSourceLength(spec, Math.max(0, ...sequences.map((s) => s.length)));
    const source = encoderBatch(sequences.map((tokens) => ({ tokens })), spec.encoder);
    const step = decoderBatch(decoder, spec.decoder.padTokenId ?? 0);
    await this.ranks.reset(batch);
    return { ...step, encoder: { ids: source.ids, positions: source.positions, keyMask: source.keyMask, rows: source.rows, ...(repeat > 1 ? { repeat } : {}) } };
  }

  /**
   * Start a batch on the ranks for a decode loop: each prompt repeated once per beam (an
   * encoder–decoder encodes each prompt once and repeats its output), then one row per step.
   */
  async decodeBatch(sequences: ReadonlyArray<readonly number[]>, options: GenerateOptions, maxNew: number, beams: number): Promise<DecodeBatch> {
    const seq2seq = this.graph.kind === 'seq2seq';
    const expanded = sequences.flatMap((s) => Array.from({ length: beams }, () => s));
    // A causal model continues its prompt; an encoder–decoder encodes it once and decodes from its start token.
    const first = seq2seq ? await this.decoderStart(sequences, options, undefined, beams) : await this.prefill(expanded, maxNew);
    const { batch } = first;
    const contexts = seq2seq ? Array.from({ length: batch }, (_, b) => [first.ids[b * first.rows]!]) : expanded;
    return {
      batch,
      context: (b) => contexts[b]!,
      start: (output) => this.ranks.forward({ ...first, logits: 'last', output }),
      next: (i, ids, output, order) => {
        const positions = Int32Array.from({ length: batch }, (_, b) => (seq2seq ? 1 + i : expanded[b]!.length + i));
        const keyMask = new Int32Array(batch).fill(1);
        return this.ranks.forward({ ids, positions, batch, rows: 1, start: first.rows + i, keyMask, keyPositions: positions, logits: 'last', output, ...(order ? { order } : {}) });
      },
    };
  }

  /** Positions a learned position table can encode (undefined when positions are computed), or the family's declared input limit. */
  private positionTableSize(): number | undefined {
    const declared = (this.spec as EncoderSpec).inputLimit;
    if (this.spec.positions !== 'learned') return declared;
    const table = this.graph.weights.find((w) => w.role === 'pos_embed' && w.shape.length === 2);
    const rows = table === undefined ? undefined : table.shape[0]! - (this.spec.positionOffset ?? 0);
    // The spec may allow fewer (Reformer: a sequence runs padded to its chunk multiple, which must fit).
    const limits = [rows, this.spec.maxPositions, declared].filter((n): n is number => n !== undefined);
    return limits.length === 0 ? undefined : Math.min(...limits);
  }
}

/**
 * The longest sequence (prompt + new tokens) a model takes: a learned position table's rows (less the
 * family's offset), or max_position_embeddings (n_positions, max_seq_len) for rotary and ALiBi models
 * — except under dynamic rotary scaling, which extends them. Undefined: no limit (T5's relative
 * positions). `spec` is the decoder's (an encoder–decoder's decoder stack); the encoder's table of an
 * encoder–decoder is not counted.
 */
export function positionLimit(graph: ModelGraph, spec: Pick<DecoderSpec, 'maxPositions' | 'positionOffset' | 'rope'> | undefined): number | undefined {
  const limits: number[] = [];
  if (spec?.maxPositions !== undefined && spec.rope?.scaling?.type !== 'dynamic') limits.push(spec.maxPositions);
  for (const w of graph.weights) {
    if (w.role === 'pos_embed' && w.param === 'weight' && w.shape.length === 2 && !w.name.includes('encoder')) limits.push(w.shape[0]! - (spec?.positionOffset ?? 0));
  }
  return limits.length === 0 ? undefined : Math.min(...limits);
}
