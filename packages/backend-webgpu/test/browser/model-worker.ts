/**
 * One rank of the browser model test: a Web Worker that, given its rank, the plan and the shared
 * communicator, runs @tp/core's rank host with the browser backend — its own adapter and device —
 * reading only its own byte ranges of the safetensors file over HTTP (Range requests). The URLs carry
 * `?rank=` so the test's server can count the bytes each rank fetched.
 */
import { hostRank, httpByteSource, openCheckpointFrom, type CommunicatorInit, type StorageDtype, type ToWorker, type TPPlan } from '@tp/core/browser';
import { browserBackend } from '../../src/browser.js';

export interface ModelWorkerInit {
  rank: number;
  world: number;
  communicator: CommunicatorInit;
  plan: TPPlan;
  kvDtype: StorageDtype;
  /** The checkpoint folder's URL, ending in '/'. */
  base: string;
}

const scope = self as unknown as DedicatedWorkerGlobalScope;

scope.onmessage = (event: MessageEvent<ModelWorkerInit>) => {
  const { rank, world, communicator, plan, kvDtype, base } = event.data;
  scope.onmessage = null;
  hostRank({
    init: { rank, world, communicator, options: {} },
    plan,
    kvDtype,
    backend: async () => browserBackend,
    openCheckpoint: () => openCheckpointFrom({ config: httpByteSource(`${base}config.json?rank=${rank}`), files: [httpByteSource(`${base}model.safetensors?rank=${rank}`)] }),
    channel: {
      post: (message, transfer) => scope.postMessage(message, transfer),
      listen: (handler) => {
        scope.onmessage = (e: MessageEvent<ToWorker>) => handler(e.data);
      },
      close: () => scope.close(),
    },
  });
};
