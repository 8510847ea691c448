/**
 * The kernels' per-element math (kernels/math.cuh), compiled for the host into the addon, against
 * @tp/core/testing's reference kernels at the conformance suite's tolerances: 16-bit conversions
 * (every bit pattern), activations, soft cap, rotary, sinusoidal positions, norms, attention with
 * every switch (split over the keys and merged, as the kernels do), routing and top-k.
 */
import { reference as ref } from '@tp/core/testing';
import { describe, expect, it } from 'vitest';
import { ACTIVATION_CODE } from '../src/kernels.js';
import { addon, addonMissing, expectClose, random, uniform } from './helpers.js';

const math = addon?.math;
const d = describe.skipIf(math === undefined);

if (math === undefined) {
  describe('host math', () => {
    it.skip(`skipped: ${addonMissing}`, () => {});
  });
}

d('16-bit conversions (math.cuh) against the reference', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

  it('bf16 → f32 for every bit pattern', () => {
    const got = math!.bf16ToF32(all);
    for (let i = 0; i < 65536; i++) {
      const e = ref.bf16Value(i);
      if (!(Object.is(got[i], Math.fround(e)) || (Number.isNaN(got[i]!) && Number.isNaN(e)))) throw new Error(`bf16 0x${i.toString(16)}: got ${got[i]}, expected ${e}`);
    }
  });

  it('f16 → f32 for every bit pattern', () => {
    const got = math!.f16ToF32(all);
    for (let i = 0; i < 65536; i++) {
      const e = ref.f16Value(i);
      if (!(Object.is(got[i], Math.fround(e)) || (Number.isNaN(got[i]!) && Number.isNaN(e)))) throw new Error(`f16 0x${i.toString(16)}: got ${got[i]}, expected ${e}`);
    }
  });

  /** Ties, neighbours of ties, subnormals, range ends, infinities and random values. */
  function narrowingInputs(): Float32Array {
    const bits = (u: number[]) => new Float32Array(Uint32Array.from(u).buffer);
    const next = random(7);
    const special = [
      ...bits([0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0xbf818000, 0x40490fdb, 0x00018000, 0x7f7f0000, 0x7f7fffff, 0x00000001, 0x80000000]),
      1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -25, 3 * 2 ** -25, 2 ** -24, 3 * 2 ** -26, 2 ** -14, 2 ** -14 - 2 ** -25,
      65504, 65519, 65520, -65520, 70000, 0.1, 1e-5, 1e-8, 6e-8, Infinity, -Infinity, 0, -0,
    ];
    const randomBits = Float32Array.from({ length: 20000 }, () => {
      const f = new Float32Array(new Uint32Array([Math.floor(next() * 2 ** 32)]).buffer)[0]!;
      return Number.isNaN(f) ? 1 : f;
    });
    const small = uniform(next, 5000, -70000, 70000);
    const tiny = Float32Array.from({ length: 5000 }, () => (next() - 0.5) * 2 ** -12);
    return Float32Array.from([...special, ...randomBits, ...small, ...tiny]);
  }

  it('f32 → bf16: round to nearest even (ties, subnormals, overflow) and NaN stays NaN', () => {
    const x = narrowingInputs();
    const got = math!.f32ToBf16(x);
    for (let i = 0; i < x.length; i++) expect(got[i], `bf16 of ${x[i]}`).toBe(ref.bf16Bits(x[i]!));
    const nan = math!.f32ToBf16(Float32Array.from([Number.NaN]));
    expect(Number.isNaN(ref.bf16Value(nan[0]!))).toBe(true);
  });

  it('f32 → f16: round to nearest even, subnormals, overflow to infinity from 65520', () => {
    const x = narrowingInputs();
    const got = math!.f32ToF16(x);
    for (let i = 0; i < x.length; i++) expect(got[i], `f16 of ${x[i]}`).toBe(ref.f16Bits(x[i]!));
  });
});

