/**
 * The communicator without a GPU: which mechanism a placement of ranks gets, that the init crosses
 * postMessage, and that an abort is visible to every rank's view of it.
 */
import { describe, expect, it } from 'vitest';
import { abortCudaCommunicator, chooseMode, createCudaCommunicator } from '../src/collective.js';

describe('collective mode', () => {
  it('ranks on distinct GPUs use NCCL when it is loaded; ranks sharing a GPU need NCCL ≥ 2.30, else the in-process collective', () => {
    expect(chooseMode(undefined, [0, 1], 22809)).toBe('nccl');
    expect(chooseMode(undefined, [0, 0], 22809)).toBe('device');
    expect(chooseMode(undefined, [0, 0], 23007)).toBe('nccl');
    expect(chooseMode(undefined, [0, 1], undefined)).toBe('device');
    expect(chooseMode(undefined, [0], 22809)).toBe('device');
    expect(chooseMode('auto', [0, 1, 2, 3], 22809)).toBe('nccl');
    expect(chooseMode('device', [0, 1], 22809)).toBe('device');
    expect(chooseMode('nccl', [0, 0], 22809)).toBe('nccl');
  });

  it('the init is structured-cloneable (it travels to every worker) and shares its memory', async () => {
    const id = Uint8Array.from({ length: 128 }, (_, i) => i);
    const init = createCudaCommunicator(3, 1000, 'nccl', [0, 1, 2], id);
    const { port1, port2 } = new MessageChannel();
    const received = new Promise<typeof init>((resolve) => port2.once('message', resolve));
    port1.postMessage(init);
    const copy = await received;
    port1.close();
    expect(copy).toMatchObject({ kind: 'cuda', world: 3, timeoutMs: 1000, mode: 'nccl', devices: [0, 1, 2] });
    expect(Array.from(copy.ncclId!)).toEqual(Array.from(id));
    abortCudaCommunicator(copy, 2);
    expect(new Int32Array(init.flags)[0]).toBe(3); // 1 + the rank that failed, seen through the original
    abortCudaCommunicator(init, 0);
    expect(new Int32Array(copy.flags)[0]).toBe(3); // the first abort is the one reported
  });

  it('refuses a placement that does not match the world', () => {
    expect(() => createCudaCommunicator(2, 1000, 'device', [0])).toThrow(/2 ranks but 1 devices/);
  });
});
