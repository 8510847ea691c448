/**
 * The conformance suite's reference kernels against values computed by hand (or with Python's math
 * module), so a wrong reference cannot make a wrong backend pass.
 */
import { describe, expect, it } from 'vitest';
import * as ref from '../../src/testing/reference.js';

const close = (got: ArrayLike<number>, want: number[], digits = 12) => {
  expect(got.length).toBe(want.length);
  want.forEach((w, i) => expect(got[i]!).toBeCloseTo(w, digits));
};

// one head, headDim 2: q = [1, 0]; keys k0 = [1, 0], k1 = [0, 1]; values v0 = [1, 2], v1 = [3, 4]
const base = {
  q: [1, 0],
  kCache: [1, 0, 0, 1],
  vCache: [1, 2, 3, 4],
  slots: 2,
  batch: 1,
  rows: 1,
  start: 0,
  keys: 2,
  keyMask: [1, 1],
  heads: 1,
  kvHeads: 1,
  headDim: 2,
  valueDim: 2,
  scale: 1,
  mask: 'bidirectional' as const,
};
/** 1 / (1 + e): the weight of the key scoring 0 against one scoring 1. */
const p1 = 0.2689414213699951;

describe('attention reference', () => {
  it('softmax over two keys', () => {
    close(ref.attention(base), [1 + 2 * p1, 2 + 2 * p1]);
  });

  it('masks: padding, causal, window, and no visible key gives zeros', () => {
    close(ref.attention({ ...base, keyMask: [0, 1] }), [3, 4]);
    close(ref.attention({ ...base, keyMask: [0, 0] }), [0, 0]);
    close(ref.attention({ ...base, mask: 'causal' }), [1, 2]); // slot 0 sees key 0 only
    close(ref.attention({ ...base, mask: 'causal', start: 1 }), [1 + 2 * p1, 2 + 2 * p1]);
    close(ref.attention({ ...base, mask: 'causal', start: 1, window: 1 }), [3, 4]); // slot 1 with window 1 sees key 1 only
    close(ref.attention({ ...base, mask: 'causal', keyMask: [0, 1] }), [0, 0]); // a padded first query
  });

  it('bias, ALiBi (plain and scaled) and softcap', () => {
    close(ref.attention({ ...base, bias: [0, 1] }), [2, 3]); // scores 1, 1
    close(ref.attention({ ...base, alibi: [0.5], keyPositions: [0, 2] }), [2, 3]); // 1 + 0, 0 + 1
    close(ref.attention({ ...base, scale: 0.5, alibi: [0.5], keyPositions: [0, 2], alibiScaled: true }), [2, 3]); // (1 + 0)/2, (0 + 1)/2
    const w = 0.6224593312018546; // scores 0.5 and 1: weight of key 1
    close(ref.attention({ ...base, scale: 0.5, alibi: [0.5], keyPositions: [0, 2] }), [1 + 2 * w, 2 + 2 * w]);
    // softcap 0.5: scores 0.5·tanh(2) and 0
    close(ref.attention({ ...base, softcap: 0.5 }), [1.7635534218575992, 2.7635534218575994]);
  });

  it('GQA: query heads share kv heads in groups', () => {
    // two query heads, one kv head: both heads read the same keys; head 1's query is [0, 1]
    close(ref.attention({ ...base, q: [1, 0, 0, 1], heads: 2 }), [1 + 2 * p1, 2 + 2 * p1, 3 - 2 * p1, 4 - 2 * p1]);
  });
});

