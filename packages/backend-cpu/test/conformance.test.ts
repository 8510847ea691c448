/**
 * The CPU backend against the backend conformance suite of @tp/core/testing: every kernel against the
 * host reference, uploads and dtypes, KV caches, attention, MoE routing, errors, and collectives over
 * worker threads at world 1–4 (those workers import backend.moduleUrl, the built dist/index.js).
 */
import { conformanceCases } from '@tp/core/testing';
import { describe, it } from 'vitest';
import { backend } from '../src/index.js';

describe('CPU backend conformance', () => {
  for (const c of conformanceCases(backend)) it(c.name, c.run, 60_000);
});
