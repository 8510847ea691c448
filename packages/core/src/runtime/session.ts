/**
 * The coordinator: it plans, starts one worker thread per rank (each loads only its own shard), and
 * runs requests. It tokenizes, builds a batch's first step (batches.ts) and drives the decode loops
 * (decode-loop.ts for greedy search and sampling, beam.ts for beams), which send every rank the same
 * next tokens. A failing rank fails the request with that rank's message and stops every worker;
 * nothing hangs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import type { Backend, StorageDtype } from '../backend/index.js';
import { ArgumentError, TpError } from '../errors/index.js';
import { createConfigReader, type DecoderSpec, type EncoderSpec, type ModelGraph, type Seq2SeqSpec } from '../graph/index.js';
import { planTensorParallel, type TPPlan } from '../plan/index.js';
import { resolveBackend } from './backends.js';
import { decoderBatch, encoderBatch, promptBatch } from './batches.js';
import { beamSearch, type BeamSettings } from './beam.js';
import { greedyOrSample, samplingWarnings, type DecodeBatch, type GenerateOptions, type GenerateResult } from './decode-loop.js';
import type { StepInput, StepResult } from './engine.js';
import { analyzeRunnable } from './runnable.js';
import { checkSourceLength, withPositionTable } from './source-limit.js';
import type { FromWorker, ToWorker, WorkerData, WorkerStats } from './messages.js';
import { failWithCause, rankError } from './rank-errors.js';
import { badWordRules, readGenerationConfig, type GenerationDefaults, type TokenRules } from './generation.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

export type { BeamSequence, GenerateOptions, GenerateResult } from './decode-loop.js';
export { samplingWarnings, type SamplingNames } from './decode-loop.js';
export { encoderBatch } from './batches.js';

export interface LoadProgressEvent {
  rank: number;
  bytesRead: number;
  bytesTotal: number;
}

export interface InferenceOptions {
  /** Number of ranks (default 1). */
  tpSize?: number;
  /** A backend object, or its name: `cpu` (default), `webgpu`, `cuda`. */
  backend?: Backend | string;
  /**
   * How weights are stored on the device: `auto` (default) keeps the checkpoint's own precision where
   * the backend supports it; `f32`, `f16`, `bf16` convert. Activations and accumulation are f32.
   */
  dtype?: 'auto' | StorageDtype;
  /** KV cache dtype (default f32). */
  kvDtype?: StorageDtype;
  /** A DeepSpeed injection policy or HF tp_plan overriding the automatic plan. */
  policy?: unknown;
  vocabParallel?: boolean;
  grain?: number;
  backendOptions?: Record<string, unknown>;
  onProgress?: (event: LoadProgressEvent) => void;
  /** How long a rank waits in a collective before naming the ranks that never came (default 60 s). */
  collectiveTimeoutMs?: number;
  /** Test hook: make `rank` throw after this many forward passes. */
  faultInjection?: { rank: number; afterForwards: number };
}

export interface LogitsOptions {
  /** Encoder–decoder models: each sequence's decoder input (default: the decoder start token alone). */
  decoderTokens?: ReadonlyArray<readonly number[]>;
  /** Encoder–decoder models: the decoder's first token (default: generation_config.json, then config.json). */
  decoderStartTokenId?: number;
}

/** One encoder input: token ids (or text) and, for families with segments, their token types. */
export interface EncoderInput {
  tokens: string | readonly number[];
  tokenTypes?: readonly number[];
}

export interface EncoderOutputOptions {
  /** Return the last hidden state (default true). */
  hidden?: boolean;
  /** Return the masked-LM logits (default: when the checkpoint has the head). */
  logits?: boolean;
  /** Return the pooler's output, tanh(dense(first token)) (default: false; the checkpoint needs `pooler.dense`). */
  pooled?: boolean;
}

export interface EncoderOutput {
  tokens: number[];
  /** [length × hidden], the encoder's last hidden state (Perceiver: its latents, [num_latents × d_latents]). */
  hidden?: Float32Array;
  /** [length × vocab], the masked-LM logits (Perceiver: at its decoder queries, [max_position_embeddings × vocab]). */
  logits?: Float32Array;
  /** [hidden], the pooler's output. */
  pooled?: Float32Array;
  /** Rows of `hidden` / `logits` when they are not one per input token (Perceiver: num_latents, and its decoder queries). */
  hiddenRows?: number;
  logitRows?: number;
}

