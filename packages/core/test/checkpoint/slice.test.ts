/**
 * readSlice / readSliceBytes: ranges along one dimension, returned in the order asked, converted
 * exactly, and reading exactly the requested bytes from disk (counted by ckpt.bytesRead).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  openCheckpoint,
  readSlice,
  readSliceBytes,
  sliceByteLength,
  type Checkpoint,
  type SliceRequest,
  type TensorToWrite,
} from '../../src/index.js';
import { bf16Bytes, expectTpError, f16Bytes, f32Iota, f64Bytes, i32Bytes, iota, patterned, useTempDirs, writeCheckpoint } from '../helpers/files.js';

const tempDir = useTempDirs();

const R = 6;
const C = 8;
// Exactly representable in f16 and bf16: small integers, halves, quarters, powers of two, signed zero.
const EXACT = [0, -0, 1, -1, 0.5, -0.25, 2, 3, 7.5, -12, 0.125, 64, 96, -256, 1024, 2 ** -6];

const TENSORS: TensorToWrite[] = [
  f32Iota('rows', [R, C]),
  f32Iota('cube', [3, 4, 5]),
  { name: 'half', dtype: 'F16', shape: [4, 4], data: f16Bytes(EXACT) },
  { name: 'brain', dtype: 'BF16', shape: [4, 4], data: bf16Bytes(EXACT) },
  { name: 'double', dtype: 'F64', shape: [2, 3], data: f64Bytes([0.5, -1, 3, 1e10, -(2 ** -20), 7]) },
  { name: 'ints', dtype: 'I32', shape: [2, 3], data: i32Bytes([1, -2, 3, -4, 5, -6]) },
  { name: 'scalar', dtype: 'F32', shape: [], data: new Uint8Array(Float32Array.of(42).buffer) },
  { name: 'vector', dtype: 'F32', shape: [5], data: new Uint8Array(Float32Array.from(iota(5)).buffer) },
  { name: 'nibbles', dtype: 'F4', shape: [4, 2], data: new Uint8Array(4) },
  { name: 'bytes', dtype: 'U8', shape: [3, 5, 2], data: patterned('bytes', 'U8', [3, 5, 2]).data },
  { name: 'none', dtype: 'F32', shape: [0], data: new Uint8Array(0) },
  { name: 'noRows', dtype: 'F16', shape: [0, 4], data: new Uint8Array(0) },
  { name: 'noCols', dtype: 'BF16', shape: [3, 0], data: new Uint8Array(0) },
];

let ckpt: Checkpoint;
beforeEach(async () => {
  const dir = await writeCheckpoint(await tempDir(), { config: { model_type: 'llama' }, files: { 'model.safetensors': TENSORS } });
  ckpt = await openCheckpoint(dir);
});
afterEach(() => ckpt.close());

/** Row-major value of `rows` / `cube` at an index: they hold 0, 1, 2, ... */
const rowsAt = (r: number, c: number) => r * C + c;
const cubeAt = (i: number, j: number, k: number) => (i * 4 + j) * 5 + k;

/** Read and return [result, bytes read by that call]. */
function counted<T>(read: () => T): [T, number] {
  const before = ckpt.bytesRead;
  const result = read();
  return [result, ckpt.bytesRead - before];
}

describe('dim 0 (rows)', () => {
  it('reads the whole tensor by default', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'rows'));
    expect(slice.shape).toEqual([R, C]);
    expect(Array.from(slice.data)).toEqual(iota(R * C));
    expect(read).toBe(R * C * 4);
  });

  it('reads one range of rows', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'rows', { ranges: [[2, 4]] }));
    expect(slice.shape).toEqual([2, C]);
    expect(Array.from(slice.data)).toEqual([...iota(C).map((c) => rowsAt(2, c)), ...iota(C).map((c) => rowsAt(3, c))]);
    expect(read).toBe(2 * C * 4);
  });

  it('concatenates several ranges in the order given, not sorted', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'rows', { dim: 0, ranges: [[4, 6], [0, 1], [2, 3]] }));
    expect(slice.shape).toEqual([4, C]);
    const rows = [4, 5, 0, 2];
    expect(Array.from(slice.data)).toEqual(rows.flatMap((r) => iota(C).map((c) => rowsAt(r, c))));
    expect(read).toBe(4 * C * 4);
  });

  it('reads touching ranges as given and repeated ranges twice', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'rows', { ranges: [[1, 2], [2, 3], [1, 2]] }));
    expect(slice.shape).toEqual([3, C]);
    expect(Array.from(slice.data)).toEqual([1, 2, 1].flatMap((r) => iota(C).map((c) => rowsAt(r, c))));
    expect(read).toBe(3 * C * 4);
  });

  it('reads elements of a 1-D tensor', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'vector', { ranges: [[3, 5], [0, 1]] }));
    expect(slice.shape).toEqual([3]);
    expect(Array.from(slice.data)).toEqual([3, 4, 0]);
    expect(read).toBe(12);
  });

  it('reads a scalar as shape []', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'scalar'));
    expect(slice.shape).toEqual([]);
    expect(Array.from(slice.data)).toEqual([42]);
    expect(read).toBe(4);
  });
});

