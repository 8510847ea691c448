/**
 * Which adapter each rank opens: the numbered list (what `tp devices --backend webgpu` prints) and
 * `backendOptions.devices`, which maps rank r to the r-th listed device.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initInference, TpError } from '@tp/core';
import { writeTinyModel } from '@tp/tiny-models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listDevices } from '../src/index.js';
import { adapterSkip, backend } from './helpers/adapter.js';

let root = '';
let model = '';
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tp-webgpu-devices-'));
  model = (await writeTinyModel(path.join(root, 'llama'), { family: 'llama', hidden: 64, layers: 1, heads: 4, kvHeads: 2, intermediate: 128, vocab: 256, seed: 2 })).dir;
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

const run = it.skipIf(adapterSkip !== '');

describe(`WebGPU devices${adapterSkip}`, () => {
  run('the adapters are listed in order, numbered from 0, with their vendor, features and binding limits', async () => {
    const devices = await listDevices();
    expect(devices.length).toBeGreaterThan(0);
    devices.forEach((d, i) => expect(d.index).toBe(i));
    const first = devices[0]!.adapter!;
    expect(first.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(Array.isArray(first.features)).toBe(true);
    expect(typeof first.vendor).toBe('string');
  });

  run('devices [0, 0] puts both ranks of TP=2 on device 0, with the same logits as the default mapping', async () => {
    const logits = async (options: Record<string, unknown>) => {
      const session = await initInference(model, { backend, tpSize: 2, backendOptions: options });
      try {
        return (await session.logits([[3, 4, 5]]))[0]!;
      } finally {
        await session.dispose();
      }
    };
    expect(Array.from(await logits({ devices: [0, 0] }))).toEqual(Array.from(await logits({})));
  });

  run('a device number that is not listed, or a malformed list, fails naming the problem', async () => {
    const count = (await listDevices()).length;
    for (const [devices, fragment] of [
      [[0, count], `device ${count} does not exist`],
      [[0], 'rank 1 needs one'],
      ['0,1', 'must be a list of device numbers'],
    ] as const) {
      const error = await initInference(model, { backend, tpSize: 2, backendOptions: { devices } }).then(
        async (s) => {
          await s.dispose();
          return undefined;
        },
        (e: unknown) => e as TpError,
      );
      expect(TpError.isInstance(error), String(error)).toBe(true);
      expect(error!.message).toContain(fragment);
    }
  });
});