d('activations (math.cuh activation_f, softcap_f)', () => {
  const next = random(11);
  const x = Float32Array.from([0, 30, -30, 20, -20, 88, -88, 1e-4, -1e-4, 1e-30, ...uniform(next, 4000, -8, 8), ...uniform(next, 500, -90, 90)]);
  for (const kind of ['silu', 'gelu', 'gelu_tanh', 'relu', 'gelu_quick', 'identity'] as const) {
    it(`${kind}: rel 2e-6 + abs 1e-6 (the conformance suite's elementwise tolerance)`, () => {
      expectClose(kind, math!.activation(x, ACTIVATION_CODE[kind]), ref.activation(x, kind), { rel: 2e-6, abs: 1e-6 });
    });
  }
  it('sigmoid', () => expectClose('sigmoid', math!.activation(x, ACTIVATION_CODE.sigmoid), ref.sigmoidAll(x), { rel: 2e-6, abs: 1e-6 }));
  it('soft cap c·tanh(x/c)', () => {
    for (const cap of [2, 3, 30, 50]) expectClose(`softcap ${cap}`, math!.softcap(x, cap), Array.from(x, (v) => cap * Math.tanh(v / cap)), { rel: 2e-6, abs: 1e-6 });
  });
});

d('positions (rotary_pair, sinusoidal_f)', () => {
  const cases = [
    { rows: 5, heads: 3, headDim: 10, rotaryDim: 10, style: 'half' as const },
    { rows: 3, heads: 2, headDim: 12, rotaryDim: 6, style: 'half' as const },
    { rows: 5, heads: 3, headDim: 10, rotaryDim: 10, style: 'interleaved' as const },
    { rows: 1, heads: 2, headDim: 14, rotaryDim: 6, style: 'interleaved' as const, scale: 1.25 },
    { rows: 7, heads: 4, headDim: 128, rotaryDim: 128, style: 'half' as const, scale: 0.9 },
  ];
  for (const o of cases) {
    it(`rotary ${o.style} ${o.rows}×${o.heads}×${o.headDim} (rotary ${o.rotaryDim})${o.scale ? ` scale ${o.scale}` : ''}`, () => {
      const next = random(o.rows * 131 + o.headDim);
      const x = uniform(next, o.rows * o.heads * o.headDim, -2, 2);
      const positions = Int32Array.from({ length: o.rows }, (_, i) => (i === 0 ? 0 : Math.floor(next() * 131072)));
      const invFreq = Float32Array.from({ length: o.rotaryDim / 2 }, (_, i) => 500000 ** ((-2 * i) / o.rotaryDim));
      const got = math!.rotary(x, positions, invFreq, o.heads, o.headDim, o.rotaryDim, o.style === 'interleaved' ? 1 : 0, o.scale ?? 1);
      const want = ref.rotary(x, positions, { headDim: o.headDim, rotaryDim: o.rotaryDim, style: o.style, invFreq, ...(o.scale ? { scale: o.scale } : {}) });
      expectClose('rotary', got, want, { relOfMax: 1e-6 });
    });
  }
  for (const kind of ['fairseq', 'marian'] as const) {
    for (const dim of [14, 66, 1024]) {
      it(`sinusoidal ${kind} dim ${dim}`, () => {
        const positions = Int32Array.from([0, 1, 2, 7, 33, 99, 100, 5, 2047, 4095]);
        expectClose(`sinusoidal ${kind}`, math!.sinusoidal(positions, dim, kind === 'fairseq' ? 0 : 1), ref.sinusoidal(positions, dim, kind), { relOfMax: 2e-6 });
      });
    }
  }
});

d('norms (norm_inverse, norm_apply)', () => {
  const cases = [
    { width: 33, layer: false, eps: 1e-6, weight: true, bias: false, plusOne: false },
    { width: 130, layer: false, eps: 1e-6, weight: true, bias: false, plusOne: true },
    { width: 7, layer: false, eps: 1e-5, weight: false, bias: false, plusOne: false },
    { width: 130, layer: true, eps: 1e-5, weight: true, bias: true, plusOne: false },
    { width: 4096, layer: true, eps: 1e-12, weight: false, bias: false, plusOne: false },
    { width: 2048, layer: false, eps: 1e-6, weight: true, bias: true, plusOne: false },
  ];
  for (const c of cases) {
    it(`${c.layer ? 'layer' : 'rms'} norm width ${c.width}${c.plusOne ? ' (1 + w)' : ''}${c.weight ? ' weight' : ''}${c.bias ? ' bias' : ''}`, () => {
      const next = random(c.width);
      const rows = 3;
      const x = Float32Array.from(uniform(next, rows * c.width, -2, 2), (v) => v + (c.layer ? 3 : 0));
      const w = c.weight ? uniform(next, c.width, 0.5, 1.5) : null;
      const b = c.bias ? uniform(next, c.width, -0.5, 0.5) : null;
      const spec = { kind: c.layer ? ('layer' as const) : ('rms' as const), eps: c.eps, plusOne: c.plusOne };
      const got = math!.norm(x, c.width, c.layer ? 1 : 0, c.eps, c.plusOne ? 1 : 0, w, b);
      expectClose('norm', got, ref.norm(x, c.width, spec, w ?? undefined, b ?? undefined), { relOfMax: 1e-5 });
    });
  }
});