describe('attention reference: interface version 3 additions', () => {
  // The same one-head case as above: q·k = 1, 0.
  const index = [0, 1]; // key 0 reads table row 0, key 1 row 1

  it('relative keys term: q·keys[r] joins q·k before the scale', () => {
    // keys rows [0, 0] and [1, 0]: q·keys = 0, 1, so scores 1, 1 (equal weights)
    close(ref.attention({ ...base, relative: { positions: 2, index, keys: [0, 0, 1, 0] } }), [2, 3]);
    // scale 2 multiplies the sum: scores 2, 2, still equal; with only q·k scaled they would not be
    close(ref.attention({ ...base, scale: 2, relative: { positions: 2, index, keys: [0, 0, 1, 0] } }), [2, 3]);
  });

  it('relative queries term: k·queries[r], the row picked by the index', () => {
    // queries rows [-1, 5] and [0, 1]: k0·row0 = -1, k1·row1 = 1, so scores 0, 1 (k1·row0 would be 5)
    close(ref.attention({ ...base, relative: { positions: 2, index, queries: [-1, 5, 0, 1] } }), [3 - 2 * p1, 4 - 2 * p1]);
  });

  it('relative values term: Σ p·(v + values[r])', () => {
    // weights 1 - p1, p1; values rows [10, 0] and [0, 10]
    close(ref.attention({ ...base, relative: { positions: 2, index, values: [10, 0, 0, 10] } }), [8.848468629040038, 5.227297056439941]);
  });

  it('relative index rows follow the query rows (causal, two rows)', () => {
    // rows 2 with q = [1, 0] each; index [[0, 0], [1, 0]]; keys rows [0, 0] and [5, 0]
    // row 0 sees key 0 only; row 1: key 0 reads row 1 (score 1 + 5), key 1 row 0 (score 0)
    const w1 = 0.0024726231566347743; // 1 / (1 + e^6)
    const a = { ...base, q: [1, 0, 1, 0], rows: 2, mask: 'causal' as const, relative: { positions: 2, index: [0, 0, 1, 0], keys: [0, 0, 5, 0] } };
    close(ref.attention(a), [1, 2, 1 + 2 * w1, 2 + 2 * w1]);
  });

  it('a table with a slice per head against one every head shares', () => {
    // heads 2 over one kv head; head 1's query is [0, 1]
    const two = { ...base, q: [1, 0, 0, 1], heads: 2 };
    // per head [positions 2, heads·headDim 4]: row 1 = [1, 0 | 0, -1]. Head 0: scores 1, 0 + 1; head 1: 0, 1 - 1
    close(ref.attention({ ...two, relative: { positions: 2, index, keys: [0, 0, 0, 0, 1, 0, 0, -1] } }), [2, 3, 2, 3]);
    // shared [positions 2, headDim 2]: row 1 = [1, 0] for both. Head 0: scores 1, 1; head 1: 0, 1
    close(ref.attention({ ...two, relative: { positions: 2, index, keys: [0, 0, 1, 0] } }), [2, 3, 3 - 2 * p1, 4 - 2 * p1]);
  });

  it('a per-sequence bias [batch, heads, rows, keys] differs between sequences', () => {
    // two identical sequences; bias [0, 0] for sequence 0 and [0, 1] for sequence 1
    const two = { ...base, q: [1, 0, 1, 0], kCache: [1, 0, 0, 1, 1, 0, 0, 1], vCache: [1, 2, 3, 4, 1, 2, 3, 4], batch: 2, keyMask: [1, 1, 1, 1] };
    close(ref.attention({ ...two, bias: [0, 0, 0, 1] }), [1 + 2 * p1, 2 + 2 * p1, 2, 3]);
  });

  it('a bias entry ≤ -1e30 masks its key as padding does; none left gives zeros', () => {
    close(ref.attention({ ...base, bias: [-1e30, 0] }), [3, 4]);
    close(ref.attention({ ...base, bias: [0, -Infinity] }), [1, 2]);
    close(ref.attention({ ...base, bias: [-1e30, -1e30] }), [0, 0]); // zeros, not the mean of the values
    close(ref.attention({ ...base, bias: [-1e30, -2e30] }), [0, 0]);
  });

  it('expectation scoring: (1 - acos(q̂·k̂)/π)^bits, output L2-normalized; no scale, no bias', () => {
    // q = [2, 0]; k0 = [3, 0] (cos 1, weight 1), k1 = [0.5, 0.5] (cos 1/√2, acos π/4, weight 0.75^2)
    const yoso = { ...base, q: [2, 0], kCache: [3, 0, 0.5, 0.5], scale: 0.5, expectation: { bits: 2 } };
    const want = [0.5344605473053973, 0.8451934236457446]; // [1 + 0.5625·3, 2 + 0.5625·4] / its norm
    close(ref.attention(yoso), want);
    close(ref.attention({ ...yoso, bias: [5, -1e30] }), want); // the bias does not apply
    close(ref.attention({ ...yoso, relative: { positions: 2, index, keys: [9, 9, 9, 9], values: [9, 9, 9, 9] } }), want); // nor relative terms
    // k1 = [0, 1] (cos 0, weight 0.5^bits); bits 1: [2.5, 4] normalized
    close(ref.attention({ ...base, expectation: { bits: 1 } }), [0.52999894000318, 0.847998304005088]);
    // k1 = [-1, 0]: cos -1, weight 0
    close(ref.attention({ ...yoso, kCache: [3, 0, -1, 0] }), [0.4472135954999579, 0.8944271909999159]);
    // padding: only key 0, so v0 normalized; no key at all: zeros
    close(ref.attention({ ...yoso, keyMask: [1, 0] }), [0.4472135954999579, 0.8944271909999159]);
    close(ref.attention({ ...yoso, keyMask: [0, 0] }), [0, 0]);
  });
});

