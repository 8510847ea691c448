/** Synthetic checkpoints from @tp/tiny-models, written under os.tmpdir() and removed after the file. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { writeTinyModel, type TinyModelOptions, type TinyModelResult } from '@tp/tiny-models';

/**
 * Call once at the top of a test file: returns `tiny(name, options)`, which writes the checkpoint once
 * (later calls with the same name reuse it); the folder is removed after the file's tests.
 */
export function useTinyModels(): (name: string, options: TinyModelOptions) => Promise<TinyModelResult> {
  let root: Promise<string> | undefined;
  const made = new Map<string, Promise<TinyModelResult>>();
  afterAll(async () => {
    if (root !== undefined) await rm(await root, { recursive: true, force: true });
  });
  return (name, options) => {
    root ??= mkdtemp(path.join(os.tmpdir(), 'tp-backend-cpu-test-'));
    let result = made.get(name);
    if (result === undefined) {
      result = root.then((r) => writeTinyModel(path.join(r, name), options));
      made.set(name, result);
    }
    return result;
  };
}
