/**
 * The backend object imported from ../src, passed to initInference as it is. Each rank's worker imports
 * `backend.moduleUrl`; from the sources under vitest that is src/index.ts, which a Node 20 worker
 * thread cannot load. (The other test files pass a copy whose moduleUrl is the built dist/index.js:
 * see helpers/engine.ts.)
 */
import { expect, test } from 'vitest';
import { initInference } from '@tp/core';
import { sourceBackend } from './helpers/engine.js';
import { useTinyModels } from './helpers/tiny.js';

const tiny = useTinyModels();

test('initInference runs its ranks with the backend object imported from ../src/index.js', async () => {
  const { dir } = await tiny('llama', { family: 'llama', vocab: 300, seed: 1, tokenizer: false });
  const session = await initInference(dir, { backend: sourceBackend, tpSize: 2 });
  try {
    const [logits] = await session.logits([[1, 2, 3]]);
    expect(logits!.length).toBe(3 * 300);
  } finally {
    await session.dispose();
  }
});