describe('zero-element tensors', () => {
  it.each<[string, number[]]>([
    ['none', [0]],
    ['noRows', [0, 4]],
    ['noCols', [3, 0]],
  ])('reads %s whole by default: shape %j, no bytes', (name, shape) => {
    const [slice, read] = counted(() => readSlice(ckpt, name));
    expect(slice.shape).toEqual(shape);
    expect(slice.data.length).toBe(0);
    expect(read).toBe(0);
    expect(sliceByteLength(ckpt.tensor(name))).toBe(0);
  });

  it('reads rows of a tensor with no columns: the shape, no bytes', () => {
    const [slice, read] = counted(() => readSliceBytes(ckpt, 'noCols', { ranges: [[1, 3]] }));
    expect(slice.shape).toEqual([2, 0]);
    expect(read).toBe(0);
  });

  it('rejects any explicit range along a dimension of size 0 (bad-slice)', async () => {
    await expectTpError(() => readSliceBytes(ckpt, 'noRows', { ranges: [[0, 1]] }), { code: 'bad-slice', tensor: 'noRows' });
    await expectTpError(() => readSliceBytes(ckpt, 'noCols', { dim: 1, ranges: [[0, 0]] }), { code: 'bad-slice', tensor: 'noCols' });
  });
});

describe('later dimensions', () => {
  it('reads columns (dim 1) in the order given', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'rows', { dim: 1, ranges: [[5, 7], [0, 2]] }));
    expect(slice.shape).toEqual([R, 4]);
    const cols = [5, 6, 0, 1];
    expect(Array.from(slice.data)).toEqual(iota(R).flatMap((r) => cols.map((c) => rowsAt(r, c))));
    expect(read).toBe(R * 4 * 4);
  });

  it('reads half the columns by reading half the bytes, not the whole tensor', () => {
    const info = ckpt.tensor('rows');
    const [slice, read] = counted(() => readSliceBytes(ckpt, info, { dim: 1, ranges: [[0, C / 2]] }));
    expect(read).toBe(info.byteLength / 2);
    expect(slice.bytes.length).toBe(info.byteLength / 2);
  });

  it('reads a middle dimension of a 3-D tensor', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'cube', { dim: 1, ranges: [[3, 4], [1, 2]] }));
    expect(slice.shape).toEqual([3, 2, 5]);
    const expected: number[] = [];
    for (const i of iota(3)) for (const j of [3, 1]) for (const k of iota(5)) expected.push(cubeAt(i, j, k));
    expect(Array.from(slice.data)).toEqual(expected);
    expect(read).toBe(3 * 2 * 5 * 4);
  });

  it('reads the last dimension of a 3-D tensor', () => {
    const [slice, read] = counted(() => readSlice(ckpt, 'cube', { dim: 2, ranges: [[4, 5], [0, 2]] }));
    expect(slice.shape).toEqual([3, 4, 3]);
    const expected: number[] = [];
    for (const i of iota(3)) for (const j of iota(4)) for (const k of [4, 0, 1]) expected.push(cubeAt(i, j, k));
    expect(Array.from(slice.data)).toEqual(expected);
    expect(read).toBe(3 * 4 * 3 * 4);
  });

  it('returns the raw bytes of a non-float tensor', () => {
    const info = ckpt.tensor('bytes');
    const all = (TENSORS.find((t) => t.name === 'bytes')!.data as Uint8Array);
    const [slice, read] = counted(() => readSliceBytes(ckpt, info, { dim: 1, ranges: [[2, 3]] }));
    expect(slice.shape).toEqual([3, 1, 2]);
    // [3, 5, 2] bytes: element (i, 2, k) sits at i * 10 + 2 * 2 + k.
    expect(Array.from(slice.bytes)).toEqual([0, 1, 2].flatMap((i) => [all[i * 10 + 4], all[i * 10 + 5]]));
    expect(read).toBe(6);
  });

  it('reads I32 bytes as stored', () => {
    const slice = readSliceBytes(ckpt, 'ints', { dim: 1, ranges: [[1, 3]] });
    expect(Array.from(new Int32Array(slice.bytes.buffer, slice.bytes.byteOffset, 4))).toEqual([-2, 3, 5, -6]);
  });
});

