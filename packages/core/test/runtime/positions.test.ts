/**
 * Position encodings against values computed independently (numpy transcriptions of transformers'
 * _compute_llama3_parameters, the dynamic NTK formula, build_alibi_tensor and build_mpt_alibi_tensor,
 * evaluated once and written down here).
 */
import { describe, expect, it } from 'vitest';
import { alibiSlopes, ropeInvFreq, rotaryDims, sinusoidalRows } from '../../src/index.js';

const close = (got: ArrayLike<number>, want: number[], indices: number[]) => {
  indices.forEach((i, k) => expect(Math.abs(got[i]! - want[k]!) / Math.abs(want[k]!)).toBeLessThan(2e-5));
};

describe('rotary inverse frequencies', () => {
  it('plain: theta^(-2i/d)', () => {
    const inv = ropeInvFreq({ theta: 10000, rotaryDim: { fraction: 1 }, style: 'half' }, 64);
    expect(inv.length).toBe(32);
    expect(inv[0]).toBe(1);
    expect(inv[16]).toBeCloseTo(10000 ** -0.5, 8);
  });

  it('partial rotary rotates a fraction of the head, rounded to an even count', () => {
    expect(rotaryDims({ theta: 1e4, rotaryDim: { fraction: 0.25 }, style: 'half' }, 64)).toBe(16);
    expect(rotaryDims({ theta: 1e4, rotaryDim: { fraction: 0.4 }, style: 'half' }, 80)).toBe(32);
    expect(rotaryDims({ theta: 1e4, rotaryDim: 8, style: 'interleaved' }, 16)).toBe(8);
  });

  it('linear scaling divides every frequency by the factor', () => {
    const plain = ropeInvFreq({ theta: 10000, rotaryDim: { fraction: 1 }, style: 'half' }, 32);
    const scaled = ropeInvFreq({ theta: 10000, rotaryDim: { fraction: 1 }, style: 'half', scaling: { type: 'linear', factor: 4 } }, 32);
    plain.forEach((v, i) => expect(scaled[i]).toBeCloseTo(v / 4, 9));
  });

  it('llama3 scaling (theta 500000, dim 64, factor 8, low 1, high 4, original 8192)', () => {
    const inv = ropeInvFreq(
      { theta: 500000, rotaryDim: { fraction: 1 }, style: 'half', scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } },
      64,
    );
    close(inv, [1.0, 0.0165604, 7.78466e-5, 3.4281e-5, 1.50962e-5, 4.41153e-6, 3.76732e-7], [0, 10, 18, 20, 22, 25, 31]);
  });

  it('dynamic NTK scaling changes nothing within max positions and raises the base past it', () => {
    const spec = { theta: 10000, rotaryDim: { fraction: 1 }, style: 'half' as const, maxPositions: 64, scaling: { type: 'dynamic' as const, factor: 2 } };
    const plain = ropeInvFreq({ theta: 10000, rotaryDim: { fraction: 1 }, style: 'half' }, 32);
    expect(Array.from(ropeInvFreq(spec, 32, 64))).toEqual(Array.from(plain));
    close(ropeInvFreq(spec, 32, 100), [1.0, 0.0437402, 8.36837e-5], [0, 5, 15]);
  });
});

describe('ALiBi slopes', () => {
  it('BLOOM, 12 heads (not a power of two: 8 geometric, then every other slope of 16)', () => {
    close(alibiSlopes(12, 'bloom'), [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625, 0.707107, 0.353553, 0.176777, 0.0883883], Array.from({ length: 12 }, (_, i) => i));
  });

  it('MPT with alibi_bias_max 16 (the two constructions differ only in the maximum bias)', () => {
    close(alibiSlopes(4, 'mpt', 16), [0.0625, 0.00390625, 0.000244141, 1.52588e-5], [0, 1, 2, 3]);
    expect(Array.from(alibiSlopes(12, 'mpt', 8))).toEqual(Array.from(alibiSlopes(12, 'bloom')));
  });
});

describe('sinusoidal positions', () => {
  it('[sin | cos] halves with fairseq frequencies', () => {
    const rows = sinusoidalRows(Int32Array.from([0, 3]), 8);
    expect(Array.from(rows.subarray(0, 8))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    const f = Math.exp(-Math.log(10000) / 3); // half = 4: frequencies 1, f, f², f³
    expect(rows[8 + 1]).toBeCloseTo(Math.sin(3 * f), 6);
    expect(rows[8 + 4 + 2]).toBeCloseTo(Math.cos(3 * f * f), 6);
  });
});
