/**
 * Properties of the checkpoint reader, with fast-check:
 * - parseSafetensorsHeader on any input either returns a header whose tensors tile the data section
 *   exactly, or throws a TpError — never another exception, never a hang;
 * - the same from valid headers (encodeSafetensorsHeader) after random corruption;
 * - written tensors read back byte for byte, and slices read exactly the bytes sliceByteLength says.
 */
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DTYPE_BITS,
  DTYPES,
  encodeSafetensorsHeader,
  isDtype,
  openCheckpoint,
  parseSafetensorsHeader,
  readSliceBytes,
  sliceByteLength,
  tensorByteLength,
  TpError,
  writeSafetensors,
  type Checkpoint,
  type Dtype,
  type SafetensorsHeader,
  type SliceRange,
} from '../../src/index.js';
import { f32Iota, putJson, useTempDirs } from '../helpers/files.js';

const FILE = 'prop.safetensors';
/** No single parse may take longer than this (a generous bound: they take microseconds). */
const MAX_CALL_MS = 250;

type Outcome = { ok: true; header: SafetensorsHeader } | { ok: false; error: TpError };

let slowest = 0;

/** Parse, classifying the result; anything thrown that is not a TpError fails the property. */
function parse(prefix: Uint8Array, fileSize: number): Outcome {
  const started = performance.now();
  try {
    return { ok: true, header: parseSafetensorsHeader(prefix, fileSize, FILE) };
  } catch (e) {
    if (!TpError.isInstance(e)) throw new Error(`not a TpError: ${String((e as Error)?.stack ?? e)}`);
    expect((e as TpError & { file?: string }).file).toBe(FILE);
    return { ok: false, error: e };
  } finally {
    const ms = performance.now() - started;
    slowest = Math.max(slowest, ms);
    if (ms > MAX_CALL_MS) throw new Error(`parse took ${ms.toFixed(0)} ms`);
  }
}

/** A returned header must describe a well-formed file of `fileSize` bytes. */
function checkHeader(header: SafetensorsHeader, prefix: Uint8Array, fileSize: number) {
  expect(header.fileSize).toBe(fileSize);
  expect(header.dataOffset).toBe(8 + header.headerLength);
  expect(header.headerLength).toBe(Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true)));
  expect(header.dataOffset).toBeLessThanOrEqual(fileSize);
  expect(new Set(header.tensors.map((t) => t.name)).size).toBe(header.tensors.length);
  let at = header.dataOffset;
  for (const t of header.tensors) {
    expect(isDtype(t.dtype)).toBe(true);
    expect(t.name).not.toBe('__metadata__');
    expect(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
    expect(t.byteLength).toBe(tensorByteLength(t.dtype, t.shape) + 0); // + 0: a shape may hold -0, valid JSON for 0
    expect(t.offset).toBe(at); // contiguous from the data section's start, in order
    at += t.byteLength;
  }
  expect(at).toBe(fileSize); // and ending exactly at the end of the file
  for (const v of Object.values(header.metadata)) expect(typeof v).toBe('string');
}

function checkOutcome(prefix: Uint8Array, fileSize: number): Outcome {
  const outcome = parse(prefix, fileSize);
  if (outcome.ok) checkHeader(outcome.header, prefix, fileSize);
  return outcome;
}

/** 8-byte little-endian length field + body. */
function withLength(body: Uint8Array, length: bigint = BigInt(body.length)): Uint8Array {
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, length, true);
  out.set(body, 8);
  return out;
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A file size: usually near the prefix length, sometimes anything at all. */
const fileSizeFor = (length: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: -8, max: 64 }).map((d) => length + d) },
    { weight: 1, arbitrary: fc.integer({ min: -(2 ** 31), max: 2 ** 31 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 7, 8, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2) },
  );

