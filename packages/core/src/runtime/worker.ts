/**
 * One rank in Node: a worker thread that loads its shard from the checkpoint folder and runs the
 * engine on its device when the coordinator asks. What a rank does is rank-host.ts (shared with a
 * browser's Web Workers); this file gives it the thread's port, the folder and the backend module.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Backend } from '../backend/index.js';
import { openCheckpoint } from '../checkpoint/index.js';
import type { ToWorker, WorkerData } from './messages.js';
import { hostRank } from './rank-host.js';

const data = workerData as WorkerData;
const port = parentPort!;

hostRank({
  init: { rank: data.rank, world: data.world, communicator: data.communicator, options: data.backendOptions },
  plan: data.plan,
  kvDtype: data.kvDtype,
  backend: async () => ((await import(data.backendUrl)) as { backend: Backend }).backend,
  openCheckpoint: () => openCheckpoint(data.dir),
  channel: {
    post: (message, transfer) => port.postMessage(message, transfer),
    listen: (handler) => port.on('message', (message: ToWorker) => handler(message)),
    close: () => port.close(),
  },
  memory: () => process.memoryUsage.rss(),
  ...(data.fault ? { fault: data.fault } : {}),
});
