/**
 * The coordinator: it plans, starts one worker thread per rank (each loads only its own shard), and
 * runs requests. It tokenizes, samples, and sends every rank the same next token. A failing rank fails
 * the request with that rank's message and stops every worker; nothing hangs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { createHostCollectiveInit, RankFailedError, type Backend } from '../backend/index.js';
import { openCheckpoint } from '../checkpoint/index.js';
import { ArgumentError, TpError, UnsupportedModelError } from '../errors/index.js';
import { analyzeModel, createConfigReader, type DecoderSpec, type ModelGraph } from '../graph/index.js';
import { planTensorParallel, type TPPlan } from '../plan/index.js';
import { resolveBackend } from './backends.js';
import type { StepInput } from './decoder.js';
import type { FromWorker, ToWorker, WorkerData, WorkerStats } from './messages.js';
import { sampleToken, seededRandom, type SamplingOptions } from './sampling.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

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
  /** Compute dtype. The CPU backend computes in f32. */
  dtype?: 'f32';
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

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate per prompt (default 32). */
  maxNewTokens?: number;
  /** Stop a sequence at the model's end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /** Called for every new token of every sequence, as it is chosen. */
  onToken?: (event: { sequence: number; token: number; step: number }) => void;
  /** Keep the logits that chose each token (for comparisons). */
  returnLogits?: boolean;
}

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string | undefined;
  finishReason: 'length' | 'eos';
  stepLogits?: Float32Array[];
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
  if (!existsSync(built)) throw new Error(`the rank worker is not built (${built}); run pnpm build`);
  return pathToFileURL(built);
}

