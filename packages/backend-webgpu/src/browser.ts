/**
 * The browser side of the backend (`@tp/backend-webgpu/browser`): a rank on `navigator.gpu` (or any
 * GPU object) in a page or a Web Worker, collectives between Web Workers through SharedArrayBuffer
 * (the page must be cross-origin isolated: served with COOP `same-origin` and COEP `require-corp`).
 * Nothing here imports Node; bundlers resolve `@tp/core` to its browser entry (`@tp/core/browser`).
 *
 * A model runs in a browser at any TP: the page calls `openWebModel` of @tp/core/browser with
 * `browserBackend`, which reads the checkpoint's config and headers over HTTP, plans it and starts one
 * Web Worker per rank; each worker calls `serveWebRank(browserBackend)`, so it opens its own adapter
 * and device and fetches only its own byte ranges of the safetensors files (HTTP Range requests). The
 * page then has `logits`, `generate` (greedy, sampling, beams) and the tokenizer, as in Node.
 * Tested in headless Chromium (test/browser.test.ts): every single-rank conformance case, every
 * collective between two Web Workers, and the golden Llama at TP=2 against Hugging Face's logits and
 * greedy tokens.
 */
import { abortHostCollective, BACKEND_INTERFACE_VERSION, createHostCollectiveInit, TpError, type Backend, type CommunicatorInit, type HostCollectiveInit, type RankInit } from '@tp/core';
import { adapterName, openDevice, summarizeAdapter } from './device.js';
import { abortGuard, createGuardBuffer } from './guard.js';
import { KV_DTYPES, WebGpuRank } from './rank.js';

/** Shared memory for `world` ranks in Web Workers (the page must be cross-origin isolated). */
export function browserCommunicator(world: number, timeoutMs: number, slotFloats = 1 << 16): CommunicatorInit {
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    throw new TpError('backend-unavailable', 'SharedArrayBuffer needs a cross-origin isolated page: serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp');
  }
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

/**
 * The backend as a page or a Web Worker uses it: what `hostRank` needs (createRank, abortCommunicator)
 * and what a planner asks (storage and KV dtypes). `moduleUrl` is this module's own URL; browser ranks
 * are started by the page, not by importing it.
 */
export const browserBackend: Backend = {
  interfaceVersion: BACKEND_INTERFACE_VERSION,
  name: 'webgpu',
  moduleUrl: import.meta.url,
  storageDtypes: ['f16', 'bf16', 'f32'],
  kvDtypes: KV_DTYPES,
  async probe() {
    const adapter = typeof navigator === 'undefined' || navigator.gpu === undefined ? null : await navigator.gpu.requestAdapter();
    if (adapter === null) return { available: false, reason: 'this browser offers no WebGPU adapter (navigator.gpu is missing or requestAdapter() returned null)', devices: [] };
    const summary = summarizeAdapter(adapter);
    return { available: true, devices: [{ name: adapterName(summary), details: { vendor: summary.vendor, architecture: summary.architecture, software: summary.fallback, features: summary.features } }] };
  },
  // Browsers do not report device memory.
  rankMemoryLimit: async () => undefined,
  createCommunicator: (world, options) => browserCommunicator(world, options.timeoutMs),
  abortCommunicator(init, rank) {
    // As the Node entry does: wake the ranks blocked in a collective, then those waiting on the guard.
    abortHostCollective(init as HostCollectiveInit, rank);
    const guard = init['guard'];
    if (guard instanceof SharedArrayBuffer) abortGuard(guard, rank);
  },
  createRank: (init) => createBrowserRank(init),
};

export { DeviceLostError, WebGpuRank } from './rank.js';
export type { AdapterSummary } from './device.js';