describe('conversion to f32', () => {
  it('converts F16 exactly', () => {
    const slice = readSlice(ckpt, 'half');
    expect(slice.shape).toEqual([4, 4]);
    expect(Array.from(slice.data)).toEqual(EXACT);
    expect(Object.is(slice.data[1], -0)).toBe(true);
  });

  it('converts BF16 exactly', () => {
    const slice = readSlice(ckpt, 'brain');
    expect(Array.from(slice.data)).toEqual(EXACT);
    expect(Object.is(slice.data[1], -0)).toBe(true);
  });

  it('converts a column slice of F16 and BF16 exactly', () => {
    const cols = (values: number[]) => iota(4).flatMap((r) => [values[r * 4 + 3]!, values[r * 4 + 1]!]);
    const [half, readHalf] = counted(() => readSlice(ckpt, 'half', { dim: 1, ranges: [[3, 4], [1, 2]] }));
    const [brain, readBrain] = counted(() => readSlice(ckpt, 'brain', { dim: 1, ranges: [[3, 4], [1, 2]] }));
    expect(half.shape).toEqual([4, 2]);
    expect(Array.from(half.data)).toEqual(cols(EXACT));
    expect(Array.from(brain.data)).toEqual(cols(EXACT));
    expect(readHalf).toBe(4 * 2 * 2);
    expect(readBrain).toBe(4 * 2 * 2);
  });

  it('converts F64 to the nearest f32', () => {
    const slice = readSlice(ckpt, 'double', { ranges: [[1, 2]] });
    expect(Array.from(slice.data)).toEqual([Math.fround(1e10), Math.fround(-(2 ** -20)), 7]);
  });

  it('refuses to convert an integer tensor (bad-slice)', async () => {
    await expectTpError(() => readSlice(ckpt, 'ints'), { code: 'bad-slice', file: 'model.safetensors', tensor: 'ints' });
  });
});

describe('bad requests', () => {
  it.each<[string, string, SliceRequest]>([
    ['an end past the dimension', 'rows', { ranges: [[4, R + 1]] }],
    ['a negative start', 'rows', { ranges: [[-1, 2]] }],
    ['an empty range', 'rows', { ranges: [[2, 2]] }],
    ['an empty range list', 'rows', { ranges: [] }],
    ['a reversed range', 'rows', { ranges: [[4, 1]] }],
    ['a non-integer bound', 'rows', { ranges: [[0.5, 2]] }],
    ['a NaN bound', 'rows', { ranges: [[0, NaN]] }],
    ['a bad range after a good one', 'rows', { ranges: [[0, 2], [3, 99]] }],
    ['a column past the end', 'rows', { dim: 1, ranges: [[C - 1, C + 1]] }],
    ['a reversed range in a middle dimension', 'cube', { dim: 1, ranges: [[3, 2]] }],
    ['a dimension the tensor lacks', 'rows', { dim: 2 }],
    ['a negative dimension', 'rows', { dim: -1 }],
    ['a fractional dimension', 'cube', { dim: 0.5 }],
    ['a dimension of a scalar', 'scalar', { dim: 1 }],
    ['sub-byte elements', 'nibbles', { ranges: [[0, 2]] }],
  ])('rejects %s (bad-slice), reading nothing', async (_, tensor, request) => {
    const before = ckpt.bytesRead;
    await expectTpError(() => readSliceBytes(ckpt, tensor, request), { code: 'bad-slice', file: 'model.safetensors', tensor });
    await expectTpError(() => readSlice(ckpt, tensor, request), { code: 'bad-slice', file: 'model.safetensors', tensor });
    expect(ckpt.bytesRead).toBe(before);
  });

  it.each<[string, SliceRequest]>([
    ['a reversed range followed by one starting at its end', { ranges: [[3, 1], [1, 4]] }],
    ['an empty range followed by one starting at it', { ranges: [[2, 2], [2, 4]] }],
    ['a good range followed by a reversed one starting at its end', { ranges: [[0, 3], [3, 1]] }],
  ])('rejects %s (bad-slice): touching ranges are not merged before they are checked', async (_, request) => {
    const before = ckpt.bytesRead;
    await expectTpError(() => readSliceBytes(ckpt, 'rows', request), { code: 'bad-slice', tensor: 'rows' });
    expect(ckpt.bytesRead).toBe(before);
  });

  it('rejects a tensor the checkpoint lacks (tensor-not-found)', async () => {
    await expectTpError(() => readSlice(ckpt, 'nope'), { code: 'tensor-not-found', tensor: 'nope' });
  });
});

describe('sliceByteLength', () => {
  it.each<[string, SliceRequest]>([
    ['rows', {}],
    ['rows', { ranges: [[1, 3], [5, 6]] }],
    ['rows', { dim: 1, ranges: [[0, 4]] }],
    ['rows', { dim: 1, ranges: [[7, 8], [0, 1], [3, 6]] }],
    ['cube', { dim: 1, ranges: [[1, 3]] }],
    ['cube', { dim: 2, ranges: [[4, 5]] }],
    ['half', { dim: 1, ranges: [[0, 1]] }],
    ['brain', { ranges: [[2, 4]] }],
    ['double', { dim: 1, ranges: [[1, 2], [0, 1]] }],
    ['scalar', {}],
    ['vector', { ranges: [[1, 2], [2, 3]] }],
    ['bytes', { dim: 2, ranges: [[1, 2]] }],
  ])('agrees with readSliceBytes and bytesRead for %s %j', (name, request) => {
    const info = ckpt.tensor(name);
    const [slice, read] = counted(() => readSliceBytes(ckpt, info, request));
    expect(sliceByteLength(info, request)).toBe(slice.bytes.length);
    expect(read).toBe(slice.bytes.length);
  });

  it('is the whole tensor for the default request', () => {
    for (const t of ckpt.tensors.values()) expect(sliceByteLength(t)).toBe(t.byteLength);
  });
});