describe('norm reference', () => {
  it('RMS norm, with weight and with (1 + weight)', () => {
    close(ref.norm([3, 4], 2, { kind: 'rms', eps: 0 }), [0.848528137423857, 1.131370849898476]);
    close(ref.norm([3, 4], 2, { kind: 'rms', eps: 0 }, [2, 0.5]), [1.697056274847714, 0.565685424949238]);
    close(ref.norm([3, 4], 2, { kind: 'rms', eps: 0, plusOne: true }, [1, -0.5]), [1.697056274847714, 0.565685424949238]);
    close(ref.norm([3, 4], 2, { kind: 'rms', eps: 12.5 }), [0.6, 0.8]); // √(12.5 + 12.5) = 5
  });

  it('layer norm subtracts the mean and uses the biased variance', () => {
    close(ref.norm([1, 3, 10, 14], 2, { kind: 'layer', eps: 0 }, [2, 3], [0.5, 0]), [-1.5, 3, -1.5, 3]);
  });
});

describe('rotary reference', () => {
  it('rotates one pair by position × invFreq', () => {
    const [c, s] = [0.5403023058681398, 0.8414709848078965];
    close(ref.rotary([1, 0], [1], { headDim: 2, rotaryDim: 2, style: 'half', invFreq: [1] }), [c, s]);
    close(ref.rotary([1, 0], [2], { headDim: 2, rotaryDim: 2, style: 'half', invFreq: [0.5], scale: 2 }), [2 * c, 2 * s]);
  });

  it('half pairs (i, i + d/2), interleaved pairs (2i, 2i + 1), the rest passes through', () => {
    // half, headDim 4: pairs (0, 2) at angle 1 and (1, 3) at angle 0
    close(ref.rotary([1, 2, 3, 4], [1], { headDim: 4, rotaryDim: 4, style: 'half', invFreq: [1, 0] }), [-1.9841106485555495, 2, 2.4623779024123156, 4]);
    // interleaved, rotaryDim 2 of headDim 4: pair (0, 1) rotates, 2 and 3 pass through
    close(ref.rotary([1, 3, 5, 6], [1], { headDim: 4, rotaryDim: 2, style: 'interleaved', invFreq: [1] }), [-1.9841106485555495, 2.4623779024123156, 5, 6]);
  });
});

describe('selection references', () => {
  it('topk: best first, lower index first on ties', () => {
    const { values, indices } = ref.topk([1, 3, 3, 2, 3], 5, 3);
    expect(Array.from(indices)).toEqual([1, 2, 4]);
    expect(Array.from(values)).toEqual([3, 3, 3]);
    expect(Array.from(ref.topk([5, 1, 5, 9], 2, 1).indices)).toEqual([0, 1]); // two rows
  });

  it('argmax: the first maximum', () => {
    expect(Array.from(ref.argmax([1, 3, 3, -2, -1, -1], 3))).toEqual([1, 1]);
  });

  it('route: softmax, top k, renormalised', () => {
    const raw = ref.route([0, 0, Math.log(2)], 3, 2, false);
    expect(Array.from(raw.experts)).toEqual([2, 0]);
    close(raw.weights, [0.5, 0.25]);
    close(ref.route([0, 0, Math.log(2)], 3, 2, true).weights, [2 / 3, 1 / 3]);
    expect(ref.expertRows([2, 0, 0, 1], [0.6, 0.4, 0.7, 0.3], 2, 0)).toEqual({ rows: [0, 1], weights: [0.4, 0.7] });
  });
});

