/**
 * One rank, wherever it runs: it opens the checkpoint, makes its device, loads its own shard, creates
 * the engine for the model's kind and answers the coordinator's messages (messages.ts) one at a time.
 * Any failure is reported with the rank, its error code and fields; the rank then aborts the
 * communicator, so the other ranks' collectives stop too, and waits to be disposed. The Node rank
 * worker (worker.ts: a worker thread, a checkpoint folder) and a browser's Web Worker (byte sources
 * over HTTP Range requests, a WebGPU device on navigator.gpu) both run this; they differ only in the
 * channel, the checkpoint and the backend they pass.
 */
import type { Backend, DeviceTensor, Rank, RankInit, StorageDtype } from '../backend/index.js';
import { sliceLayout, type ByteRun, type Checkpoint, type SourceCheckpoint } from '../checkpoint/index.js';
import { TpError } from '../errors/index.js';
import { analyzeModel, createConfigReader, type ConfigReader, type ModelGraph } from '../graph/index.js';
import type { TPPlan, TensorPlan } from '../plan/index.js';
import { DecoderEngine } from './decoder.js';
import { EncoderEngine } from './encoder.js';
import { refuseGap, type Engine } from './engine.js';
import { loadShard, type LoadedShard, type LoadProgress } from './load.js';
import type { FromWorker, ToWorker, WorkerError, WorkerStats } from './messages.js';
import { PerceiverEngine } from './perceiver.js';
import { ReformerEngine } from './reformer/engine.js';
import { Seq2SeqEngine } from './seq2seq.js';

/** How a rank talks to its coordinator: a worker thread's port, a Web Worker's `self`. */
export interface RankChannel {
  post(message: FromWorker, transfer: ArrayBuffer[]): void;
  /** Calls `handler` with each message from the coordinator, in the order they came. */
  listen(handler: (message: ToWorker) => void): void;
  /** After dispose: stop listening, so that the thread or the worker can end. */
  close(): void;
}

export interface RankHostOptions {
  /** This rank: its index, the world, the communicator and the backend options. */
  init: RankInit;
  plan: TPPlan;
  kvDtype: StorageDtype;
  /** The backend whose createRank makes this rank's device (loaded first: a failure after it aborts its communicator). */
  backend: () => Promise<Pick<Backend, 'createRank' | 'abortCommunicator'>>;
  /** The checkpoint: a folder (openCheckpoint) or byte sources (openCheckpointFrom). Closed once the shard is loaded. */
  openCheckpoint: () => Promise<Checkpoint>;
  channel: RankChannel;
  /** Resident memory of the process now, for stats (Node: process RSS); 0 when absent (browsers do not tell). */
  memory?: () => number;
  /** Test hook: throw in this rank after this many forward passes. */
  fault?: { rank: number; afterForwards: number };
}

/** A checkpoint opened from byte sources is fetched this many bytes of the rank's share at a time. */
export const PREFETCH_WINDOW_BYTES = 64 * 1024 * 1024;

/** The engine for the graph's kind: a decoder stack, an encoder stack, an encoder–decoder. */
export function createEngine(rank: Rank, graph: ModelGraph, plan: TPPlan, shard: LoadedShard, config: ConfigReader, kvDtype: StorageDtype): Engine {
  refuseGap(graph);
  const d = graph.descriptor;
  switch (graph.kind) {
    case 'causal': {
      const spec = d.decoder!(config);
      // Reformer re-runs each sequence whole every step (its LSH buckets change as it grows): no KV cache.
      if (spec.reformer !== undefined) return new ReformerEngine(rank, graph, plan, shard, spec, kvDtype);
      return new DecoderEngine(rank, graph, plan, shard, spec, kvDtype);
    }
    case 'encoder': {
      const spec = d.encoder!(config);
      // Perceiver IO: a latent array between the inputs and the outputs instead of a token stack.
      if (spec.perceiver !== undefined) return new PerceiverEngine(rank, graph, plan, shard, spec, kvDtype);
      return new EncoderEngine(rank, graph, plan, shard, spec, kvDtype);
    }
    case 'seq2seq':
      return new Seq2SeqEngine(rank, graph, plan, shard, d.seq2seq!(config), kvDtype);
    default:
      throw new TpError('unsupported-model', `${graph.title} (${graph.kind}) has no engine`);
  }
}

const isSourceCheckpoint = (ckpt: Checkpoint): ckpt is SourceCheckpoint => typeof (ckpt as Partial<SourceCheckpoint>).prefetch === 'function';

/** The byte runs rank `rank` reads of one planned tensor (its ranges along the split dimension). */
export function tensorRuns(ckpt: Checkpoint, t: TensorPlan, rank: number): readonly ByteRun[] {
  return sliceLayout(ckpt.tensor(t.name), { dim: t.dim, ranges: t.ranks[rank]!.ranges }).runs;
}

/**
 * loadShard for any checkpoint. A folder is read as it is loaded; a checkpoint opened from byte sources
 * is fetched first, a window of whole tensors at a time (about `windowBytes` of this rank's share, a
 * larger tensor alone), each window then loaded by loadShard: only the rank's own runs are fetched,
 * and host memory holds one window, not the share.
 */
