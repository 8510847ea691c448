/**
 * The model page of the headless-Chromium test: the golden Llama at TP=2 in a browser. The page reads
 * config.json and the safetensors header over HTTP, analyzes and plans as Node does, and starts two
 * Web Workers (model-worker.ts), each with its own adapter and device, loading only its share of the
 * weights. It then drives them as the Node session would: the logits of golden.json's input_ids at
 * every position, then 8 greedy tokens on the KV cache. Results go to `window.tpModel`.
 */
import {
  analyzeModel,
  createConfigReader,
  httpByteSource,
  openCheckpointFrom,
  planTensorParallel,
  promptBatch,
  type FromWorker,
  type StepInput,
  type StepResult,
  type ToWorker,
  type TPPlan,
} from '@tp/core/browser';
import { browserBackend } from '../../src/browser.js';
import type { ModelWorkerInit } from './model-worker.js';

export interface ModelResults {
  crossOriginIsolated: boolean;
  done: boolean;
  error?: string;
  /** Rank 0's logits, [batch][rows × vocab]. */
  logits?: number[][];
  /** Greedy: 8 new tokens per sequence and the logits that chose each, [batch][8][vocab]. */
  tokens?: number[][];
  stepLogits?: number[][][];
  /** Per rank: what the plan says it reads, and what it reported reading when ready. */
  ranks?: Array<{ bytesToRead: number; bytesRead: number; loadMs: number }>;
  fileSize?: number;
  headerBytes?: number;
  /** The plan the page made (from the headers it fetched). */
  plan?: TPPlan;
}

declare global {
  interface Window {
    tpModel?: ModelResults;
  }
}

const WORLD = 2;
const NEW_TOKENS = 8;
const BASE = new URL('/golden/llama/', location.href).href;

/** The coordinator's side of the rank messages: every rank gets each message; rank 0's result is the answer. */
class Ranks {
  private readonly pending = new Map<number, { waiting: Set<number>; result?: StepResult; resolve: (r: StepResult | undefined) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | undefined;
  readonly ready: Promise<Array<{ bytesRead: number; loadMs: number }>>;

  constructor(private readonly workers: Worker[]) {
    const ready: Array<{ bytesRead: number; loadMs: number }> = [];
    let settle: { resolve: (r: typeof ready) => void; reject: (e: Error) => void };
    this.ready = new Promise((resolve, reject) => (settle = { resolve, reject }));
    workers.forEach((worker, rank) => {
      worker.onerror = (e) => this.fail(new Error(`rank ${rank}: worker error ${e.message}`), settle.reject);
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === 'ready') {
          ready[m.rank] = { bytesRead: m.bytesRead, loadMs: m.loadMs };
          if (ready.filter(Boolean).length === workers.length) settle.resolve(ready);
        } else if (m.type === 'error') {
          this.fail(new Error(`rank ${m.rank} failed (${m.error.code ?? 'no code'}): ${m.error.message}`), settle.reject);
        } else if (m.type === 'done') {
          const call = this.pending.get(m.id);
          if (call === undefined) return;
          if (m.result) call.result = m.result;
          call.waiting.delete(m.rank);
          if (call.waiting.size === 0) {
            this.pending.delete(m.id);
            call.resolve(call.result);
          }
        }
      };
    });
  }

  private fail(error: Error, rejectReady: (e: Error) => void): void {
    this.failure ??= error;
    rejectReady(error);
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
  }

  call(message: Omit<ToWorker, 'id'>): Promise<StepResult | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { waiting: new Set(this.workers.map((_, r) => r)), resolve, reject });
      for (const w of this.workers) w.postMessage({ ...message, id });
    });
  }

  async forward(step: StepInput): Promise<StepResult> {
    return (await this.call({ type: 'forward', step } as Omit<ToWorker, 'id'>)) ?? {};
  }
}

const argmax = (row: Float32Array) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);

async function main(): Promise<void> {
  const state: ModelResults = { crossOriginIsolated, done: false };
  window.tpModel = state;
  let workers: Worker[] = [];
  try {
    const golden = (await (await fetch(`${BASE}golden.json`)).json()) as { input_ids: number[][] };
    const sequences = golden.input_ids;
    // The page reads the config and the header only: planning needs no weight byte.
    const ckpt = await openCheckpointFrom({ config: httpByteSource(`${BASE}config.json?rank=page`), files: [httpByteSource(`${BASE}model.safetensors?rank=page`)] });
    const graph = analyzeModel(ckpt);
    const spec = graph.descriptor.decoder!(createConfigReader(ckpt.config));
    const plan = planTensorParallel(graph, {
      tpSize: WORLD,
      storageDtype: 'auto',
      kvDtype: 'f32',
      supportedStorage: browserBackend.storageDtypes,
      supportedKv: browserBackend.kvDtypes,
    });
    state.plan = plan;
    state.fileSize = ckpt.files[0]!.fileSize;
    state.headerBytes = ckpt.files[0]!.dataOffset;
    ckpt.close();

    const communicator = browserBackend.createCommunicator(WORLD, { timeoutMs: 60_000 });
    workers = Array.from({ length: WORLD }, () => new Worker(new URL('./model-worker.js', import.meta.url), { type: 'module' }));
    const ranks = new Ranks(workers);
    workers.forEach((w, rank) => w.postMessage({ rank, world: WORLD, communicator, plan, kvDtype: 'f32', base: BASE } satisfies ModelWorkerInit));
    const ready = await ranks.ready;
    state.ranks = ready.map((r, rank) => ({ ...r, bytesToRead: plan.ranks[rank]!.bytesToRead }));

    // The logits at every prompt position (the prefill), as InferenceSession.logits asks for them.
    const first = promptBatch(sequences, spec.padTokenId ?? 0);
    await ranks.call({ type: 'reset', batch: first.batch } as Omit<ToWorker, 'id'>);
    const logits = (await ranks.forward({ ...first, logits: 'all', output: 'logits' })).logits!;
    const vocab = logits.length / (first.batch * first.rows);
    state.logits = sequences.map((_, b) => Array.from(logits.subarray(b * first.rows * vocab, (b + 1) * first.rows * vocab)));

    // Greedy on the KV cache: the last prompt row chose the first token; each step feeds one token.
    const lastRows = sequences.map((_, b) => logits.slice(((b + 1) * first.rows - 1) * vocab, (b + 1) * first.rows * vocab));
    const steps: Float32Array[][] = lastRows.map((row) => [row]);
    const tokens: number[][] = lastRows.map((row) => [argmax(row)]);
    for (let i = 0; i < NEW_TOKENS - 1; i++) {
      const ids = Int32Array.from(tokens, (t) => t[i]!);
      const positions = Int32Array.from(sequences, (s) => s.length + i);
      const out = (await ranks.forward({ ids, positions, batch: first.batch, rows: 1, start: first.rows + i, keyMask: new Int32Array(first.batch).fill(1), keyPositions: positions, logits: 'last', output: 'logits' })).logits!;
      sequences.forEach((_, b) => {
        const row = out.slice(b * vocab, (b + 1) * vocab);
        steps[b]!.push(row);
        tokens[b]!.push(argmax(row));
      });
    }
    state.tokens = tokens;
    state.stepLogits = steps.map((rows) => rows.map((r) => Array.from(r)));
    await ranks.call({ type: 'dispose' } as Omit<ToWorker, 'id'>);
  } catch (error) {
    state.error = (error as Error)?.stack ?? String(error);
  } finally {
    for (const w of workers) w.terminate();
  }
  state.done = true;
}

void main();
