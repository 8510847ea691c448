/**
 * The browser side of the backend: a rank on `navigator.gpu` (or any GPU object), for a page or a Web
 * Worker. Nothing here imports Node; the Node entry (index.ts) supplies Dawn's `create()` instead.
 *
 * Today this is what the headless-Chromium test runs (kernels, and collectives between two Web
 * Workers). The engine's session still loads checkpoints from the file system and starts
 * worker_threads, so a model runs in a browser only once @tp/core has a browser entry and reads
 * safetensors over HTTP Range requests.
 */
import { createHostCollectiveInit, TpError, type CommunicatorInit, type RankInit } from '@tp/core';
import { openDevice } from './device.js';
import { createGuardBuffer } from './guard.js';
import { WebGpuRank } from './rank.js';

/** Shared memory for `world` ranks in Web Workers (the page must be cross-origin isolated). */
export function browserCommunicator(world: number, timeoutMs: number, slotFloats = 1 << 16): CommunicatorInit {
  return { ...createHostCollectiveInit(world, slotFloats, timeoutMs), guard: createGuardBuffer(world) };
}

/** Open this context's adapter and device and make rank `init.rank` on it. */
export async function createBrowserRank(init: RankInit, gpu: GPU = navigator.gpu): Promise<WebGpuRank> {
  if (gpu === undefined) throw new TpError('backend-missing', 'WebGPU is not available here (navigator.gpu is undefined): use a browser with WebGPU enabled, on a secure origin');
  const guard = WebGpuRank.guardFor(init);
  const without = Array.isArray(init.options['disableFeatures']) ? (init.options['disableFeatures'] as string[]) : [];
  const opened = await openDevice(gpu, `tp rank ${init.rank}`, without, guard);
  return guard.call('creating the rank', () => new WebGpuRank(opened, init, guard));
}
