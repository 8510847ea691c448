/**
 * The CUDA backend against @tp/core/testing's conformance suite — every kernel against the reference
 * kernels, every dtype, attention, KV growth, routing, collectives at world 1–4 in worker threads,
 * failing and late ranks. It needs a GPU: without one (this suite's machines) it is skipped, saying
 * why; tools/device/check.sh runs the same cases on a GPU host.
 */
import { conformanceCases } from '@tp/core/testing';
import { describe, it } from 'vitest';
import { backend } from '../src/index.js';

const probe = await backend.probe();
const reason = probe.available ? '' : (probe.reason ?? 'unavailable').split('\n')[0]!;

describe('CUDA backend conformance', () => {
  if (!probe.available) {
    it.skip(`skipped: no usable GPU here — ${reason}`, () => {});
    return;
  }
  for (const c of conformanceCases(backend)) it(c.name, c.run, 120_000);
});