describe('other kernel references', () => {
  it('linear, embedding with a row offset', () => {
    close(ref.linear([1, 2], [1, 1, 2, -1], [0.5, 0], 1, 2, 2), [3.5, 0]);
    close(ref.embedding([1, 2, 3, 4], 2, 2, [-1, 0, 1, 7], -1, 1), [1, 2, 3, 4, 0, 0, 0, 0]);
    close(ref.embedding([1, 2, 3, 4], 2, 2, [5, 6, 4], 5, 2), [2, 4, 6, 8, 0, 0]);
  });

  it('activations and erf', () => {
    close([ref.erf(0.5), ref.erf(1), ref.erf(2.5), ref.erf(3.5), ref.erf(5), ref.erf(-1), ref.erf(0.01)], [0.5204998778130465, 0.8427007929497149, 0.999593047982555, 0.9999992569016276, 0.9999999999984626, -0.8427007929497149, 0.011283415555849616], 14);
    close(ref.activation([1, -2], 'gelu'), [0.8413447460685429, -0.04550026389635842]);
    close(ref.activation([1], 'gelu_tanh'), [0.8411919906082768]);
    close(ref.activation([1], 'silu'), [0.7310585786300049]);
    close(ref.activation([1], 'gelu_quick'), [0.8457957659328212]);
    close(ref.activation([-3, 2], 'relu'), [0, 2]);
    close(ref.gatedFused([1, 2, 3, 4], 1, 'identity'), [3, 8]);
  });

  it('sinusoidal positions: fairseq and marian frequencies, [sin | cos]', () => {
    // dim 4: fairseq f = [1, fround(1e-4)] (half - 1 = 1); marian f = [1, 10000^(-1/2) = 0.01]
    const f = 9.999999747378752e-5;
    close(ref.sinusoidal([1], 4, 'fairseq'), [Math.sin(1), Math.sin(f), Math.cos(1), Math.cos(f)]);
    close(ref.sinusoidal([1], 4, 'marian'), [0.8414709848078965, 0.009999833334166664, 0.5403023058681398, 0.9999500004166653]);
    close(ref.sinusoidal([0], 4, 'fairseq'), [0, 0, 1, 1]);
  });
});

describe('storage dtype rounding', () => {
  const fromBits = (bits: number) => new Float32Array(Uint32Array.of(bits).buffer)[0]!;

  it('bf16: round to nearest, ties to even', () => {
    expect(ref.roundBf16(fromBits(0x3f808000))).toBe(1); // tie → even (0x3f80)
    expect(ref.roundBf16(fromBits(0x3f818000))).toBe(1.015625); // tie → even (0x3f82)
    expect(ref.roundBf16(fromBits(0x3f808001))).toBe(1.0078125); // above the tie
    expect(ref.bf16Bits(-2)).toBe(0xc000);
    expect(ref.bf16Value(0x3f80)).toBe(1);
  });

  it('f16: round to nearest, ties to even, subnormals and overflow', () => {
    expect(ref.roundF16(1 + 2 ** -11)).toBe(1);
    expect(ref.roundF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
    expect(ref.roundF16(65519)).toBe(65504);
    expect(ref.roundF16(65520)).toBe(Infinity);
    expect(ref.roundF16(2 ** -25)).toBe(0);
    expect(ref.roundF16(3 * 2 ** -25)).toBe(2 ** -23);
    expect(ref.roundF16(0.1)).toBe(0.0999755859375);
    expect([1, -2, 65504, 2 ** -24, 0.333251953125].map(ref.f16Bits)).toEqual([0x3c00, 0xc000, 0x7bff, 1, 0x3555]);
    expect(ref.f16Value(0x3555)).toBe(0.333251953125);
    for (const bits of [0x0001, 0x03ff, 0x0400, 0x3c01, 0x7bff, 0xfbff, 0x8001]) expect(ref.f16Bits(ref.f16Value(bits))).toBe(bits);
  });

  it('encodes bytes little-endian', () => {
    expect(Array.from(ref.encodeDtype([1, -2], 'f16'))).toEqual([0x00, 0x3c, 0x00, 0xc0]);
    expect(Array.from(ref.encodeDtype([1], 'bf16'))).toEqual([0x80, 0x3f]);
  });
});