describe('parseSafetensorsHeader on arbitrary input', () => {
  afterAll(() => expect(slowest).toBeLessThan(MAX_CALL_MS));

  it('arbitrary bytes and file size: a tiled header or a TpError', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }).chain((bytes) => fc.tuple(fc.constant(bytes), fileSizeFor(bytes.length))),
        ([bytes, fileSize]) => {
          checkOutcome(bytes, fileSize);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a correct length field before arbitrary JSON or text: a tiled header or a TpError', () => {
    const body = fc.oneof(
      fc.json().map(utf8),
      fc.string({ unit: 'binary', maxLength: 60 }).map(utf8),
      fc.jsonValue().map((v) => utf8(JSON.stringify({ t: v }))),
    );
    fc.assert(
      fc.property(
        body.chain((b) => fc.tuple(fc.constant(withLength(b)), fileSizeFor(8 + b.length))),
        ([prefix, fileSize]) => {
          checkOutcome(prefix, fileSize);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('headers of loosely typed entries: a tiled header or a TpError', () => {
    const dim = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1.5, 2 ** 53, '2', null) });
    const offset = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 48 }) }, { weight: 1, arbitrary: fc.constantFrom(-4, 0.5, 2 ** 60, '8') });
    const tensorEntry = fc.oneof(
      { weight: 10, arbitrary: fc.record({ dtype: fc.oneof(fc.constantFrom(...DTYPES), fc.string({ maxLength: 4 })), shape: fc.array(dim, { maxLength: 3 }), data_offsets: fc.array(offset, { minLength: 1, maxLength: 3 }) }) },
      { weight: 1, arbitrary: fc.jsonValue() },
    );
    const metadata = fc.oneof(fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 })), fc.jsonValue());
    const header = fc.record(
      { __metadata__: metadata, tensors: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), tensorEntry, { maxKeys: 5 }) },
      { requiredKeys: ['tensors'] },
    );
    let valid = 0;
    fc.assert(
      fc.property(header, fc.integer({ min: -2, max: 64 }), (h, extra) => {
        const json = JSON.stringify({ ...('__metadata__' in h ? { __metadata__: h.__metadata__ } : {}), ...h.tensors });
        const prefix = withLength(utf8(json));
        if (checkOutcome(prefix, prefix.length + extra).ok) valid++;
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the success path too, or the property says little.
    expect(valid).toBeGreaterThan(0);
  });
});

// ---- valid headers, then corrupted -----------------------------------------------------------

const NAMES = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 10 }) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'a"b', 'x\\y', '{', ',', ':', '\u00e9', 'model.layers.0.w') },
);

interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/** Tensors with unique names, any dtype, small shapes (sub-byte dtypes padded to whole bytes). */
const tensorList = fc.uniqueArray(
  fc
    .record({ name: NAMES.filter((n) => n !== '__metadata__'), dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }) })
    .map((t): TensorSpec => (DTYPE_BITS[t.dtype] % 8 === 0 ? t : { ...t, shape: [...t.shape, 4] })),
  { selector: (t) => t.name, maxLength: 6 },
);

