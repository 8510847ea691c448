/**
 * torch's CPU generator against numbers taken from real torch (2.13.0+cpu on x86 with AVX-512, which
 * runs the AVX2 normal kernel): `torch.manual_seed(s); torch.randn(...)`, compared bit for bit as the
 * f32 bit patterns torch printed (struct.pack('<f', x)).
 */
import { describe, expect, it } from 'vitest';
import { fmaF32, TorchCpuGenerator, torchRandn } from '../../src/runtime/torch-random.js';

const bits = (values: Float32Array) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

/** torch.manual_seed(0); torch.randn(4, 16, 1, 2): the rotations of a 4-head, head-dim-16, 4-bucket Reformer with hash_seed 0. */
const SEED0_4x16x1x2 = [
    0xbf901b85, 0xbf93808a, 0xbe804bd6, 0xbede255d, 0x3f594515, 0x3f312783, 0xbea1cc6d, 0xc0075fc1,
    0x3ea50138, 0xbfa1b4f4, 0x3eb330ff, 0x3e9dc3bb, 0x3df56f77, 0x3f9e6b93, 0x3f8ef28e, 0xbe7d367c,
    0xbfad23c2, 0xbfd91446, 0x3f111004, 0x3f4b235d, 0x3f194d8b, 0xbfc70d5b, 0xbeaec6ca, 0x3fed2f4e,
    0x3f400c6b, 0xbf15e32b, 0xbe318eeb, 0x3e3be1a4, 0x3fb1d6c0, 0x3fcb0d00, 0x3f72409c, 0xbf57fb33,
    0xbf1d13c8, 0x3d016764, 0xbefc4028, 0x3e7e6070, 0x3ee11fd0, 0x3de637d6, 0x3f240af8, 0x3ee1df3c,
    0xbdd187b9, 0x3f4add9c, 0xbe944f53, 0x3d571217, 0x3f05da2f, 0x40135755, 0xbfbc04b7, 0xbfcb189e,
    0xbf2c4f9f, 0x3f5f71de, 0x3f8715f4, 0x3e361caa, 0xbe6bdd10, 0xbec89408, 0x3f0b155d, 0xbeca5217,
    0xbee47694, 0x3f3e7824, 0x3fc2af75, 0x405a45ad, 0xbfc3fdd9, 0xbf9df823, 0x3fe8ecc2, 0xbf0d30fc,
    0xbf11ba3e, 0x3f6b833f, 0x3f8e2f39, 0x3fa51a98, 0xbfbd34ce, 0x40244d8b, 0xbef23cc2, 0x3eabcd4f,
    0xbfd08dc1, 0xbf0cbc00, 0xbef5acd6, 0xbeffd642, 0xbf8892d0, 0x3f8eb657, 0xbe100c2c, 0x3f4e45de,
    0xbdbf2d5c, 0x3f2fe286, 0xbf569bd6, 0x3a69c925, 0x3f57865f, 0xbeccd147, 0x3f850d17, 0x3eb75fd8,
    0xbe7be7ac, 0x40135c6e, 0xbff0db31, 0xbd4bae90, 0xbf85c1dc, 0xbf74dd3d, 0x3d0958b4, 0x3f35c83c,
    0x3fd2abc5, 0xbfae1a04, 0x3eb06ae1, 0x3f05160d, 0xc02740ad, 0xbfd92613, 0xbe69b837, 0x3e8f5643,
    0x3e7cda46, 0x3d9d76ef, 0x3ead0f19, 0x3ee8a759, 0x3ee9f40f, 0xbf5d88fa, 0x3f4803cc, 0xbf6d4212,
    0xbe6015f0, 0xc01bd81c, 0xbd955455, 0xbd0b3555, 0x3f766799, 0x3eb2c62e, 0xbf6be4ef, 0xbd662c81,
    0xbf1f692b, 0xbeed6cfe, 0x3ff5fcf7, 0xbece1a73, 0x3dfdc095, 0x3f9517a0, 0x3f6c6235, 0x3fb192e4,
  ];

