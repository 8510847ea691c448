/**
 * The WebGPU backend against the backend conformance suite of @tp/core/testing, on whatever adapter
 * Dawn finds (Mesa's lavapipe in CI): every kernel against the host reference in every storage dtype,
 * KV caches, attention, MoE routing, errors, and collectives over worker threads at world 1–4; then
 * the f16 cases without shader-f16, the attention cases with their inputs packed into one binding, the
 * attention and KV-cache cases split over the keys, and the linear cases through the subgroup GEMV.
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

/**
 * The attention cases again with every call's keys split into pieces of 3 (backendOptions.
 * attentionSplitKeys): the flash-decoding path — a partial per piece, then a merge pass — which the
 * rank otherwise takes only for long caches with few rows. Pieces of 3 keys leave some pieces of a
 * causal row empty and cut the 197-key growth case into the most pieces allowed; every variant (ALiBi,
 * windows, soft caps, biases, relative tables, expectation scoring) and every KV-cache dtype goes through it.
 */
const splitKeys: Backend = {
  ...backend,
  createRank: (init) => backend.createRank({ ...init, options: { ...init.options, attentionSplitKeys: 3 } }),
};

describe(`WebGPU backend conformance, attention split over the keys${adapterSkip}`, () => {
  const attentionCases = conformanceCases(splitKeys, { worlds: [] }).filter((c) => /^(attention|KV cache growth|reorderKvCache)/.test(c.name));
  for (const c of attentionCases) it.skipIf(adapterSkip !== '')(`${c.name} (keys split in pieces of 3)`, c.run, 60_000);
});

/**
 * The linear cases again with the subgroup GEMV forced on (backendOptions.gemvSubgroups; a software
 * adapter uses it only when asked, see the README), in every weight dtype: decode-sized products (up
 * to 4 rows) reduce with subgroupAdd. Without the subgroups feature the option changes nothing, so
 * the cases then repeat the plain kernel, as the name says.
 */
const subgroupGemv: Backend = {
  ...backend,
  createRank: (init) => backend.createRank({ ...init, options: { ...init.options, gemvSubgroups: true } }),
};

describe(`WebGPU backend conformance, linear with subgroup reductions${adapterSkip}`, () => {
  const linearCases = conformanceCases(subgroupGemv, { worlds: [] }).filter((c) => c.name.startsWith('linear'));
  for (const c of linearCases) it.skipIf(adapterSkip !== '')(`${c.name} (subgroup GEMV where the device has subgroups)`, c.run, 60_000);
});