type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'digit'; nth: number; digit: number }
  | { kind: 'insert'; at: number; char: string }
  | { kind: 'delete'; at: number }
  | { kind: 'dtype'; nth: number; dtype: Dtype }
  | { kind: 'length'; value: bigint }
  | { kind: 'lengthDelta'; delta: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'fileSize'; delta: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('digit' as const), nth: fc.nat(), digit: fc.integer({ min: 0, max: 9 }) }) },
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), char: fc.constantFrom(...'0123456789,[]{}":- .e') }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dtype' as const), nth: fc.nat(), dtype: fc.constantFrom(...DTYPES) }) },
  fc.record({ kind: fc.constant('length' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  fc.record({ kind: fc.constant('lengthDelta' as const), delta: fc.integer({ min: -16, max: 16 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fileSize' as const), delta: fc.integer({ min: -32, max: 32 }) }) },
);

/** Apply a mutation to (prefix, fileSize). JSON-level edits keep the length field in step. */
function mutate(prefix: Uint8Array, fileSize: number, m: Mutation): [Uint8Array, number] {
  const body = () => Buffer.from(prefix.subarray(Math.min(8, prefix.length))).toString('latin1');
  const rebuild = (text: string): Uint8Array => withLength(Buffer.from(text, 'latin1'));
  const length = prefix.length >= 8 ? new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true) : 0n;
  switch (m.kind) {
    case 'flip':
    case 'set': {
      if (prefix.length === 0) return [prefix, fileSize];
      const out = prefix.slice();
      const at = m.at % out.length;
      out[at] = m.kind === 'flip' ? out[at]! ^ m.xor : m.value;
      return [out, fileSize];
    }
    case 'digit': {
      const text = body();
      const digits = [...text.matchAll(/[0-9]/g)].map((x) => x.index);
      if (digits.length === 0) return [prefix, fileSize];
      const at = digits[m.nth % digits.length]!;
      return [rebuild(text.slice(0, at) + String(m.digit) + text.slice(at + 1)), fileSize];
    }
    case 'insert':
    case 'delete': {
      const text = body();
      const at = m.at % (text.length + 1);
      const next = m.kind === 'insert' ? text.slice(0, at) + m.char + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
      const delta = next.length - text.length;
      return [rebuild(next), fileSize + delta];
    }
    case 'dtype': {
      const text = body();
      const found = [...text.matchAll(/"dtype":"([A-Z0-9_]+)"/g)];
      if (found.length === 0) return [prefix, fileSize];
      const hit = found[m.nth % found.length]!;
      const next = text.slice(0, hit.index) + `"dtype":"${m.dtype}"` + text.slice(hit.index + hit[0].length);
      return [rebuild(next), fileSize + next.length - text.length];
    }
    case 'length': {
      const out = prefix.length >= 8 ? prefix.slice() : new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, m.value, true);
      return [out, fileSize];
    }
    case 'lengthDelta': {
      if (prefix.length < 8) return [prefix, fileSize];
      const out = prefix.slice();
      const next = length + BigInt(m.delta);
      new DataView(out.buffer).setBigUint64(0, next < 0n ? 0n : next, true);
      return [out, fileSize];
    }
    case 'truncate':
      return [prefix.slice(0, m.keep % (prefix.length + 1)), fileSize];
    case 'fileSize':
      return [prefix, fileSize + m.delta];
  }
}

describe('parseSafetensorsHeader on corrupted valid headers', () => {
  afterAll(() => expect(slowest).toBeLessThan(MAX_CALL_MS));

  it('a header from encodeSafetensorsHeader parses back to the same tensors', () => {
    fc.assert(
      fc.property(tensorList, fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })), (tensors, metadata) => {
        const prefix = encodeSafetensorsHeader(tensors, metadata);
        const dataSize = tensors.reduce((n, t) => n + tensorByteLength(t.dtype, t.shape), 0);
        const outcome = checkOutcome(prefix, prefix.length + dataSize);
        if (!outcome.ok) throw outcome.error;
        expect(outcome.header.metadata).toEqual(metadata);
        // Every tensor comes back at the offset it was written to. (Zero-length tensors sharing an
        // offset may come back in any order among themselves, so compare by name.)
        const byName = new Map(outcome.header.tensors.map((t) => [t.name, t]));
        expect(byName.size).toBe(tensors.length);
        let offset = outcome.header.dataOffset;
        for (const t of tensors) {
          expect(byName.get(t.name)).toMatchObject({ dtype: t.dtype, shape: t.shape, offset, byteLength: tensorByteLength(t.dtype, t.shape) });
          offset += tensorByteLength(t.dtype, t.shape);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('after random corruption: a tiled header or a TpError', () => {
    const counts = { ok: 0, failed: new Map<string, number>() };
    fc.assert(
      fc.property(tensorList, fc.array(mutation, { minLength: 1, maxLength: 4 }), (tensors, mutations) => {
        let prefix = encodeSafetensorsHeader(tensors);
        let fileSize = prefix.length + tensors.reduce((n, t) => n + tensorByteLength(t.dtype, t.shape), 0);
        for (const m of mutations) [prefix, fileSize] = mutate(prefix, fileSize, m);
        const outcome = checkOutcome(prefix, fileSize);
        if (outcome.ok) counts.ok++;
        else counts.failed.set(outcome.error.code, (counts.failed.get(outcome.error.code) ?? 0) + 1);
      }),
      { numRuns: 4000 },
    );
    // The mutations must exercise both outcomes and a good spread of the checks.
    expect(counts.ok).toBeGreaterThan(0);
    for (const code of ['header-not-json', 'header-not-utf8', 'header-length-out-of-range', 'header-too-large', 'length-mismatch', 'trailing-bytes', 'file-truncated']) {
      expect(counts.failed.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });
});

// ---- on disk: round trip and slices -----------------------------------------------------------

describe('on disk', () => {
  const tempDir = useTempDirs();

  it('tensors written by writeSafetensors read back byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(tensorList, fc.integer({ min: 0, max: 255 }), async (specs, seed) => {
        const dir = await tempDir();
        const tensors = specs.map((t, i) => {
          const data = new Uint8Array(tensorByteLength(t.dtype, t.shape));
          for (let j = 0; j < data.length; j++) data[j] = (seed + i * 31 + j * 7) & 0xff;
          return { ...t, data };
        });
        await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
        await putJson(dir, 'config.json', { model_type: 'x' });
        const ckpt = await openCheckpoint(dir);
        try {
          const header = ckpt.files[0]!;
          checkHeader(header, encodeSafetensorsHeader(tensors), header.fileSize);
          expect(header.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
          let expectedRead = 0;
          for (const t of tensors) {
            if (DTYPE_BITS[t.dtype] % 8 !== 0) continue; // sub-byte tensors cannot be sliced
            expect(readSliceBytes(ckpt, t.name).bytes).toEqual(t.data);
            expectedRead += t.data.length;
          }
          expect(ckpt.bytesRead).toBe(expectedRead);
        } finally {
          ckpt.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  describe('slices', () => {
    const SHAPES: Record<string, number[]> = { a: [5, 6], b: [3, 4, 5], c: [7], d: [2, 3, 2, 2], e: [1, 9], f: [4, 1, 3] };
    let dir: string;
    let ckpt: Checkpoint;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'tp-core-slices-'));
      await writeSafetensors(path.join(dir, 'model.safetensors'), Object.entries(SHAPES).map(([name, shape]) => f32Iota(name, shape)));
      await putJson(dir, 'config.json', { model_type: 'x' });
      ckpt = await openCheckpoint(dir);
    });
    afterAll(async () => {
      ckpt.close();
      await rm(dir, { recursive: true, force: true });
    });

    /** A tensor, a dimension and 1-4 valid ranges along it. */
    const request = fc
      .constantFrom(...Object.keys(SHAPES))
      .chain((name) => fc.tuple(fc.constant(name), fc.integer({ min: 0, max: SHAPES[name]!.length - 1 })))
      .chain(([name, dim]) => {
        const size = SHAPES[name]![dim]!;
        const range = fc
          .tuple(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: size }))
          .map(([start, length]): SliceRange => [start, Math.min(size, start + length)]);
        return fc.tuple(fc.constant(name), fc.constant(dim), fc.array(range, { minLength: 1, maxLength: 4 }));
      });

    it('return the requested elements in order, reading exactly sliceByteLength bytes', () => {
      fc.assert(
        fc.property(request, ([name, dim, ranges]) => {
          const shape = SHAPES[name]!;
          const info = ckpt.tensor(name);
          const before = ckpt.bytesRead;
          const slice = readSliceBytes(ckpt, info, { dim, ranges });
          const read = ckpt.bytesRead - before;

          const size = shape[dim]!;
          const outer = shape.slice(0, dim).reduce((a, b) => a * b, 1);
          const inner = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
          const expected: number[] = [];
          for (let o = 0; o < outer; o++) {
            for (const [start, end] of ranges) for (let i = start; i < end; i++) for (let j = 0; j < inner; j++) expected.push((o * size + i) * inner + j);
          }
          const picked = ranges.reduce((n, [s, e]) => n + (e - s), 0);
          expect(slice.shape).toEqual(shape.map((d, k) => (k === dim ? picked : d)));
          expect(Array.from(new Float32Array(slice.bytes.buffer, slice.bytes.byteOffset, slice.bytes.length / 4))).toEqual(expected);
          expect(slice.bytes.length).toBe(expected.length * 4);
          expect(read).toBe(slice.bytes.length);
          expect(sliceByteLength(info, { dim, ranges })).toBe(slice.bytes.length);
        }),
        { numRuns: 1500 },
      );
    });
  });
});