/** What both attention suites' cases say: the shape of one call, and how it is split over the keys. */
interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  valueDim?: number;
  batch: number;
  rows: number;
  start: number;
  causal: boolean;
  chunk: number;
  alibi?: boolean;
  softcap?: number;
  /** Padded slots per sequence (left of a causal one, right of a bidirectional one). */
  padding?: number[];
}

d('attention (attention_visible, attention_score, merge_weight: split over the keys, then merged)', () => {
  interface Case extends AttentionShape {
    alibiScaled?: boolean;
    window?: number;
    bias?: boolean;
  }
  const cases: Case[] = [
    { heads: 6, kvHeads: 2, headDim: 7, batch: 2, rows: 1, start: 40, causal: true, chunk: 16, padding: [0, 5] },
    { heads: 4, kvHeads: 4, headDim: 16, batch: 1, rows: 6, start: 0, causal: true, chunk: 4 },
    { heads: 5, kvHeads: 1, headDim: 9, valueDim: 6, batch: 2, rows: 3, start: 10, causal: true, chunk: 5 },
    { heads: 4, kvHeads: 2, headDim: 6, batch: 2, rows: 2, start: 20, causal: true, chunk: 7, alibi: true },
    { heads: 4, kvHeads: 2, headDim: 6, batch: 1, rows: 2, start: 20, causal: true, chunk: 7, alibi: true, alibiScaled: true },
    { heads: 4, kvHeads: 2, headDim: 7, batch: 1, rows: 4, start: 30, causal: true, chunk: 8, window: 5 },
    { heads: 2, kvHeads: 1, headDim: 8, batch: 1, rows: 2, start: 12, causal: true, chunk: 3, softcap: 2 },
    { heads: 3, kvHeads: 3, headDim: 5, batch: 2, rows: 5, start: 0, causal: false, chunk: 2, bias: true, padding: [0, 2] },
    { heads: 6, kvHeads: 3, headDim: 5, batch: 2, rows: 3, start: 9, causal: true, chunk: 4, alibi: true, window: 4, softcap: 3, bias: true, padding: [1, 0] },
    { heads: 8, kvHeads: 8, headDim: 128, batch: 1, rows: 1, start: 600, causal: true, chunk: 256 },
  ];
  for (const [n, c] of cases.entries()) {
    const text = `${c.causal ? 'causal' : 'bidirectional'} heads ${c.heads}/${c.kvHeads} dim ${c.headDim}${c.valueDim ? `/${c.valueDim}` : ''}, batch ${c.batch} × ${c.rows} rows at ${c.start}, chunks of ${c.chunk}${c.alibi ? (c.alibiScaled ? ', ALiBi scaled' : ', ALiBi') : ''}${c.window ? `, window ${c.window}` : ''}${c.softcap ? `, softcap ${c.softcap}` : ''}${c.bias ? ', bias' : ''}`;
    it(text, () => {
      const next = random(1000 + n);
      const valueDim = c.valueDim ?? c.headDim;
      const keys = c.causal ? c.start + c.rows : c.rows;
      const capacity = keys + 3; // spare slots the kernels must not read
      const kw = c.kvHeads * c.headDim;
      const vw = c.kvHeads * valueDim;
      const q = uniform(next, c.batch * c.rows * c.heads * c.headDim, c.softcap ? -3 : -1, c.softcap ? 3 : 1);
      const kCache = uniform(next, c.batch * capacity * kw);
      const vCache = uniform(next, c.batch * capacity * vw);
      const padding = c.padding ?? Array<number>(c.batch).fill(0);
      const keyMask = Int32Array.from({ length: c.batch * keys }, (_, i) => (c.causal ? (i % keys >= padding[Math.floor(i / keys)]! ? 1 : 0) : i % keys < keys - padding[Math.floor(i / keys)]! ? 1 : 0));
      const keyPositions = Int32Array.from({ length: c.batch * keys }, (_, i) => Math.max(0, (i % keys) - padding[Math.floor(i / keys)]!));
      const bias = c.bias ? uniform(next, c.heads * c.rows * keys, -2, 2) : undefined;
      const alibi = c.alibi ? Float32Array.from({ length: c.heads }, (_, h) => 2 ** ((-8 * (h + 1)) / c.heads)) : undefined;
      const scale = 1 / Math.sqrt(c.headDim);
      const got = math!.attention({
        q, kCache, vCache, keyMask, keyPositions: alibi ? keyPositions : null, bias: bias ?? null, alibi: alibi ?? null,
        batch: c.batch, rows: c.rows, start: c.causal ? c.start : 0, keys, capacity, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim, scale,
        causal: c.causal ? 1 : 0, alibiScaled: c.alibiScaled ? 1 : 0, window: c.window ?? 0, softcap: c.softcap ?? 0, chunk: c.chunk,
      });
      const want = ref.attention({
        q, kCache, vCache, slots: capacity, batch: c.batch, rows: c.rows, start: c.causal ? c.start : 0, keys, keyMask, keyPositions,
        ...(bias ? { bias } : {}), ...(alibi ? { alibi, alibiScaled: c.alibiScaled ?? false } : {}),
        heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim, scale, mask: c.causal ? 'causal' : 'bidirectional',
        ...(c.window ? { window: c.window } : {}), ...(c.softcap ? { softcap: c.softcap } : {}),
      });
      expectClose('attention', got, want, { relOfMax: 2e-5 });
    });
  }
});