export async function loadRankShard(
  ckpt: Checkpoint,
  plan: TPPlan,
  rank: Rank,
  onProgress?: (p: LoadProgress) => void,
  windowBytes = PREFETCH_WINDOW_BYTES,
): Promise<LoadedShard> {
  if (!isSourceCheckpoint(ckpt)) return loadShard(ckpt, plan, rank, onProgress);
  const tensors = new Map<string, DeviceTensor>();
  let tiedLmHead: DeviceTensor | undefined;
  let bytesRead = 0;
  let window: TensorPlan[] = [];
  let runs: ByteRun[] = [];
  let windowSize = 0;
  const flush = async () => {
    if (window.length === 0) return;
    await ckpt.prefetch(runs);
    const before = bytesRead;
    // loadShard loads the tensors its plan lists: this window's, with the rest of the plan as it is.
    const part = loadShard(ckpt, { ...plan, tensors: window }, rank, onProgress && ((p) => onProgress({ ...p, bytesRead: before + p.bytesRead })));
    for (const [name, tensor] of part.tensors) tensors.set(name, tensor);
    tiedLmHead ??= part.tiedLmHead;
    bytesRead += part.bytesRead;
    window = [];
    runs = [];
    windowSize = 0;
  };
  for (const t of plan.tensors) {
    if (!t.read) continue;
    const mine = tensorRuns(ckpt, t, rank.rank);
    const size = mine.reduce((n, r) => n + r.length, 0);
    if (windowSize > 0 && windowSize + size > windowBytes) await flush();
    window.push(t);
    // Not push(...mine): a weight split along its second dimension has a run per row (vocab rows of an LM head).
    for (const run of mine) runs.push(run);
    windowSize += size;
  }
  await flush();
  return { tensors, tiedLmHead, bytesRead };
}

/** A TpError's own fields, as far as they survive a structured clone. */
export function serializableError(error: unknown): WorkerError {
  const e = error as Error & { code?: string };
  const out: WorkerError = { message: e?.message ?? String(error), ...(e?.name ? { name: e.name } : {}), ...(e?.stack ? { stack: e.stack } : {}) };
  if (TpError.isInstance(error)) {
    out.code = error.code;
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(error)) {
      if (key === 'code' || value === undefined || typeof value === 'function') continue;
      if (['string', 'number', 'boolean'].includes(typeof value) || Array.isArray(value)) fields[key] = value;
    }
    out.fields = fields;
  }
  return out;
}

/** Start rank `options.init.rank`: load, post `ready` (or `error`), then answer messages until disposed. */
export function hostRank(options: RankHostOptions): void {
  const { init, plan, kvDtype, channel } = options;
  const me = init.rank;
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => channel.post(m, transfer);
  let backend: Pick<Backend, 'createRank' | 'abortCommunicator'> | undefined;
  /** This rank's device, once created (for memory reports and dispose). */
  let device: Rank | undefined;
  let peakMemory = 0;
  const sampleMemory = () => {
    const now = options.memory?.() ?? 0;
    peakMemory = Math.max(peakMemory, now);
    return now;
  };
  const fail = (id: number | null, error: unknown) => {
    if (backend !== undefined) backend.abortCommunicator(init.communicator, me);
    post({ type: 'error', id, rank: me, error: serializableError(error) });
  };

  const start = async (): Promise<Engine> => {
    const started = Date.now();
    backend = await options.backend();
    const ckpt = await options.openCheckpoint();
    let shard: LoadedShard;
    let graph: ModelGraph;
    try {
      graph = analyzeModel(ckpt);
      refuseGap(graph);
      device = await backend.createRank(init);
      let lastReport = 0;
      shard = await loadRankShard(ckpt, plan, device, (p) => {
        const now = Date.now();
        if (now - lastReport > 100 || p.bytesRead === p.bytesTotal) {
          lastReport = now;
          post({ type: 'progress', rank: me, bytesRead: p.bytesRead, bytesTotal: p.bytesTotal });
        }
      });
    } finally {
      ckpt.close();
    }
    sampleMemory();
    const engine = createEngine(device, graph, plan, shard, createConfigReader(ckpt.config), kvDtype);
    post({ type: 'ready', rank: me, bytesRead: shard.bytesRead, loadMs: Date.now() - started });
    return engine;
  };

  let forwards = 0;
  let queue: Promise<Engine | undefined> = start().then(
    (engine) => engine,
    (error) => {
      fail(null, error);
      return undefined;
    },
  );

  channel.listen((message) => {
    queue = queue.then(async (engine) => {
      if (message.type === 'dispose') {
        // Reaches the device even when loading failed; then the thread ends by itself.
        await device?.dispose();
        device = undefined;
        post({ type: 'done', id: message.id, rank: me });
        channel.close();
        return undefined;
      }
      if (engine === undefined) return engine;
      try {
        switch (message.type) {
          case 'reset':
            engine.reset(message.batch);
            post({ type: 'done', id: message.id, rank: me });
            break;
          case 'forward': {
            if (options.fault && options.fault.rank === me && forwards >= options.fault.afterForwards) {
              throw new Error(`injected fault in rank ${me} (test hook)`); // deliberately not a TpError: an unexpected failure
            }
            forwards++;
            const result = await engine.forward(message.step);
            sampleMemory();
            const transfer = result ? [result.logits, result.ids, result.topk?.values, result.topk?.indices, result.hidden, result.pooled].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : [])) : [];
            post({ type: 'done', id: message.id, rank: me, ...(result ? { result } : {}) }, transfer);
            break;
          }
          case 'stats': {
            const stats: WorkerStats = { rssBytes: sampleMemory(), peakRssBytes: peakMemory, deviceBytes: device?.memoryBytes() ?? 0, cachedSlots: engine.cachedSlots };
            post({ type: 'done', id: message.id, rank: me, stats });
            break;
          }
        }
        return engine;
      } catch (error) {
        fail(message.id, error);
        return undefined;
      }
    });
  });
}
