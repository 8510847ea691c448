/**
 * The coordinator in Node: it plans, starts one worker thread per rank (each loads only its own
 * shard), and runs requests. What it asks of the ranks is model-requests.ts (tokenizing, a batch's
 * first step, the decode loops of decode-loop.ts and beam.ts, which send every rank the same next
 * tokens), and how it talks to them is coordinator.ts — both shared with a page's WebModel
 * (web-session.ts). A failing rank fails the request with that rank's message and stops every worker;
 * nothing hangs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import type { Backend } from '../backend/index.js';
import { ArgumentError, TpError } from '../errors/index.js';
import { createConfigReader, type DecoderSpec, type EncoderSpec, type ModelGraph, type Seq2SeqSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { resolveBackend } from './backends.js';
import { encoderBatch } from './batches.js';
import { RankCoordinator, type LoadProgressEvent, type RankLoad } from './coordinator.js';
import type { GenerateOptions, GenerateResult } from './decode-loop.js';
import type { StepInput, StepResult } from './engine.js';
import { KIND_NAMES, ModelRequests } from './model-requests.js';
import { analyzeRunnable } from './runnable.js';
import { withPositionTable } from './source-limit.js';
import type { FromWorker, ToWorker, WorkerData, WorkerStats } from './messages.js';
import { rankError } from './rank-errors.js';
import type { GenerationDefaults } from './generation.js';
import { readGenerationConfig } from './generation-file.js';
import { checkPlanOptions, checkRankMemory, planModel, type ModelPlanOptions } from './session-plan.js';
import type { TextTokenizer } from './tokenizer.js';
import { loadTokenizer } from './tokenizer-file.js';

export type { BeamSequence, GenerateOptions, GenerateResult } from './decode-loop.js';
export { samplingWarnings, type SamplingNames } from './decode-loop.js';
export { encoderBatch } from './batches.js';
export type { LoadProgressEvent } from './coordinator.js';
export type { ModelPlanOptions } from './session-plan.js';
export { positionLimit } from './model-requests.js';

export interface InferenceOptions extends ModelPlanOptions {
  /** A backend object, or its name: `cpu` (default), `webgpu`, `cuda`. */
  backend?: Backend | string;
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
  private readonly ranks: RankCoordinator;
  private readonly requests: ModelRequests;
  private readonly exited: Set<number>;

  private constructor(
    readonly dir: string,
    readonly graph: ModelGraph,
    readonly plan: TPPlan,
    readonly spec: DecoderSpec,
    readonly backend: Backend,
    rankWorkers: { workers: Worker[]; ranks: RankCoordinator; exited: Set<number> },
    tokenizer: TextTokenizer | undefined,
    load: LoadReport,
    extras: { seq2seq: Seq2SeqSpec | undefined; generation: GenerationDefaults },
  ) {
    this.workers = rankWorkers.workers;
    this.ranks = rankWorkers.ranks;
    this.exited = rankWorkers.exited;
    this.tokenizer = tokenizer;
    this.load = load;
    this.seq2seq = extras.seq2seq;
    this.generation = extras.generation;
    this.requests = new ModelRequests({ graph, spec, seq2seq: extras.seq2seq, generation: extras.generation, tokenizer, source: dir, ranks: this.ranks });
  }

  /** An encoder–decoder's spec (its `spec` is then the decoder stack's). */
  readonly seq2seq: Seq2SeqSpec | undefined;
  /** What generation_config.json says (empty without one); generate's options override it. */
  readonly generation: GenerationDefaults;

  static async create(dir: string, options: InferenceOptions = {}): Promise<InferenceSession> {
    checkPlanOptions(options);
    const backend = await resolveBackend(options.backend ?? 'cpu');
    const { tpSize, kvDtype } = checkPlanOptions(options, backend);
    const ckpt = await analyzeRunnable(dir);
    const graph = ckpt.graph;
    const config = createConfigReader(ckpt.config);
    const seq2seq = graph.kind === 'seq2seq' ? withPositionTable(graph.descriptor.seq2seq!(config), graph) : undefined;
    const spec = graph.kind === 'encoder' ? graph.descriptor.encoder!(config) : (seq2seq?.decoder ?? graph.descriptor.decoder!(config));
    const generation = await readGenerationConfig(ckpt.dir);
    const plan = planModel(graph, backend, options);
    await checkRankMemory(backend, plan, options.backendOptions ?? {});
    const tokenizer = await loadTokenizer(ckpt.dir);
    const communicator = backend.createCommunicator(tpSize, { timeoutMs: options.collectiveTimeoutMs ?? 60_000, backendOptions: options.backendOptions ?? {} });
    const started = Date.now();
    const url = workerUrl();
    const workers: Worker[] = [];
    const exited = new Set<number>();
    const ranks = new RankCoordinator(
      Array.from({ length: tpSize }, (_, rank) => ({
        post: (message: ToWorker) => workers[rank]!.postMessage(message),
        terminate: () => void workers[rank]!.terminate(),
        hold: (busy: boolean) => (busy ? workers[rank]!.ref() : workers[rank]!.unref()),
      })),
      options.onProgress,
    );
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
      worker.on('message', (m: FromWorker) => ranks.receive(m));
      worker.on('error', (e) => ranks.fail(rankError(rank, { message: e.message })));
      worker.on('exit', (code) => {
        exited.add(rank);
        if (ranks.ended === undefined) ranks.fail(rankError(rank, { message: `the worker exited with code ${code}${ranks.isReady ? '' : ' while loading'}` }));
      });
    }
    const loads: RankLoad[] = await ranks.ready;
    return new InferenceSession(ckpt.dir, graph, plan, spec, backend, { workers, ranks, exited }, tokenizer, { ranks: loads, wallMs: Date.now() - started }, { seq2seq, generation });
  }

  /**
   * Logits at every position of each sequence: one Float32Array of [length × vocab] per sequence —
   * next-token logits of a causal model, masked-LM logits of an encoder.
   */
  logits(sequences: readonly (readonly number[])[], options: LogitsOptions = {}): Promise<Float32Array[]> {
    if (this.graph.kind === 'encoder') return this.encoderOutputs(sequences, { hidden: false, logits: true }).then((out) => out.map((o) => o.logits!));
    if (this.graph.kind === 'seq2seq') return this.seq2seqLogits(sequences, options).then((out) => out.map((o) => o.logits));
    if (options.decoderTokens !== undefined) return Promise.reject(new ArgumentError({ argument: 'decoderTokens', detail: `${this.graph.title} is not an encoder–decoder model` }));
    return this.requests.causalLogits(sequences);
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
    return this.requests.generate(prompts, options);
  }

  /** The most positions a sequence may use (see positionLimit), or undefined when the model has no limit. */
  get positionLimit(): number | undefined {
    return this.requests.positionLimit;
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
      this.requests.checkLength(sequences, 0);
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
      const step = await this.requests.decoderStart(sequences, options, options.decoderTokens);
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
    return this.requests.encode(text);
  }

  /** Memory of the process (ranks are threads of one process) as each rank last sampled it. */
  async stats(): Promise<WorkerStats[]> {
    return this.serial(async () => (await this.ranks.call({ type: 'stats', id: 0 })).stats ?? []);
  }

  /** Rank workers still running (0 after dispose or a failure). */
  get liveWorkers(): number {
    return this.workers.length - this.exited.size;
  }

  /** The error that ended the session, if one did. */
  get failed(): Error | undefined {
    return this.ranks.ended;
  }

  /**
   * Release every rank: each disposes its device and ends its thread. A rank that does not answer
   * within `timeoutMs` (stuck in a kernel) is terminated. Safe to call twice.
   */
  async dispose(timeoutMs = 5000): Promise<void> {
    if (this.disposed) return this.disposed;
    const wasHealthy = this.ranks.close(new TpError('invalid-argument', 'the inference session was disposed'));
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

  private checkTokens(sequences: ReadonlyArray<readonly number[]>): void {
    this.requests.checkTokens(sequences);
  }

  private forward(step: StepInput): Promise<StepResult> {
    return this.ranks.forward(step);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.ranks.serial(fn);
  }
}

export function initInference(dir: string, options?: InferenceOptions): Promise<InferenceSession> {
  return InferenceSession.create(dir, options);
}