export class InferenceSession {
  readonly tokenizer: TextTokenizer | undefined;
  readonly load: LoadReport;
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { waiting: Set<number>; resolve: (v: { logits?: Float32Array; stats?: WorkerStats[] }) => void; reject: (e: Error) => void; logits?: Float32Array; stats: WorkerStats[] }>();
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
  ) {
    this.workers = workers;
    this.tokenizer = tokenizer;
    this.load = load;
  }

  static async create(dir: string, options: InferenceOptions = {}): Promise<InferenceSession> {
    const tpSize = options.tpSize ?? 1;
    if (!Number.isInteger(tpSize) || tpSize < 1) throw new ArgumentError({ argument: 'tpSize', detail: `must be a positive integer, got ${tpSize}` });
    if (options.dtype !== undefined && options.dtype !== 'f32') throw new ArgumentError({ argument: 'dtype', detail: `only f32 compute is available, got ${options.dtype}` });
    const backend = await resolveBackend(options.backend ?? 'cpu');
    const ckpt = await openCheckpoint(dir);
    let graph: ModelGraph;
    try {
      graph = analyzeModel(ckpt);
    } finally {
      ckpt.close();
    }
    if (graph.descriptor.decoder === undefined || graph.kind !== 'causal') {
      throw new UnsupportedModelError({
        modelType: graph.modelType,
        reason: `tp plans ${graph.title} models but its engine does not run them yet (it runs decoder-only families)`,
        hint: 'tp plan still works for it',
      });
    }
    const spec = graph.descriptor.decoder(createConfigReader(ckpt.config));
    const plan = planTensorParallel(graph, {
      tpSize,
      vocabParallel: options.vocabParallel ?? false,
      computeDtype: 'F32',
      ...(options.policy !== undefined ? { policy: options.policy } : {}),
      ...(options.grain !== undefined ? { grain: options.grain } : {}),
    });
    const tokenizer = await loadTokenizer(ckpt.dir);
    const collective = createHostCollectiveInit(tpSize, 1 << 16, options.collectiveTimeoutMs ?? 60_000);
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
          collective,
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
              });
              for (const w of workers) w.removeAllListeners('message').removeAllListeners('error').removeAllListeners('exit');
              s.listen();
              resolve(s);
            }
          } else if (m.type === 'error') failAll(rankError(m.rank, debugMessage(m), m.code, m.failedRank, m.op));
        });
        worker.on('error', (e) => failAll(rankError(rank, e.message)));
        worker.on('exit', (code) => failAll(rankError(rank, `the worker exited with code ${code} while loading`)));
      }
    });
    return session;
  }

  /** Logits at every position of each sequence: one Float32Array of [length × vocab] per sequence. */
  logits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    return this.serial(async () => {
      const batch = this.prepare(sequences, 0);
      const logits = (await this.forward({ ...batch.step, logits: 'all' }))!;
      const vocab = logits.length / (batch.step.batch * batch.step.rows);
      return sequences.map((seq, b) => {
        const pad = batch.step.rows - seq.length;
        return logits.slice((b * batch.step.rows + pad) * vocab, (b + 1) * batch.step.rows * vocab);
      });
    });
  }

  /** Generate from text prompts (with the tokenizer) or token-id prompts. */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    return this.serial(async () => {
      const sequences = prompts.map((p) => (typeof p === 'string' ? this.encode(p) : [...p]));
      const maxNew = options.maxNewTokens ?? 32;
      if (!Number.isInteger(maxNew) || maxNew < 1) throw new ArgumentError({ argument: 'maxNewTokens', detail: `must be a positive integer, got ${maxNew}` });
      const eos = new Set([this.spec.eosTokenId ?? []].flat());
      const stopAtEos = options.stopAtEos ?? true;
      const random = seededRandom(options.seed ?? 0);
      const batch = this.prepare(sequences, maxNew);
      const { step } = batch;
      const results: GenerateResult[] = sequences.map((s) => ({ promptTokens: s, tokens: [], text: undefined, finishReason: 'length', ...(options.returnLogits ? { stepLogits: [] } : {}) }));
      const done = new Array<boolean>(sequences.length).fill(false);
      let logits = (await this.forward({ ...step, logits: 'last' }))!;
      const vocab = logits.length / step.batch;
      for (let i = 0; i < maxNew; i++) {
        const next = new Int32Array(step.batch);
        for (let b = 0; b < step.batch; b++) {
          const row = logits.subarray(b * vocab, (b + 1) * vocab);
          const token = done[b] ? (results[b]!.tokens.at(-1) ?? 0) : sampleToken(row, options, random);
          next[b] = token;
          if (done[b]) continue;
          results[b]!.tokens.push(token);
          results[b]!.stepLogits?.push(row.slice());
          options.onToken?.({ sequence: b, token, step: i });
          if (stopAtEos && eos.has(token)) {
            done[b] = true;
            results[b]!.finishReason = 'eos';
          }
        }
        if (i === maxNew - 1 || done.every(Boolean)) break;
        const slot = step.rows + i;
        const positions = new Int32Array(step.batch);
        for (let b = 0; b < step.batch; b++) {
          positions[b] = sequences[b]!.length + i;
          step.keyMask[b * batch.capacity + slot] = 1;
          step.keyPositions[b * batch.capacity + slot] = positions[b]!;
        }
        logits = (await this.forward({ ids: next, positions, batch: step.batch, rows: 1, start: slot, keyMask: step.keyMask, keyPositions: step.keyPositions, logits: 'last' }))!;
      }
      if (this.tokenizer) for (const r of results) r.text = this.tokenizer.decode(r.tokens);
      return results;
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

  async dispose(): Promise<void> {
    this.failure ??= new TpError('invalid-argument', 'the inference session was disposed');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  // ---- internals -------------------------------------------------------------------------------

  private prepare(sequences: ReadonlyArray<readonly number[]>, maxNew: number): { step: StepInput; capacity: number } {
    if (sequences.length === 0 || sequences.some((s) => s.length === 0)) throw new ArgumentError({ argument: 'prompts', detail: 'every prompt needs at least one token' });
    const vocab = Math.max(this.graph.geometry.vocab, this.graph.geometry.paddedVocab);
    for (const s of sequences) {
      const bad = s.find((t) => !Number.isInteger(t) || t < 0 || t >= vocab);
      if (bad !== undefined) throw new ArgumentError({ argument: 'tokens', detail: `token id ${bad} is outside the vocabulary (0 to ${vocab - 1})` });
    }
    const rows = Math.max(...sequences.map((s) => s.length));
    const capacity = rows + maxNew;
    const table = this.positionTableSize();
    if (table !== undefined && capacity > table) {
      throw new ArgumentError({
        argument: 'prompts',
        detail: `${rows} prompt tokens plus ${maxNew} new ones need ${capacity} positions, but this model's position table has ${table}; shorten the prompt or ask for fewer tokens`,
      });
    }
    const batch = sequences.length;
    const ids = new Int32Array(batch * rows);
    const positions = new Int32Array(batch * rows);
    const keyMask = new Uint8Array(batch * capacity);
    const keyPositions = new Int32Array(batch * capacity);
    const padId = this.spec.padTokenId ?? 0;
    sequences.forEach((seq, b) => {
      const pad = rows - seq.length;
      for (let t = 0; t < rows; t++) {
        const real = t >= pad;
        ids[b * rows + t] = real ? seq[t - pad]! : padId;
        positions[b * rows + t] = real ? t - pad : 1; // transformers gives padding position 1
        keyMask[b * capacity + t] = real ? 1 : 0;
        keyPositions[b * capacity + t] = real ? t - pad : 0;
      }
    });
    this.pendingReset = { batch, capacity };
    return { step: { ids, positions, batch, rows, start: 0, keyMask, keyPositions, logits: 'last' }, capacity };
  }

  private pendingReset: { batch: number; capacity: number } | undefined;

  /** Positions a learned position table can encode (undefined when positions are computed). */
  private positionTableSize(): number | undefined {
    if (this.spec.positions !== 'learned') return undefined;
    const table = this.graph.weights.find((w) => w.role === 'pos_embed' && w.shape.length === 2);
    return table === undefined ? this.spec.maxPositions : table.shape[0]! - (this.spec.positionOffset ?? 0);
  }

  private async forward(step: StepInput): Promise<Float32Array | undefined> {
    if (this.pendingReset) {
      await this.call({ type: 'reset', id: 0, ...this.pendingReset });
      this.pendingReset = undefined;
    }
    return (await this.call({ type: 'forward', id: 0, step })).logits;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.failure) throw this.failure;
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private call(message: ToWorker): Promise<{ logits?: Float32Array; stats?: WorkerStats[] }> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { waiting: new Set(this.workers.map((_, r) => r)), resolve, reject, stats: [] });
      for (const w of this.workers) w.postMessage({ ...message, id });
    });
  }

  private listen(): void {
    this.workers.forEach((worker, rank) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'done') {
          const p = this.pending.get(m.id);
          if (p === undefined) return;
          if (m.logits) p.logits = m.logits;
          if (m.stats) p.stats[m.rank] = m.stats;
          p.waiting.delete(m.rank);
          if (p.waiting.size === 0) {
            this.pending.delete(m.id);
            p.resolve({ ...(p.logits ? { logits: p.logits } : {}), stats: p.stats });
          }
        } else if (m.type === 'error') {
          const error = rankError(m.rank, debugMessage(m), m.code, m.failedRank, m.op);
          // A rank that only stopped because another failed: give the failing rank's own report a
          // moment to arrive, so the request fails with the real cause.
          if (/^rank \d+ failed; rank \d+ stopped/.test(m.message)) setTimeout(() => this.fail(error), 500);
          else this.fail(error);
        }
      });
      worker.on('error', (e) => this.fail(rankError(rank, e.message)));
      worker.on('exit', (code) => {
        this.exited.add(rank);
        if (this.failure === undefined) this.fail(rankError(rank, `the worker exited with code ${code}`));
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

/** With TP_DEBUG set, a rank's error carries its stack. */
function debugMessage(m: { message: string; stack?: string }): string {
  return process.env['TP_DEBUG'] && m.stack ? `${m.message}\n${m.stack}` : m.message;
}

/**
 * The error a request fails with. A rank that stopped because another failed, or that timed out
 * waiting for another, reports that other rank: the error names the rank at fault.
 */
function rankError(rank: number, message: string, code?: string, failedRank?: number, op?: string): Error {
  const secondary = /^rank (\d+) failed; rank \d+ stopped/.exec(message);
  const culprit = failedRank !== undefined && failedRank >= 0 ? failedRank : secondary ? Number(secondary[1]) : rank;
  return new RankFailedError(code === 'timeout' ? 'timeout' : 'rank-failed', culprit, op ?? 'request', secondary ? message : `rank ${rank}: ${message}`);
}

export function initInference(dir: string, options?: InferenceOptions): Promise<InferenceSession> {
  return InferenceSession.create(dir, options);
}