/** torch.manual_seed(42); torch.randn(20): not a multiple of 16, so the last 16 are drawn again. */
const SEED42_20 = [
    0x3ff6a529, 0x3fbe5f53, 0x3f669567, 0xc006c0db, 0xbf4214e2, 0x3f8a0650, 0x3f4d0144, 0x3fd71e93,
    0x3eb63345, 0xbf2fc686, 0xbefc9934, 0x3e774893, 0xbe6d2eed, 0x3d2b0c00, 0xbe80ce7a, 0x3f5c1fb0,
    0xbe9e9482, 0xbeca9a91, 0x3f4dac3c, 0xbf1f20e0,
  ];

/** torch.manual_seed(123); torch.randn(5): fewer than 16, the double-precision Box–Muller with a cached sine. */
const SEED123_5 = [
    0xbde448df, 0x3df680d9, 0xbebd40bc, 0xbe763021, 0xbf9934d1,
  ];

/** torch.manual_seed(2**32 + 7); torch.randn(3), equal to seed 7's: only the low 32 bits seed the state. */
const SEED7_3 = [
    0xbe165174, 0x3f49408e, 0x3f7262e7,
  ];

describe('torchRandn', () => {
  it('reproduces torch.manual_seed(0); torch.randn(4, 16, 1, 2) bit for bit (whole groups of 16, AVX2 Box–Muller)', () => {
    expect(bits(torchRandn(0, 128))).toEqual(SEED0_4x16x1x2);
  });

  it('reproduces a size that is not a multiple of 16 (the tail is drawn again and recomputed)', () => {
    expect(bits(torchRandn(42, 20))).toEqual(SEED42_20);
  });

  it('reproduces fewer than 16 elements (normal_distribution<double>, the sine kept for the next element)', () => {
    expect(bits(torchRandn(123, 5))).toEqual(SEED123_5);
  });

  it('seeds with the low 32 bits only', () => {
    expect(bits(torchRandn(2n ** 32n + 7n, 3))).toEqual(SEED7_3);
    expect(bits(torchRandn(7, 3))).toEqual(SEED7_3);
  });

  it('refuses a count that is not a whole number', () => {
    expect(() => torchRandn(0, 2.5)).toThrow(/whole number of elements, got 2.5/);
  });
});

describe('TorchCpuGenerator', () => {
  it('is MT19937: the 10000th draw from the reference seed 5489 is 4123659995', () => {
    const g = new TorchCpuGenerator(5489);
    let x = 0;
    for (let i = 0; i < 10000; i++) x = g.random();
    expect(x).toBe(4123659995);
  });

  it('makes float uniforms from the low 24 bits of a draw (torch.manual_seed(0); torch.rand(2))', () => {
    const g = new TorchCpuGenerator(0);
    // torch.rand(2) after seed 0: 0.49625658988952637, 0.7682217955589294
    expect([g.uniformFloat(), g.uniformFloat()]).toEqual([0.49625658988952637, 0.7682217955589294]);
  });
});

describe('fmaF32', () => {
  it('rounds a·b + c once: (1 + 2^-12)² − 1 keeps the 2^-24 a rounded product loses', () => {
    const a = 1 + 2 ** -12;
    expect(fmaF32(a, a, -1)).toBe(2 ** -11 + 2 ** -24);
    expect(Math.fround(Math.fround(a * a) - 1)).toBe(2 ** -11);
  });

  it('settles an f64 sum that lands exactly halfway between two f32 by the part the f64 sum dropped', () => {
    // a·b = ±2^-24·(1 − 2^-46): the f64 sum drops the 2^-70 and lands on an f32 midpoint.
    const a = (1 + 2 ** -23) * 2 ** -12;
    const b = (1 - 2 ** -23) * 2 ** -12;
    const c = 1 + 2 ** -23;
    // exact sum just below the midpoint 1 + 2^-23 + 2^-24: down to c (ties-to-even would give 1 + 2^-22)
    expect(fmaF32(a, b, c)).toBe(c);
    expect(Math.fround(a * b + c)).toBe(1 + 2 ** -22);
    // exact sum just above the midpoint 1 + 2^-24: up to c (ties-to-even would give 1)
    expect(fmaF32(a, -b, c)).toBe(c);
    expect(Math.fround(a * -b + c)).toBe(1);
  });
});
