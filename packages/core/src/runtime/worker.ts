/**
 * One rank: a worker thread that loads its shard from disk and runs the decoder on its device when
 * the coordinator asks. Any failure is reported with the rank and then the worker waits to be
 * terminated; collectives of the other ranks see the abort flag and stop too.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { abortHostCollective, RankFailedError, type Backend } from '../backend/index.js';
import { openCheckpoint } from '../checkpoint/index.js';
import { TpError } from '../errors/index.js';
import { analyzeModel, createConfigReader } from '../graph/index.js';
import { DecoderEngine } from './decoder.js';
import { loadShard } from './load.js';
import type { FromWorker, ToWorker, WorkerData, WorkerStats } from './messages.js';

const data = workerData as WorkerData;
const port = parentPort!;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
let peakRss = 0;
/** This rank's device, once created (for memory reports). */
let rankDevice: { memoryBytes(): number } | undefined;
const sampleRss = () => {
  const rss = process.memoryUsage.rss();
  peakRss = Math.max(peakRss, rss);
  return rss;
};

function fail(id: number | null, error: unknown): void {
  abortHostCollective(data.collective, data.rank);
  const e = error as Error & { code?: string };
  post({
    type: 'error',
    id,
    rank: data.rank,
    message: e?.message ?? String(error),
    ...(TpError.isInstance(error) ? { code: error.code } : {}),
    ...(error instanceof RankFailedError ? { failedRank: error.rank, op: error.op } : {}),
    ...(e?.stack ? { stack: e.stack } : {}),
  });
}

async function start(): Promise<DecoderEngine> {
  const started = Date.now();
  const module = (await import(data.backendUrl)) as { backend: Backend };
  const ckpt = await openCheckpoint(data.dir);
  const graph = analyzeModel(ckpt);
  const spec = graph.descriptor.decoder!(createConfigReader(ckpt.config));
  const device = await module.backend.createRank({ rank: data.rank, world: data.world, collective: data.collective, options: data.backendOptions });
  let lastReport = 0;
  const shard = loadShard(ckpt, graph, data.plan, device, (p) => {
    const now = Date.now();
    if (now - lastReport > 100 || p.bytesRead === p.bytesTotal) {
      lastReport = now;
      post({ type: 'progress', rank: data.rank, bytesRead: p.bytesRead, bytesTotal: p.bytesTotal });
    }
  });
  ckpt.close();
  sampleRss();
  post({ type: 'ready', rank: data.rank, bytesRead: shard.bytesRead, loadMs: Date.now() - started });
  rankDevice = device;
  return new DecoderEngine(device, graph, data.plan, shard, spec);
}

let forwards = 0;
let queue: Promise<unknown> = start().then(
  (engine) => engine,
  (error) => {
    fail(null, error);
    return undefined;
  },
);

port.on('message', (message: ToWorker) => {
  queue = queue.then(async (engine) => {
    if (!(engine instanceof DecoderEngine)) return engine;
    try {
      switch (message.type) {
        case 'reset':
          engine.reset(message.batch, message.capacity);
          post({ type: 'done', id: message.id, rank: data.rank });
          break;
        case 'forward': {
          if (data.fault && data.fault.rank === data.rank && forwards >= data.fault.afterForwards) {
            throw new Error(`injected fault in rank ${data.rank} (test hook)`);
          }
          forwards++;
          const logits = await engine.forward(message.step);
          sampleRss();
          post({ type: 'done', id: message.id, rank: data.rank, ...(logits ? { logits } : {}) }, logits ? [logits.buffer as ArrayBuffer] : []);
          break;
        }
        case 'stats': {
          const stats: WorkerStats = { rssBytes: sampleRss(), peakRssBytes: peakRss, deviceBytes: rankDevice?.memoryBytes() ?? 0 };
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
