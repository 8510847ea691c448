/**
 * The WebGPU backend against the backend conformance suite of @tp/core/testing, on whatever adapter
 * Dawn finds (Mesa's lavapipe in CI): every kernel against the host reference in every storage dtype,
 * KV caches, attention, MoE routing, errors, and collectives over worker threads at world 1–4; then
 * the f16 cases without shader-f16 and the attention cases with their inputs packed into one binding.
 */
import type { Backend } from '@tp/core';
import { conformanceCases } from '@tp/core/testing';
import { describe, it } from 'vitest';
import { adapterSkip, backend } from './helpers/adapter.js';

describe(`WebGPU backend conformance${adapterSkip}`, () => {
  for (const c of conformanceCases(backend)) it.skipIf(adapterSkip !== '')(c.name, c.run, 60_000);
});

/**
 * The same kernels on a device opened without shader-f16, where f16 weights are unpacked from u32
 * words in WGSL (what SwiftShader and many mobile GPUs need). Only the cases with f16 data: the others
 * do not read weights, and the collective cases do not depend on the weight format.
 */
const packedF16: Backend = {
  ...backend,
  createRank: (init) => backend.createRank({ ...init, options: { ...init.options, disableFeatures: ['shader-f16'] } }),
};

describe(`WebGPU backend conformance, f16 without shader-f16${adapterSkip}`, () => {
  const f16Cases = conformanceCases(packedF16, { dtypes: ['f16'], worlds: [] }).filter((c) => c.name.includes('f16'));
  for (const c of f16Cases) it.skipIf(adapterSkip !== '')(`${c.name} (f16 unpacked from u32)`, c.run, 60_000);
});

/**
 * The attention cases again on a rank that may bind only 6 storage buffers per shader (the plain
 * kernel's q, caches, key mask and output, and one more): every variant with more optional inputs than
 * a bias alone (ALiBi, relative tables) then reads them packed into one buffer, as it must on an
 * adapter with fewer bindings than a combination needs (SwiftShader allows 10; ALiBi + a bias + three
 * relative tables need 12).
 */
const fewBindings: Backend = {
  ...backend,
  createRank: (init) => backend.createRank({ ...init, options: { ...init.options, maxStorageBuffers: 6 } }),
};

describe(`WebGPU backend conformance, attention inputs packed into one binding${adapterSkip}`, () => {
  const attentionCases = conformanceCases(fewBindings, { dtypes: ['f32'], worlds: [] }).filter((c) => c.name.startsWith('attention'));
  for (const c of attentionCases) it.skipIf(adapterSkip !== '')(`${c.name} (inputs packed)`, c.run, 60_000);
});
