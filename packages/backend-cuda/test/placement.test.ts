/** Which GPU each rank gets: backendOptions.devices (the CLI's --devices), TP_CUDA_DEVICES, or round-robin. */
import { afterEach, describe, expect, it } from 'vitest';
import { placement } from '../src/index.js';

const saved = process.env['TP_CUDA_DEVICES'];
afterEach(() => {
  if (saved === undefined) delete process.env['TP_CUDA_DEVICES'];
  else process.env['TP_CUDA_DEVICES'] = saved;
});

describe('rank placement', () => {
  it('round-robin over the GPUs the driver sees by default', () => {
    delete process.env['TP_CUDA_DEVICES'];
    expect(placement(4, 2)).toEqual([0, 1, 0, 1]);
    expect(placement(3, 8)).toEqual([0, 1, 2]);
  });

  it('backendOptions.devices: rank r takes devices[r], ahead of TP_CUDA_DEVICES; several ranks may share a GPU', () => {
    process.env['TP_CUDA_DEVICES'] = '1';
    expect(placement(3, 2, [0, 0, 1])).toEqual([0, 0, 1]);
    expect(placement(2, 4, [3, 2, 1])).toEqual([3, 2]);
  });

  it('TP_CUDA_DEVICES is cycled over the ranks', () => {
    process.env['TP_CUDA_DEVICES'] = '1,0';
    expect(placement(3, 2)).toEqual([1, 0, 1]);
  });

  it('refuses a list that is too short, names a GPU that does not exist, or is not a list of numbers', () => {
    expect(() => placement(3, 2, [0, 1])).toThrow(/lists 2 GPUs for 3 ranks: give one per rank/);
    expect(() => placement(2, 2, [0, 2])).toThrow(/GPU 2 does not exist: the driver sees 2/);
    expect(() => placement(2, 2, '0,1')).toThrow(/must be a list of GPU numbers/);
    expect(() => placement(2, 2, [0, -1])).toThrow(/must be a list of GPU numbers/);
  });
});
