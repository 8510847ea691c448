/**
 * Running the engine from tests: the CPU backend, sessions that are always disposed, and the error
 * measure every comparison uses.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import { initInference, TpError, type Backend, type InferenceOptions, type InferenceSession } from '@tp/core';
import { backend as sourceBackend } from '../../src/index.js';

export { sourceBackend };

/**
 * The backend the tests pass to initInference. Each rank's worker thread imports `backend.moduleUrl`.
 * Imported from ../src under vitest, that URL is a .ts file, which a Node 20 worker cannot load
 * (see backend-module.test.ts), so the ranks load the built backend (dist/index.js, made by
 * `pnpm build`) instead; the object on the main thread is still the one from ../src.
 */
export const backend: Backend = workerLoadable(sourceBackend);

function workerLoadable(b: Backend): Backend {
  if (!b.moduleUrl.endsWith('.ts')) return b;
  const built = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
  if (!existsSync(built)) throw new Error(`the CPU backend is not built (${built} is missing); run pnpm build first`);
  return { ...b, moduleUrl: pathToFileURL(built).href };
}

/** Open a session, run `fn`, and always dispose it. */
export async function withSession<T>(dir: string, options: InferenceOptions, fn: (s: InferenceSession) => Promise<T>): Promise<T> {
  const session = await initInference(dir, { backend, ...options });
  try {
    return await fn(session);
  } finally {
    await session.dispose();
  }
}

/** max |ours − ref| / (max(ref) − min(ref)): the error relative to the spread of the reference. */
export function relativeError(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) throw new Error(`length ${ours.length} differs from the reference's ${ref.length}`);
  let max = -Infinity;
  let min = Infinity;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    if (r > max) max = r;
    if (r < min) min = r;
    const d = Math.abs(ours[i]! - r);
    if (!(d <= err)) err = d; // NaN propagates as a failure
  }
  if (!(max > min)) throw new Error('the reference has no spread');
  return err / (max - min);
}

/** Concatenate rows (e.g. step logits) into one array. */
export function concat(rows: readonly ArrayLike<number>[]): Float32Array {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(Array.from(r), at);
    at += r.length;
  }
  return out;
}

/** Await a promise that must reject; returns the error. */
export async function rejection(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** Assert `promise` rejects with a TpError of `code` (and these fields); returns it. */
export async function expectTpError(promise: Promise<unknown>, code: string, fields: Record<string, unknown> = {}): Promise<TpError & Record<string, unknown>> {
  const error = await rejection(promise);
  expect(TpError.isInstance(error), `${error.name}: ${error.message}`).toBe(true);
  expect((error as unknown as TpError).code, error.message).toBe(code);
  for (const [k, v] of Object.entries(fields)) expect(error[k], `${k} of ${error.message}`).toEqual(v);
  return error as TpError & Record<string, unknown>;
}

/** Poll until `condition()` holds or `ms` pass; returns whether it held. */
export async function waitUntil(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}