d('attention, interface version 3 (relative terms, per-sequence and masking bias, expectation scoring: relative_row, attention_bias_masks, expectation_weight, l2_inverse)', () => {
  type Layout = 'head' | 'shared';
  interface Case extends AttentionShape {
    bias?: 'shared' | 'sequence';
    /** Put ≤ -1e30 entries (-1e30, -3e38, -Infinity) in the bias, hiding every key of one query somewhere. */
    masking?: boolean;
    relative?: { positions: number; keys?: Layout; queries?: Layout; values?: Layout };
    bits?: number;
  }
  const cases: Case[] = [
    { heads: 4, kvHeads: 2, headDim: 6, batch: 2, rows: 3, start: 4, causal: true, chunk: 3, relative: { positions: 9, keys: 'head', queries: 'head', values: 'head' } },
    { heads: 3, kvHeads: 3, headDim: 5, valueDim: 4, batch: 1, rows: 5, start: 0, causal: false, chunk: 2, relative: { positions: 9, keys: 'shared', values: 'shared' } },
    { heads: 2, kvHeads: 1, headDim: 8, batch: 2, rows: 2, start: 6, causal: true, chunk: 4, relative: { positions: 15, queries: 'shared' }, alibi: true, softcap: 3, bias: 'shared', padding: [2, 0] },
    { heads: 4, kvHeads: 4, headDim: 4, batch: 1, rows: 4, start: 0, causal: false, chunk: 3, relative: { positions: 7, keys: 'head', queries: 'shared', values: 'head' }, bias: 'sequence' },
    { heads: 3, kvHeads: 1, headDim: 5, batch: 3, rows: 4, start: 0, causal: false, chunk: 3, bias: 'sequence', masking: true, padding: [0, 1, 0] },
    { heads: 2, kvHeads: 2, headDim: 6, batch: 2, rows: 2, start: 5, causal: true, chunk: 2, bias: 'shared', masking: true },
    { heads: 4, kvHeads: 2, headDim: 8, batch: 2, rows: 3, start: 0, causal: false, chunk: 2, bits: 8, padding: [0, 2] },
    { heads: 2, kvHeads: 2, headDim: 16, valueDim: 12, batch: 1, rows: 3, start: 9, causal: true, chunk: 5, bits: 1 },
    { heads: 2, kvHeads: 1, headDim: 64, batch: 1, rows: 2, start: 300, causal: true, chunk: 128, bits: 32 },
  ];
  for (const [n, c] of cases.entries()) {
    const rel = c.relative;
    const text = `${c.causal ? 'causal' : 'bidirectional'} heads ${c.heads}/${c.kvHeads} dim ${c.headDim}${c.valueDim ? `/${c.valueDim}` : ''}, batch ${c.batch} × ${c.rows} rows at ${c.start}, chunks of ${c.chunk}${
      rel ? `, relative (${rel.positions} positions; keys ${rel.keys ?? '-'}, queries ${rel.queries ?? '-'}, values ${rel.values ?? '-'})` : ''
    }${c.bias ? `, ${c.bias === 'shared' ? 'shared' : 'per-sequence'} bias${c.masking ? ' with ≤ -1e30 entries' : ''}` : ''}${c.alibi ? ', ALiBi' : ''}${c.softcap ? `, softcap ${c.softcap}` : ''}${c.bits ? `, expectation ${c.bits} bits` : ''}`;
    it(text, () => {
      const next = random(2000 + n);
      const valueDim = c.valueDim ?? c.headDim;
      const keys = c.causal ? c.start + c.rows : c.rows;
      const capacity = keys + 2;
      const kw = c.kvHeads * c.headDim;
      const vw = c.kvHeads * valueDim;
      const q = uniform(next, c.batch * c.rows * c.heads * c.headDim);
      const kCache = uniform(next, c.batch * capacity * kw);
      const vCache = uniform(next, c.batch * capacity * vw);
      const padding = c.padding ?? Array<number>(c.batch).fill(0);
      const keyMask = Int32Array.from({ length: c.batch * keys }, (_, i) => (c.causal ? (i % keys >= padding[Math.floor(i / keys)]! ? 1 : 0) : i % keys < keys - padding[Math.floor(i / keys)]! ? 1 : 0));
      const keyPositions = Int32Array.from({ length: c.batch * keys }, (_, i) => Math.max(0, (i % keys) - padding[Math.floor(i / keys)]!));
      const biasCount = (c.bias === 'sequence' ? c.batch : 1) * c.heads * c.rows * keys;
      const bias = c.bias ? uniform(next, biasCount, -2, 2) : undefined;
      if (bias && c.masking) {
        const masks = [-1e30, -3e38, -Infinity];
        for (let i = 0; i < bias.length; i++) if (next() < 0.3) bias[i] = masks[i % 3]!;
        bias.fill(-Infinity, c.rows * keys, c.rows * keys + keys); // every key of one query row of head 1 (sequence 0) hidden: zeros
      }
      const alibi = c.alibi ? Float32Array.from({ length: c.heads }, (_, h) => 2 ** ((-8 * (h + 1)) / c.heads)) : undefined;
      const tableOf = (layout: Layout | undefined, width: number) => (layout === undefined ? undefined : uniform(next, rel!.positions * (layout === 'head' ? c.heads : 1) * width));
      const relKeys = tableOf(rel?.keys, c.headDim);
      const relQueries = tableOf(rel?.queries, c.headDim);
      const relValues = tableOf(rel?.values, valueDim);
      const relIndex = rel ? Int32Array.from({ length: c.rows * keys }, (_, i) => Math.min(rel.positions - 1, Math.max(0, Math.floor(i / keys) + c.start - (i % keys) + (rel.positions >> 1)))) : undefined;
      const scale = 1 / Math.sqrt(c.headDim);
      const hostTable = (data: Float32Array | undefined, layout: Layout | undefined) => (data ? { data, positions: rel!.positions, perHead: layout === 'head' } : null);
      const got = math!.attention({
        q, kCache, vCache, keyMask, keyPositions: alibi ? keyPositions : null, bias: bias ?? null, biasPerSequence: c.bias === 'sequence', alibi: alibi ?? null,
        batch: c.batch, rows: c.rows, start: c.causal ? c.start : 0, keys, capacity, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim, scale,
        causal: c.causal ? 1 : 0, alibiScaled: 0, window: 0, softcap: c.softcap ?? 0, chunk: c.chunk, bits: c.bits ?? 0,
        relIndex: relIndex ?? null, relKeys: hostTable(relKeys, rel?.keys), relQueries: hostTable(relQueries, rel?.queries), relValues: hostTable(relValues, rel?.values),
      });
      const want = ref.attention({
        q, kCache, vCache, slots: capacity, batch: c.batch, rows: c.rows, start: c.causal ? c.start : 0, keys, keyMask, keyPositions,
        ...(bias ? { bias } : {}), ...(alibi ? { alibi } : {}), ...(c.softcap ? { softcap: c.softcap } : {}),
        ...(rel ? { relative: { positions: rel.positions, index: relIndex!, ...(relKeys ? { keys: relKeys } : {}), ...(relQueries ? { queries: relQueries } : {}), ...(relValues ? { values: relValues } : {}) } } : {}),
        ...(c.bits ? { expectation: { bits: c.bits } } : {}),
        heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, valueDim, scale, mask: c.causal ? 'causal' : 'bidirectional',
      });
      if (c.masking) {
        // the fully hidden query row outputs zeros (not a softmax over equal -1e30 scores)
        const row = 0 * c.rows + 0;
        expect(Array.from(got.subarray((row * c.heads + 1) * valueDim, (row * c.heads + 2) * valueDim))).toEqual(Array<number>(valueDim).fill(0));
      }
      if (c.bits) {
        // every output row of a head is a unit vector (or zeros)
        for (let r = 0; r < c.batch * c.rows * c.heads; r++) {
          const norm = Math.hypot(...got.subarray(r * valueDim, (r + 1) * valueDim));
          expect(norm === 0 || Math.abs(norm - 1) < 1e-5, `row ${r} norm ${norm}`).toBe(true);
        }
      }
      expectClose('attention', got, want, { relOfMax: 2e-5 });
    });
  }

  it('expectation_weight: (1 − acos(c)/π)^bits, c = q̂·k / max(‖k‖, 1e-12) clamped into [-1, 1]', () => {
    // parallel, parallel past 1 by rounding (acos would be NaN), orthogonal, opposite, a zero key, then random cosines
    const next = random(5);
    const dots = Float32Array.from([5, 1.0000004, 0, -2, 0, ...uniform(next, 200)]);
    const squares = Float32Array.from([25, 1, 7, 4, 0, ...Array.from({ length: 200 }, () => 1)]);
    for (const bits of [1, 3, 16]) {
      const got = math!.expectationWeight(dots, squares, bits);
      expect(Array.from(got.subarray(0, 2))).toEqual([1, 1]); // acos(1) = 0 exactly, also for a cosine rounded past 1
      const want = Array.from(dots, (d, i) => (1 - Math.acos(Math.min(1, Math.max(-1, d / Math.max(Math.sqrt(squares[i]!), 1e-12)))) / Math.PI) ** bits);
      expectClose(`expectation weights, ${bits} bits`, got, want, { rel: 2e-6, abs: 1e-7 });
    }
  });
});

