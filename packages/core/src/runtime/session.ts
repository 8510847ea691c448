/**
 * The coordinator in Node: it plans, starts one worker thread per rank (each loads only its own
 * shard), and runs requests. Its methods, by the model's kind, are model-methods.ts; what they ask of
 * the ranks is model-requests.ts (tokenizing, a batch's first step, the decode loops of decode-loop.ts
 * and beam.ts, which send every rank the same next tokens), and how it talks to them is coordinator.ts
 * — all shared with a page's WebModel (web-session.ts). A failing rank fails the request with that
 * rank's message and stops every worker; nothing hangs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import type { Backend } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import { createConfigReader, type DecoderSpec, type ModelGraph, type Seq2SeqSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { resolveBackend } from './backends.js';
import { RankCoordinator, type LoadProgressEvent, type RankLoad } from './coordinator.js';
import type { GenerateOptions, GenerateResult } from './decode-loop.js';
import { ModelMethods, modelSpecs, type EncoderInput, type EncoderOutput, type EncoderOutputOptions, type LogitsOptions, type Seq2SeqOutput } from './model-methods.js';
import { ModelRequests } from './model-requests.js';
import { analyzeRunnable } from './runnable.js';
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
export type { EncoderInput, EncoderOutput, EncoderOutputOptions, LogitsOptions, Seq2SeqOutput } from './model-methods.js';

export interface InferenceOptions extends ModelPlanOptions {
  /** A backend object, or its name: `cpu` (default), `webgpu`, `cuda`. */
  backend?: Backend | string;
  onProgress?: (event: LoadProgressEvent) => void;
  /** How long a rank waits in a collective before naming the ranks that never came (default 60 s). */
  collectiveTimeoutMs?: number;
  /** Test hook: make `rank` throw after this many forward passes. */
  faultInjection?: { rank: number; afterForwards: number };
}

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
  private readonly methods: ModelMethods;
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
    this.methods = new ModelMethods(this.requests, plan);
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
    const { spec, seq2seq } = modelSpecs(graph, createConfigReader(ckpt.config));
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
    return this.methods.logits(sequences, options);
  }

  /**
   * Generate from text prompts (with the tokenizer) or token-id prompts: greedy search, sampling, or
   * beam search when numBeams (or generation_config.json's num_beams) is above 1.
   */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    return this.methods.generate(prompts, options);
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
    return this.methods.encoderOutputs(inputs, options);
  }

  /**
   * An encoder–decoder's decoder logits for each decoder position ([decoder length × vocab] per
   * sequence; the decoder input defaults to the start token alone), and the encoder's last hidden
   * state ([source length × hidden]) when asked.
   */
  seq2seqLogits(sequences: ReadonlyArray<readonly number[]>, options: LogitsOptions & { hidden?: boolean } = {}): Promise<Seq2SeqOutput[]> {
    return this.methods.seq2seqLogits(sequences, options);
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

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return this.ranks.serial(fn);
  }
}

export function initInference(dir: string, options?: InferenceOptions): Promise<InferenceSession> {
  return InferenceSession.create(dir, options);
}
