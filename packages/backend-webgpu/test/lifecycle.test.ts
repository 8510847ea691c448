/**
 * A session's ranks end cleanly: dispose drains each device and ends each worker well within the 5 s
 * the session waits before terminating one, and a rank whose device is lost mid-generation fails the
 * request within seconds, naming the rank, with no worker left behind; and no failure aborts the
 * process (a thread terminated inside a Dawn call or with a GPU promise pending would).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initInference, TpError } from '@tp/core';
import { writeTinyModel } from '@tp/tiny-models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapterSkip, backend } from './helpers/adapter.js';

let root = '';
let model = '';
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-lifecycle-'));
  model = (await writeTinyModel(path.join(root, 'llama'), { family: 'llama', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, seed: 1 })).dir;
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

const run = it.skipIf(adapterSkip !== '');

describe(`WebGPU session lifecycle${adapterSkip}`, () => {
  run('dispose after generating at TP=2 ends every worker, each after its device is destroyed, in well under 5 s', async () => {
    const session = await initInference(model, { backend, tpSize: 2 });
    await session.generate([[1, 2, 3, 4]], { maxNewTokens: 4, stopAtEos: false });
    expect(session.liveWorkers).toBe(2);
    const started = Date.now();
    await session.dispose();
    expect(Date.now() - started).toBeLessThan(2500);
    expect(session.liveWorkers).toBe(0);
  });

  run('a device lost mid-generation fails the request within seconds, naming the rank, and leaves no worker', async () => {
    const session = await initInference(model, { backend, tpSize: 2, backendOptions: { loseDeviceAfterSteps: 3 }, collectiveTimeoutMs: 10_000 });
    const started = Date.now();
    const error = await session.generate([[1, 2, 3, 4]], { maxNewTokens: 16, stopAtEos: false }).then(
      () => undefined,
      (e: unknown) => e as TpError & { rank?: number },
    );
    expect(error, 'the request must fail').toBeDefined();
    expect(TpError.isInstance(error)).toBe(true);
    expect(error!.message).toMatch(/device was lost|rank/);
    expect(Date.now() - started).toBeLessThan(5000);
    await session.dispose();
    expect(session.liveWorkers).toBe(0);
  });

  // The session terminates every worker as soon as one rank fails. Without the guard (guard.ts) a
  // worker terminated mid-kernel or mid-readback aborted the whole process in about 1 run in 5 here.
  run('a rank failing while the others work on their GPUs fails the request without aborting the process (5 times at TP=4)', async () => {
    for (let i = 0; i < 5; i++) {
      const session = await initInference(model, { backend, tpSize: 4, faultInjection: { rank: 3, afterForwards: 2 + i } });
      const error = await session.generate([[1, 2, 3, 4]], { maxNewTokens: 12, stopAtEos: false }).then(
        () => undefined,
        (e: unknown) => e as Error & { rank?: number },
      );
      expect(error?.message).toContain('injected fault in rank 3');
      await session.dispose();
      expect(session.liveWorkers).toBe(0);
    }
  });
});
