/**
 * One rank: a worker thread that loads its shard from disk and runs the decoder on its device when
 * the coordinator asks. Any failure is reported with the rank, its error code and fields, and then the
 * worker waits to be terminated; collectives of the other ranks see the abort and stop too.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Backend, Rank } from '../backend/index.js';
import { openCheckpoint } from '../checkpoint/index.js';
import { TpError } from '../errors/index.js';
import { analyzeModel, createConfigReader, type ConfigReader, type ModelGraph } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { DecoderEngine } from './decoder.js';
import { ReformerEngine } from './reformer/engine.js';
import { EncoderEngine } from './encoder.js';
import { PerceiverEngine } from './perceiver.js';
import { Seq2SeqEngine } from './seq2seq.js';
import { refuseGap, type Engine } from './engine.js';
import type { LoadedShard } from './load.js';
import { loadShard } from './load.js';
import type { FromWorker, ToWorker, WorkerData, WorkerError, WorkerStats } from './messages.js';

const data = workerData as WorkerData;
const port = parentPort!;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
let peakRss = 0;
let backend: Backend | undefined;
/** This rank's device, once created (for memory reports and dispose). */
let device: Rank | undefined;
const sampleRss = () => {
  const rss = process.memoryUsage.rss();
  peakRss = Math.max(peakRss, rss);
  return rss;
};

/** A TpError's own fields, as far as they survive a structured clone. */
function serializable(error: unknown): WorkerError {
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

function fail(id: number | null, error: unknown): void {
  if (backend !== undefined) backend.abortCommunicator(data.communicator, data.rank);
  post({ type: 'error', id, rank: data.rank, error: serializable(error) });
}

/** The engine for the graph's kind: a decoder stack, an encoder stack, an encoder–decoder. */
function createEngine(rank: Rank, graph: ModelGraph, plan: TPPlan, shard: LoadedShard, config: ConfigReader): Engine {
  refuseGap(graph);
  const d = graph.descriptor;
  switch (graph.kind) {
    case 'causal': {
      const spec = d.decoder!(config);
      // Reformer re-runs each sequence whole every step (its LSH buckets change as it grows): no KV cache.
      if (spec.reformer !== undefined) return new ReformerEngine(rank, graph, plan, shard, spec, data.kvDtype);
      return new DecoderEngine(rank, graph, plan, shard, spec, data.kvDtype);
    }
    case 'encoder': {
      const spec = d.encoder!(config);
      // Perceiver IO: a latent array between the inputs and the outputs instead of a token stack.
      if (spec.perceiver !== undefined) return new PerceiverEngine(rank, graph, plan, shard, spec, data.kvDtype);
      return new EncoderEngine(rank, graph, plan, shard, spec, data.kvDtype);
    }
    case 'seq2seq':
      return new Seq2SeqEngine(rank, graph, plan, shard, d.seq2seq!(config), data.kvDtype);
    default:
      throw new TpError('unsupported-model', `${graph.title} (${graph.kind}) has no engine`);
  }
}

async function start(): Promise<Engine> {
  const started = Date.now();
  backend = ((await import(data.backendUrl)) as { backend: Backend }).backend;
  const ckpt = await openCheckpoint(data.dir);
  const graph = analyzeModel(ckpt);
  const config = createConfigReader(ckpt.config);
  refuseGap(graph);
  device = await backend.createRank({ rank: data.rank, world: data.world, communicator: data.communicator, options: data.backendOptions });
  let lastReport = 0;
  const shard = loadShard(ckpt, data.plan, device, (p) => {
    const now = Date.now();
    if (now - lastReport > 100 || p.bytesRead === p.bytesTotal) {
      lastReport = now;
      post({ type: 'progress', rank: data.rank, bytesRead: p.bytesRead, bytesTotal: p.bytesTotal });
    }
  });
  ckpt.close();
  sampleRss();
  const engine = createEngine(device, graph, data.plan, shard, config);
  post({ type: 'ready', rank: data.rank, bytesRead: shard.bytesRead, loadMs: Date.now() - started });
  return engine;
}

let forwards = 0;
let queue: Promise<Engine | undefined> = start().then(
  (engine) => engine,
  (error) => {
    fail(null, error);
    return undefined;
  },
);

port.on('message', (message: ToWorker) => {
  queue = queue.then(async (engine) => {
    if (message.type === 'dispose') {
      // Reaches the device even when loading failed; then the thread ends by itself.
      await device?.dispose();
      device = undefined;
      post({ type: 'done', id: message.id, rank: data.rank });
      port.close();
      return undefined;
    }
    if (engine === undefined) return engine;
    try {
      switch (message.type) {
        case 'reset':
          engine.reset(message.batch);
          post({ type: 'done', id: message.id, rank: data.rank });
          break;
        case 'forward': {
          if (data.fault && data.fault.rank === data.rank && forwards >= data.fault.afterForwards) {
            throw new Error(`injected fault in rank ${data.rank} (test hook)`) // deliberately not a TpError: an unexpected failure;
          }
          forwards++;
          const result = await engine.forward(message.step);
          sampleRss();
          const transfer = result ? [result.logits, result.ids, result.topk?.values, result.topk?.indices, result.hidden, result.pooled].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : [])) : [];
          post({ type: 'done', id: message.id, rank: data.rank, ...(result ? { result } : {}) }, transfer);
          break;
        }
        case 'stats': {
          const stats: WorkerStats = { rssBytes: sampleRss(), peakRssBytes: peakRss, deviceBytes: device?.memoryBytes() ?? 0, cachedSlots: engine.cachedSlots };
          post({ type: 'done', id: message.id, rank: data.rank, stats });
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