const KIND_NAMES: Record<ModelGraph['kind'], string> = { causal: 'a causal language model', encoder: 'an encoder', seq2seq: 'an encoder–decoder model' };

const isEncoderInput = (x: unknown): x is EncoderInput => typeof x === 'object' && x !== null && !Array.isArray(x) && 'tokens' in x;

export interface LoadReport {
  ranks: Array<{ rank: number; bytesRead: number; loadMs: number }>;
  wallMs: number;
}

const WORKER_FILE = 'worker.js';

function workerUrl(): URL {
  const here = new URL(`./${WORKER_FILE}`, import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  // Running from TypeScript sources (tests): use the built worker.
  const built = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist', WORKER_FILE);
  if (!existsSync(built)) throw new TpError('internal', `the rank worker is not built (${built}); run pnpm build`);
  return pathToFileURL(built);
}

export class InferenceSession {
  readonly tokenizer: TextTokenizer | undefined;
  readonly load: LoadReport;
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { waiting: Set<number>; resolve: (v: { result?: StepResult; stats?: WorkerStats[] }) => void; reject: (e: Error) => void; result?: StepResult; stats: WorkerStats[] }>();
  private nextId = 1;
  private failure: Error | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly exited = new Set<number>();

  private constructor(
    readonly dir: string,
    readonly graph: ModelGraph,
    readonly plan: TPPlan,
    readonly spec: DecoderSpec,
    readonly backend: Backend,
    workers: Worker[],
    tokenizer: TextTokenizer | undefined,
    load: LoadReport,
    extras: { seq2seq: Seq2SeqSpec | undefined; generation: GenerationDefaults },
  ) {
    this.workers = workers;
    this.tokenizer = tokenizer;
    this.load = load;
    this.seq2seq = extras.seq2seq;
    this.generation = extras.generation;
  }

  /** An encoder–decoder's spec (its `spec` is then the decoder stack's). */
  readonly seq2seq: Seq2SeqSpec | undefined;
  /** What generation_config.json says (empty without one); generate's options override it. */
  readonly generation: GenerationDefaults;

  static async create(dir: string, options: InferenceOptions = {}): Promise<InferenceSession> {
    const tpSize = options.tpSize ?? 1;
    if (!Number.isInteger(tpSize) || tpSize < 1) throw new ArgumentError({ argument: 'tpSize', detail: `must be a positive integer, got ${tpSize}` });
    const dtype = options.dtype ?? 'auto';
    if (!['auto', 'f32', 'f16', 'bf16'].includes(dtype)) throw new ArgumentError({ argument: 'dtype', detail: `must be auto, f32, f16 or bf16, got ${String(dtype)}` });
    const kvDtype = options.kvDtype ?? 'f32';
    const backend = await resolveBackend(options.backend ?? 'cpu');
    if (!backend.kvDtypes.includes(kvDtype)) {
      throw new ArgumentError({ argument: 'kvDtype', detail: `the ${backend.name} backend keeps its KV cache in ${backend.kvDtypes.join(' or ')}, not ${String(kvDtype)}` });
    }
    const ckpt = await analyzeRunnable(dir);
    const graph = ckpt.graph;
    const config = createConfigReader(ckpt.config);
    const seq2seq = graph.kind === 'seq2seq' ? withPositionTable(graph.descriptor.seq2seq!(config), graph) : undefined;
    const spec = graph.kind === 'encoder' ? graph.descriptor.encoder!(config) : (seq2seq?.decoder ?? graph.descriptor.decoder!(config));
    const generation = await readGenerationConfig(ckpt.dir);
    const plan = planTensorParallel(graph, {
      tpSize,
      vocabParallel: options.vocabParallel ?? false,
      computeDtype: 'F32',
      storageDtype: dtype,
      kvDtype,
      supportedStorage: backend.storageDtypes,
      ...(backend.autoStorage ? { autoStorage: backend.autoStorage } : {}),
      supportedKv: backend.kvDtypes,
      ...(options.policy !== undefined ? { policy: options.policy } : {}),
      ...(options.grain !== undefined ? { grain: options.grain } : {}),
    });
    await checkRankMemory(backend, plan, options.backendOptions ?? {});
    const tokenizer = await loadTokenizer(ckpt.dir);
    const communicator = backend.createCommunicator(tpSize, { timeoutMs: options.collectiveTimeoutMs ?? 60_000, backendOptions: options.backendOptions ?? {} });
    const started = Date.now();
    const url = workerUrl();
    const workers: Worker[] = [];
    const ready = new Map<number, { rank: number; bytesRead: number; loadMs: number }>();
    const session = await new Promise<InferenceSession>((resolve, reject) => {
      let settled = false;
      const failAll = (error: Error) => {
        if (settled) return;
        settled = true;
        for (const w of workers) void w.terminate();
        reject(error);
      };
      for (let rank = 0; rank < tpSize; rank++) {
        const data: WorkerData = {
          dir: ckpt.dir,
          plan,
          rank,
          world: tpSize,
          backendUrl: backend.moduleUrl,
          backendOptions: options.backendOptions ?? {},
          communicator,
          kvDtype,
          ...(options.faultInjection ? { fault: { rank: options.faultInjection.rank, afterForwards: options.faultInjection.afterForwards } } : {}),
        };
        const worker = new Worker(url, { workerData: data });
        workers.push(worker);
        worker.on('message', (m: FromWorker) => {
          if (m.type === 'progress') options.onProgress?.({ rank: m.rank, bytesRead: m.bytesRead, bytesTotal: m.bytesTotal });
          else if (m.type === 'ready') {
            ready.set(m.rank, { rank: m.rank, bytesRead: m.bytesRead, loadMs: m.loadMs });
            if (ready.size === tpSize && !settled) {
              settled = true;
              const s = new InferenceSession(ckpt.dir, graph, plan, spec, backend, workers, tokenizer, {
                ranks: [...ready.values()].sort((a, b) => a.rank - b.rank),
                wallMs: Date.now() - started,
              }, { seq2seq, generation });
              for (const w of workers) w.removeAllListeners('message').removeAllListeners('error').removeAllListeners('exit');
              s.listen();
              resolve(s);
            }
          } else if (m.type === 'error') failWithCause(m.rank, m.error, failAll);
        });
        worker.on('error', (e) => failAll(rankError(rank, { message: e.message })));
        worker.on('exit', (code) => failAll(rankError(rank, { message: `the worker exited with code ${code} while loading` })));
      }
    });
    return session;
  }

  /**
   * Logits at every position of each sequence: one Float32Array of [length × vocab] per sequence —
   * next-token logits of a causal model, masked-LM logits of an encoder.
   */
  logits(sequences: readonly (readonly number[])[], options: LogitsOptions = {}): Promise<Float32Array[]> {
    if (this.graph.kind === 'encoder') return this.encoderOutputs(sequences, { hidden: false, logits: true }).then((out) => out.map((o) => o.logits!));
    if (this.graph.kind === 'seq2seq') return this.seq2seqLogits(sequences, options).then((out) => out.map((o) => o.logits));
    if (options.decoderTokens !== undefined) return Promise.reject(new ArgumentError({ argument: 'decoderTokens', detail: `${this.graph.title} is not an encoder–decoder model` }));
    return this.serial(async () => {
      const step = await this.prefill(sequences);
      const logits = (await this.forward({ ...step, logits: 'all', output: 'logits' })).logits!;
      const vocab = logits.length / (step.batch * step.rows);
      return sequences.map((seq, b) => {
        const pad = step.rows - seq.length;
        return logits.slice((b * step.rows + pad) * vocab, (b + 1) * step.rows * vocab);
      });
    });
  }

  /**
   * Generate from text prompts (with the tokenizer) or token-id prompts: greedy search, sampling, or
   * beam search when numBeams (or generation_config.json's num_beams) is above 1.
   */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    try {
      this.requireKind(['causal', 'seq2seq'], 'generate');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.serial(async () => {
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

  /** Prompt + new tokens within the model's positions, refused before any step runs, saying how many fit. */
  private checkPositions(sequences: ReadonlyArray<readonly number[]>, maxNew: number): void {
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
  private beamSettings(options: GenerateOptions): Pick<BeamSettings, 'numBeams' | 'lengthPenalty' | 'earlyStopping' | 'numReturnSequences'> {
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

  /**
   * Start a batch on the ranks for a decode loop: each prompt repeated once per beam (an
   * encoder–decoder encodes each prompt once and repeats its output), then one row per step.
   */
  private async decodeBatch(sequences: ReadonlyArray<readonly number[]>, options: GenerateOptions, maxNew: number, beams: number): Promise<DecodeBatch> {
    const seq2seq = this.graph.kind === 'seq2seq';
    const expanded = sequences.flatMap((s) => Array.from({ length: beams }, () => s));
    // A causal model continues its prompt; an encoder–decoder encodes it once and decodes from its start token.
    const first = seq2seq ? await this.decoderStart(sequences, options, undefined, beams) : await this.prefill(expanded, maxNew);
    const { batch } = first;
    const contexts = seq2seq ? Array.from({ length: batch }, (_, b) => [first.ids[b * first.rows]!]) : expanded;
    return {
      batch,
      context: (b) => contexts[b]!,
      start: (output) => this.forward({ ...first, logits: 'last', output }),
      next: (i, ids, output, order) => {
        const positions = Int32Array.from({ length: batch }, (_, b) => (seq2seq ? 1 + i : expanded[b]!.length + i));
        const keyMask = new Int32Array(batch).fill(1);
        return this.forward({ ids, positions, batch, rows: 1, start: first.rows + i, keyMask, keyPositions: positions, logits: 'last', output, ...(order ? { order } : {}) });
      },
    };
  }

  /** End-of-sequence ids, forced and banned tokens: the options, then generation_config.json, then config.json. */
  private tokenRules(options: GenerateOptions): TokenRules {
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
   * The first step of an encoder–decoder batch: the prompts as the encoder input (right-padded,
   * padding masked) and the decoder start token as the decoder's first row.
   */
  private async decoderStart(sequences: ReadonlyArray<readonly number[]>, options: { decoderStartTokenId?: number }, decoderTokens?: ReadonlyArray<readonly number[]>, repeat = 1): Promise<Omit<StepInput, 'logits'>> {
    const spec = this.seq2seq!;
    const start = options.decoderStartTokenId ?? this.generation.decoderStartTokenId ?? spec.decoderStartTokenId;
    const batch = sequences.length * repeat;
    const decoder = decoderTokens ?? Array.from({ length: batch }, () => [start]);
    this.checkTokens(decoder);
    checkSourceLength(spec, Math.max(0, ...sequences.map((s) => s.length)));
    const source = encoderBatch(sequences.map((tokens) => ({ tokens })), spec.encoder);
    const step = decoderBatch(decoder, spec.decoder.padTokenId ?? 0);
    await this.call({ type: 'reset', id: 0, batch });
    return { ...step, encoder: { ids: source.ids, positions: source.positions, keyMask: source.keyMask, rows: source.rows, ...(repeat > 1 ? { repeat } : {}) } };
  }

  /**
   * An encoder's outputs for each input: the last hidden state ([length × hidden]) and the masked-LM
   * logits ([length × vocab], when the checkpoint has the head). Inputs are token ids, text (with the
   * tokenizer) or `{ tokens, tokenTypes }`; a batch is right-padded and the padding masked.
   */
  encoderOutputs(inputs: ReadonlyArray<EncoderInput | string | readonly number[]>, options: EncoderOutputOptions = {}): Promise<EncoderOutput[]> {
    try {
      this.requireKind(['encoder', 'seq2seq'], 'encoderOutputs');
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.graph.kind === 'seq2seq') {
      // The encoder of an encoder–decoder: its last hidden state (the decoder runs one start row beside it).
      if (options.logits === true) return Promise.reject(new ArgumentError({ argument: 'logits', detail: `${this.graph.title}'s encoder has no masked-LM head; logits() gives the decoder's` }));
      if (inputs.some((i) => isEncoderInput(i) && i.tokenTypes !== undefined)) return Promise.reject(new ArgumentError({ argument: 'tokenTypes', detail: `${this.graph.title} has no token types` }));
      const sequences = inputs.map((i) => (typeof i === 'string' ? i : isEncoderInput(i) ? i.tokens : i)).map((t) => (typeof t === 'string' ? this.encode(t) : [...t]));
      return this.seq2seqLogits(sequences, { hidden: true }).then((out) => out.map((o, b) => ({ tokens: sequences[b]!, hidden: o.hidden! })));
    }
    return this.serial(async () => {
      const items = inputs.map((input): { tokens: number[]; tokenTypes: readonly number[] | undefined } => {
        if (typeof input === 'string') return { tokens: this.encode(input), tokenTypes: undefined };
        if (isEncoderInput(input)) return { tokens: typeof input.tokens === 'string' ? this.encode(input.tokens) : [...input.tokens], tokenTypes: input.tokenTypes };
        return { tokens: [...input], tokenTypes: undefined };
      });
      const sequences = items.map((i) => i.tokens);
      this.checkTokens(sequences);
      this.checkLength(sequences, 0);
      items.forEach((item, i) => {
        if (item.tokenTypes !== undefined && item.tokenTypes.length !== item.tokens.length) {
          throw new ArgumentError({ argument: 'tokenTypes', detail: `input ${i} has ${item.tokens.length} tokens but ${item.tokenTypes.length} token types` });
        }
      });
      const hidden = options.hidden ?? true;
      const logits = options.logits ?? this.plan.lmHead !== null;
      if (logits && this.plan.lmHead === null) {
        throw new ArgumentError({ argument: 'logits', detail: `${this.graph.title} (${this.dir}) has no masked-LM head; ask for the hidden states only` });
      }
      const typeTable = this.graph.weights.find((w) => w.role === 'type_embed' && w.shape.length === 2);
      const step = encoderBatch(items, this.spec as EncoderSpec, typeTable?.shape[0] ?? 1);
      const pooled = options.pooled === true;
      if (pooled && !this.graph.weights.some((w) => w.slot === 'pooler')) {
        throw new ArgumentError({ argument: 'pooled', detail: `${this.graph.title} (${this.dir}) has no pooler (pooler.dense); use the hidden states` });
      }
      const result = await this.forward({ ...step, logits: logits ? 'all' : 'none', output: 'logits', hidden, pooled });
      const { rows } = step;
      return items.map((item, b) => {
        const n = item.tokens.length;
        // An output with rows of its own (Perceiver's latents and decoder queries) is whole per sequence.
        const rowsOf = (data: Float32Array, own: number | undefined) => {
          const width = data.length / (step.batch * (own ?? rows));
          return own === undefined ? data.slice(b * rows * width, (b * rows + n) * width) : data.slice(b * own * width, (b + 1) * own * width);
        };
        const width = this.graph.geometry.hidden;
        return {
          tokens: item.tokens,
          ...(result.hidden ? { hidden: rowsOf(result.hidden, result.hiddenRows) } : {}),
          ...(result.logits ? { logits: rowsOf(result.logits, result.logitRows) } : {}),
          ...(result.pooled ? { pooled: result.pooled.slice(b * width, (b + 1) * width) } : {}),
          ...(result.hidden && result.hiddenRows !== undefined ? { hiddenRows: result.hiddenRows } : {}),
          ...(result.logits && result.logitRows !== undefined ? { logitRows: result.logitRows } : {}),
        };
      });
    });
  }

  /**
   * An encoder–decoder's decoder logits for each decoder position ([decoder length × vocab] per
   * sequence; the decoder input defaults to the start token alone), and the encoder's last hidden
   * state ([source length × hidden]) when asked.
   */
  seq2seqLogits(sequences: ReadonlyArray<readonly number[]>, options: LogitsOptions & { hidden?: boolean } = {}): Promise<Array<{ decoderTokens: number[]; logits: Float32Array; hidden?: Float32Array }>> {
    try {
      this.requireKind(['seq2seq'], 'seq2seqLogits');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.serial(async () => {
      this.checkTokens(sequences);
      if (options.decoderTokens !== undefined && options.decoderTokens.length !== sequences.length) {
        throw new ArgumentError({ argument: 'decoderTokens', detail: `${options.decoderTokens.length} decoder inputs for ${sequences.length} sequences` });
      }
      const step = await this.decoderStart(sequences, options, options.decoderTokens);
      const result = await this.forward({ ...step, logits: 'all', output: 'logits', hidden: options.hidden === true });
      const logits = result.logits!;
      const vocab = logits.length / (step.batch * step.rows);
      const source = step.encoder!.rows;
      return sequences.map((seq, b) => {
        const decoderTokens = Array.from(step.ids.subarray(b * step.rows, b * step.rows + (options.decoderTokens?.[b]?.length ?? 1)));
        const out: { decoderTokens: number[]; logits: Float32Array; hidden?: Float32Array } = {
          decoderTokens,
          logits: logits.slice(b * step.rows * vocab, (b * step.rows + decoderTokens.length) * vocab),
        };
        if (result.hidden) {
          const width = result.hidden.length / (step.batch * source);
          out.hidden = result.hidden.slice(b * source * width, (b * source + seq.length) * width);
        }
        return out;
      });
    });
  }

  /** A method that does not fit the model's kind is refused, saying which do. */
  private requireKind(kinds: ReadonlyArray<ModelGraph['kind']>, method: string): void {
    if (kinds.includes(this.graph.kind)) return;
    const fits: Record<ModelGraph['kind'], string> = {
      causal: 'generate() and logits()',
      encoder: 'encoderOutputs() (hidden states and masked-LM logits) and logits()',
      seq2seq: 'generate(), logits() (the decoder logits, seq2seqLogits() with the encoder states) and encoderOutputs() (the encoder states)',
    };
    throw new ArgumentError({
      argument: 'method',
      detail: `${method}() does not fit ${this.graph.title}, ${KIND_NAMES[this.graph.kind]}; it has ${fits[this.graph.kind]}`,
    });
  }

  encode(text: string): number[] {
    if (this.tokenizer === undefined) throw new ArgumentError({ argument: 'prompt', detail: `${this.dir} has no tokenizer.json; pass token ids instead of text` });
    return this.tokenizer.encode(text);
  }

  /** Memory of the process (ranks are threads of one process) as each rank last sampled it. */
  async stats(): Promise<WorkerStats[]> {
    return this.serial(async () => (await this.call({ type: 'stats', id: 0 })).stats ?? []);
  }

  /** Rank workers still running (0 after dispose or a failure). */
  get liveWorkers(): number {
    return this.workers.length - this.exited.size;
  }

  /** The error that ended the session, if one did. */
  get failed(): Error | undefined {
    return this.failure;
  }

  /**
   * Release every rank: each disposes its device and ends its thread. A rank that does not answer
   * within `timeoutMs` (stuck in a kernel) is terminated. Safe to call twice.
   */
  async dispose(timeoutMs = 5000): Promise<void> {
    if (this.disposed) return this.disposed;
    const wasHealthy = this.failure === undefined;
    this.failure ??= new TpError('invalid-argument', 'the inference session was disposed');
    this.disposed = (async () => {
      if (wasHealthy) {
        const acks = this.workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, timeoutMs);
              w.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              w.ref();
              w.postMessage({ type: 'dispose', id: 0 } satisfies ToWorker);
            }),
        );
        await Promise.all(acks);
      }
      await Promise.all(this.workers.map((w) => w.terminate()));
    })();
    return this.disposed;
  }

  private disposed: Promise<void> | undefined;

  // ---- internals -------------------------------------------------------------------------------

  /** Reject what would fail in a rank: empty prompts, ids outside the vocabulary. */
  private checkTokens(sequences: ReadonlyArray<readonly number[]>): void {
    if (sequences.length === 0 || sequences.some((s) => s.length === 0)) throw new ArgumentError({ argument: 'prompts', detail: 'every prompt needs at least one token' });
    const vocab = Math.max(this.graph.geometry.vocab, this.graph.geometry.paddedVocab);
    for (const s of sequences) {
      const bad = s.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
      if (bad !== undefined) throw new ArgumentError({ argument: 'tokens', detail: `token id ${bad} is outside the vocabulary (0 to ${vocab - 1})` });
    }
  }

  /** Prompt plus new tokens must fit the model's position table. */
  private checkLength(sequences: ReadonlyArray<readonly number[]>, maxNew: number): void {
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

  /**
   * Start a batch: fresh KV caches on every rank, and the prompt rows left-padded to the longest,
   * with padding masked out (and given position 1, as transformers does).
   */
  private async prefill(sequences: ReadonlyArray<readonly number[]>, maxNew = 0): Promise<Omit<StepInput, 'logits'>> {
    this.checkTokens(sequences);
    this.checkLength(sequences, maxNew);
    const step = promptBatch(sequences, this.spec.padTokenId ?? 0);
    await this.call({ type: 'reset', id: 0, batch: step.batch });
    return step;
  }

  /** Positions a learned position table can encode (undefined when positions are computed). */
  private positionTableSize(): number | undefined {
    if (this.spec.positions !== 'learned') return undefined;
    const table = this.graph.weights.find((w) => w.role === 'pos_embed' && w.shape.length === 2);
    const rows = table === undefined ? undefined : table.shape[0]! - (this.spec.positionOffset ?? 0);
    // The spec may allow fewer (Reformer: a sequence runs padded to its chunk multiple, which must fit).
    const limits = [rows, this.spec.maxPositions].filter((n): n is number => n !== undefined);
    return limits.length === 0 ? undefined : Math.min(...limits);
  }

  private async forward(step: StepInput): Promise<StepResult> {
    return (await this.call({ type: 'forward', id: 0, step })).result ?? {};
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.failure) throw this.failure;
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private call(message: ToWorker): Promise<{ result?: StepResult; stats?: WorkerStats[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { waiting: new Set(this.workers.map((_, r) => r)), resolve, reject, stats: [] });
      // Busy ranks keep the process alive; idle ones do not (a script that forgets dispose() exits).
      for (const w of this.workers) w.ref();
      for (const w of this.workers) w.postMessage({ ...message, id });
    });
  }

  private idle(): void {
    if (this.pending.size === 0) for (const w of this.workers) w.unref();
  }

  private listen(): void {
    this.idle();
    this.workers.forEach((worker, rank) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'done') {
          const p = this.pending.get(m.id);
          if (p === undefined) return;
          if (m.result) p.result = m.result;
          if (m.stats) p.stats[m.rank] = m.stats;
          p.waiting.delete(m.rank);
          if (p.waiting.size === 0) {
            this.pending.delete(m.id);
            this.idle();
            p.resolve({ ...(p.result ? { result: p.result } : {}), stats: p.stats });
          }
        } else if (m.type === 'error') failWithCause(m.rank, m.error, (e) => this.fail(e));
      });
      worker.on('error', (e) => this.fail(rankError(rank, { message: e.message })));
      worker.on('exit', (code) => {
        this.exited.add(rank);
        if (this.failure === undefined) this.fail(rankError(rank, { message: `the worker exited with code ${code}` }));
      });
    });
  }

  /** The first failure wins: every pending request rejects with it and every worker stops. */
  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const w of this.workers) void w.terminate();
  }
}

/** Refuse, before any rank loads, a plan whose share of the weights does not fit a rank. */
async function checkRankMemory(backend: Backend, plan: TPPlan, options: Record<string, unknown>): Promise<void> {
  const limit = await backend.rankMemoryLimit(options);
  if (limit === undefined) return;
  const worst = [...plan.ranks].sort((a, b) => b.paramBytes - a.paramBytes)[0]!;
  if (worst.paramBytes > limit) {
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    throw new TpError(
      'out-of-memory',
      `rank ${worst.rank} would hold ${gib(worst.paramBytes)} of weights (${plan.options.storageDtype ?? 'f32'}), but a ${backend.name} rank holds at most ${gib(limit)}; use more ranks (a larger --tp) or half-precision storage (--dtype bf16)`,
    );
  }
}

export function initInference(dir: string, options?: InferenceOptions): Promise<InferenceSession> {
  return InferenceSession.create(dir, options);
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