d('selection (route_row, ranks_before)', () => {
  for (const o of [
    { rows: 5, experts: 4, topK: 2, normalize: true },
    { rows: 3, experts: 8, topK: 3, normalize: false },
    { rows: 7, experts: 7, topK: 1, normalize: false },
    { rows: 5, experts: 60, topK: 4, normalize: true },
    { rows: 2, experts: 128, topK: 8, normalize: true },
  ]) {
    it(`route [${o.rows}, ${o.experts}] top ${o.topK}${o.normalize ? ' renormalised' : ''}, with a row of equal logits`, () => {
      const next = random(o.experts);
      const logits = Float32Array.from({ length: o.rows * o.experts }, () => next() * 8 - 4);
      if (o.rows > 1) logits.fill(0.25, o.experts, 2 * o.experts);
      const got = math!.route(logits, o.rows, o.experts, o.topK, o.normalize ? 1 : 0);
      const want = ref.route(logits, o.experts, o.topK, o.normalize);
      expect(Array.from(got.experts)).toEqual(Array.from(want.experts));
      expectClose('route weights', got.weights, want.weights, { abs: 1e-6 });
    });
  }
  for (const o of [
    { rows: 3, cols: 33, k: 4, ties: true },
    { rows: 3, cols: 33, k: 33, ties: true },
    { rows: 1, cols: 32001, k: 40, ties: false },
    { rows: 2, cols: 130, k: 5, ties: false },
  ]) {
    it(`topk [${o.rows}, ${o.cols}] k ${o.k}${o.ties ? ' with ties' : ''}`, () => {
      const next = random(o.cols + o.k);
      const x = o.ties ? Float32Array.from({ length: o.rows * o.cols }, () => Math.floor(next() * 5)) : uniform(next, o.rows * o.cols, -10, 10);
      const got = math!.topk(x, o.cols, o.k);
      const want = ref.topk(x, o.cols, o.k);
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      expect(Array.from(got.values)).toEqual(Array.from(want.values, Math.fround));
    });
  }
});
