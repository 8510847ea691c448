/** Properties over random inputs: float repr round-trips, sharding always yields N contiguous groups. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assignShards, pythonFloatRepr } from '../src/index.js';

describe('properties', () => {
  it('pythonFloatRepr reads back as the same double and always shows it is a float', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const repr = pythonFloatRepr(x);
        expect(Object.is(Number(repr), x)).toBe(true);
        expect(repr).toMatch(/[.e]/);
      }),
      { numRuns: 2000 },
    );
  });

  it('assignShards: every shard used, in order, contiguous', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 60 }), (sizes, wanted) => {
        const count = Math.min(wanted, sizes.length);
        const groups = assignShards(sizes, count);
        expect(groups).toHaveLength(sizes.length);
        expect(groups[0]).toBe(0);
        expect(groups.at(-1)).toBe(count - 1);
        for (let i = 1; i < groups.length; i++) expect(groups[i]! - groups[i - 1]!).toBeOneOf([0, 1]);
      }),
      { numRuns: 500 },
    );
  });
});
