/**
 * The safetensors header reader on real files: valid files from the project's writer, and every way
 * a file can be broken, each asserting the exact error code and the file / tensor it names.
 */
import { appendFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  encodeSafetensorsHeader,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  writeSafetensors,
  type SafetensorsHeader,
} from '../../src/index.js';
import { expectTpError, f32Bytes, patterned, put, rawSafetensors, useTempDirs } from '../helpers/files.js';

const tempDir = useTempDirs();

/** One header entry. */
const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

/** Write a raw file named `name` into a fresh folder and return its path. */
async function rawFile(name: string, bytes: Uint8Array): Promise<string> {
  return put(await tempDir(), name, bytes);
}

/** Expect reading `file`'s header to fail with `code`, naming the file (and `tensor` when given). */
function expectHeaderError(file: string, code: string, tensor?: string) {
  return expectTpError(() => readSafetensorsHeader(file), { code, file: path.basename(file), tensor, name: 'CheckpointError' });
}

/** Offsets of every tensor, checked to tile the data section. */
function expectTiled(header: SafetensorsHeader) {
  let at = header.dataOffset;
  for (const t of header.tensors) {
    expect(t.offset).toBe(at);
    at += t.byteLength;
  }
  expect(at).toBe(header.fileSize);
}

describe('valid files', () => {
  it('reads the header written by writeSafetensors: offsets, sizes, metadata', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(
      file,
      [patterned('a', 'F32', [2, 3]), patterned('b', 'BF16', [5]), patterned('c', 'I64', [1, 1, 2]), patterned('d', 'U8', [3])],
      { format: 'pt', note: 'hello' },
    );
    const header = await readSafetensorsHeader(file);
    const { size } = await stat(file);
    expect(header.file).toBe(file);
    expect(header.fileSize).toBe(size);
    expect(header.dataOffset).toBe(8 + header.headerLength);
    expect(header.headerLength % 8).toBe(0); // the writer pads with spaces
    expect(header.metadata).toEqual({ format: 'pt', note: 'hello' });
    expect(header.tensors.map((t) => [t.name, t.dtype, t.shape, t.byteLength])).toEqual([
      ['a', 'F32', [2, 3], 24],
      ['b', 'BF16', [5], 10],
      ['c', 'I64', [1, 1, 2], 16],
      ['d', 'U8', [3], 3],
    ]);
    expect(header.tensors.every((t) => t.file === file)).toBe(true);
    expectTiled(header);
    expect(size).toBe(header.dataOffset + 24 + 10 + 16 + 3);
  });

  it('orders tensors by offset, not by their order in the JSON', async () => {
    const json = { z: entry('F32', [1], [0, 4]), a: entry('F32', [2], [4, 12]), m: entry('U8', [4], [12, 16]) };
    const reversed = { m: json.m, a: json.a, z: json.z };
    const header = await readSafetensorsHeader(await rawFile('x.safetensors', rawSafetensors(reversed, { data: 16 })));
    expect(header.tensors.map((t) => t.name)).toEqual(['z', 'a', 'm']);
    expect(header.tensors.map((t) => t.offset - header.dataOffset)).toEqual([0, 4, 12]);
    expectTiled(header);
  });

  it('accepts zero-element tensors, scalars and a header with no tensors', async () => {
    const header = await readSafetensorsHeader(
      await rawFile(
        'x.safetensors',
        rawSafetensors(
          { empty: entry('F32', [0, 4], [0, 0]), scalar: entry('F64', [], [0, 8]), tail: entry('I8', [3, 0], [8, 8]) },
          { data: 8 },
        ),
      ),
    );
    expect(header.tensors.map((t) => [t.name, t.byteLength])).toEqual([
      ['empty', 0],
      ['scalar', 8],
      ['tail', 0],
    ]);
    expectTiled(header);

    const none = await readSafetensorsHeader(await rawFile('y.safetensors', rawSafetensors({})));
    expect(none.tensors).toEqual([]);
    expect(none.metadata).toEqual({});
    expect(none.dataOffset).toBe(none.fileSize);
  });

  it('accepts sub-byte dtypes that end on a byte boundary', async () => {
    const header = await readSafetensorsHeader(
      await rawFile('x.safetensors', rawSafetensors({ a: entry('F4', [2, 3], [0, 3]), b: entry('F6_E2M3', [4], [3, 6]) }, { data: 6 })),
    );
    expect(header.tensors.map((t) => t.byteLength)).toEqual([3, 3]);
  });

  it('does not mistake keys holding quotes, braces or commas for duplicates', async () => {
    const names = ['a"b', 'a\\', '{,}', 'x:"y"', '\u00e9\u4e2d'];
    const json: Record<string, unknown> = {};
    names.forEach((n, i) => (json[n] = entry('U8', [1], [i, i + 1])));
    const header = await readSafetensorsHeader(await rawFile('x.safetensors', rawSafetensors(json, { data: names.length })));
    expect(header.tensors.map((t) => t.name)).toEqual(names);
  });

  it('reads only the header, whatever the size of the data', async () => {
    // A 1 MiB tensor: the header read must not depend on the data being valid or read.
    const dir = await tempDir();
    const file = path.join(dir, 'big.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [512, 512], data: () => new Uint8Array(512 * 512 * 4) }]);
    const header = await readSafetensorsHeader(file);
    expect(header.tensors[0]!.byteLength).toBe(1 << 20);
  });
});

describe('the writer', () => {
  it('writes a tensor named like an Object.prototype property ("__proto__", "constructor") as a plain key', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, [patterned('__proto__', 'F32', [2]), patterned('constructor', 'U8', [3]), patterned('b', 'F32', [1])]);
    const header = await readSafetensorsHeader(file);
    expect(header.tensors.map((t) => [t.name, t.byteLength])).toEqual([
      ['__proto__', 8],
      ['constructor', 3],
      ['b', 4],
    ]);
    expectTiled(header);
  });

  it.each([
    ['a name used twice', [patterned('w', 'F32', [1]), patterned('w', 'F32', [1])]],
    ['the reserved name __metadata__', [patterned('__metadata__', 'F32', [1])]],
  ])('refuses %s, before creating the file', async (_, tensors) => {
    const dir = await tempDir();
    const file = path.join(dir, 'model.safetensors');
    await expect(writeSafetensors(file, tensors)).rejects.toThrow();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => encodeSafetensorsHeader(tensors)).toThrow();
  });
});

describe('the length field', () => {
  it('rejects an empty file (header-too-short)', async () => {
    await expectHeaderError(await rawFile('empty.safetensors', new Uint8Array(0)), 'header-too-short');
  });

  it.each([1, 5, 7])('rejects a %i-byte file (header-too-short)', async (n) => {
    await expectHeaderError(await rawFile('short.safetensors', new Uint8Array(n).fill(0x20)), 'header-too-short');
  });

  it('rejects a header length that runs past the end of the file (header-length-out-of-range)', async () => {
    const valid = encodeSafetensorsHeader([{ name: 'a', dtype: 'F32', shape: [2] }]);
    const bytes = new Uint8Array(valid.length + 8);
    bytes.set(valid);
    // The file holds valid.length - 8 header bytes plus 8 data bytes; claim one more than that.
    new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length - 8 + 1), true);
    await expectHeaderError(await rawFile('long.safetensors', bytes), 'header-length-out-of-range');
  });

  it('rejects a header length of exactly the cap when the file is small (header-length-out-of-range)', async () => {
    const bytes = rawSafetensors('{}', { lengthField: BigInt(MAX_HEADER_BYTES) });
    await expectHeaderError(await rawFile('cap.safetensors', bytes), 'header-length-out-of-range');
  });

  it.each([BigInt(MAX_HEADER_BYTES) + 1n, 2n ** 40n, 2n ** 64n - 1n])(
    'rejects a header length of %s past the 100 MB cap in a tiny file (header-too-large)',
    async (length) => {
      const bytes = rawSafetensors('{}', { lengthField: length });
      expect(bytes.length).toBe(10);
      await expectHeaderError(await rawFile('huge.safetensors', bytes), 'header-too-large');
    },
  );

  it.each([0n, 1n])('rejects a %s-byte header (header-not-json)', async (length) => {
    await expectHeaderError(await rawFile('tiny.safetensors', rawSafetensors('{}', { lengthField: length })), 'header-not-json');
  });
});

describe('the header text', () => {
  it.each([
    ['a lone continuation byte', [0x7b, 0x80, 0x7d]],
    ['a truncated two-byte sequence', [0x7b, 0xc3, 0x7d]],
    ['an invalid byte', [0x7b, 0xff, 0x7d]],
    ['an overlong encoding', [0x7b, 0xc0, 0xaf, 0x7d]],
    ['an encoded surrogate', [0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]],
  ])('rejects a header that is not UTF-8: %s (header-not-utf8)', async (_, bytes) => {
    await expectHeaderError(await rawFile('bin.safetensors', rawSafetensors(Uint8Array.from(bytes))), 'header-not-utf8');
  });

  it.each([
    ['cut short', '{"a": {"dtype": "F32"'],
    ['trailing garbage', '{} x'],
    ['single quotes', "{'a': 1}"],
    ['a trailing comma', '{"a": 1,}'],
    ['only spaces', '        '],
    ['a NaN', '{"a": NaN}'],
  ])('rejects a header that is not JSON: %s (header-not-json)', async (_, text) => {
    await expectHeaderError(await rawFile('text.safetensors', rawSafetensors(text)), 'header-not-json');
  });

  it.each([
    ['an array', '[]'],
    ['an array of entries', '[{"dtype":"F32","shape":[1],"data_offsets":[0,4]}]'],
    ['a string', '"model"'],
    ['null', 'null'],
    ['a number', '12345'],
    ['true', 'true'],
  ])('rejects a header that is %s (header-not-object)', async (_, text) => {
    await expectHeaderError(await rawFile('val.safetensors', rawSafetensors(text)), 'header-not-object');
  });

  it('rejects a tensor named twice in the raw JSON (duplicate-tensor)', async () => {
    const text = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    await expectHeaderError(await rawFile('dup.safetensors', rawSafetensors(text, { data: 8 })), 'duplicate-tensor', 'w');
  });

  it('finds a duplicate written with a different escape (duplicate-tensor)', async () => {
    const text = '{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0061b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
    await expectHeaderError(await rawFile('dup.safetensors', rawSafetensors(text, { data: 2 })), 'duplicate-tensor', 'ab');
  });

  it('finds a duplicate whose first copy would otherwise be valid and sits after nested values (duplicate-tensor)', async () => {
    const text =
      '{"__metadata__":{"k":"{\\"x\\":1}"},"a.weight":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
      '"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a.weight":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    await expectHeaderError(await rawFile('dup.safetensors', rawSafetensors(text, { data: 2 })), 'duplicate-tensor', 'a.weight');
  });
});

describe('tensor entries', () => {
  it.each([
    ['a number', 5],
    ['a string', 'F32'],
    ['null', null],
    ['an array', ['F32', [1], [0, 4]]],
  ])('rejects an entry that is %s (bad-tensor-entry)', async (_, value) => {
    const file = await rawFile('e.safetensors', rawSafetensors({ ok: entry('F32', [1], [0, 4]), bad: value }, { data: 4 }));
    await expectHeaderError(file, 'bad-tensor-entry', 'bad');
  });

  it('rejects an entry without data_offsets (bad-offsets)', async () => {
    const file = await rawFile('e.safetensors', rawSafetensors({ w: { dtype: 'F32', shape: [1] } }, { data: 4 }));
    await expectHeaderError(file, 'bad-offsets', 'w');
  });

  it('rejects an entry without dtype (unknown-dtype) or without shape (bad-shape)', async () => {
    await expectHeaderError(
      await rawFile('e.safetensors', rawSafetensors({ w: { shape: [1], data_offsets: [0, 4] } }, { data: 4 })),
      'unknown-dtype',
      'w',
    );
    await expectHeaderError(
      await rawFile('e.safetensors', rawSafetensors({ w: { dtype: 'F32', data_offsets: [0, 4] } }, { data: 4 })),
      'bad-shape',
      'w',
    );
  });

  it.each(['F128', 'f32', 'float32', 'BFLOAT16', '', 'toString', '__proto__', 'constructor'])(
    'rejects the unknown dtype %j, naming the tensor (unknown-dtype)',
    async (dtype) => {
      const file = await rawFile('d.safetensors', rawSafetensors({ 'model.w': entry(dtype, [1], [0, 4]) }, { data: 4 }));
      await expectHeaderError(file, 'unknown-dtype', 'model.w');
    },
  );

  it('rejects a dtype that is not a string (unknown-dtype)', async () => {
    const file = await rawFile('d.safetensors', rawSafetensors({ w: { dtype: 32, shape: [1], data_offsets: [0, 4] } }, { data: 4 }));
    await expectHeaderError(file, 'unknown-dtype', 'w');
  });

  it.each([
    ['a negative dimension', [-1]],
    ['a non-integer dimension', [1.5]],
    ['a string dimension', ['2']],
    ['a null dimension', [null]],
    ['a nested list', [[2]]],
    ['a number instead of a list', 4],
    ['null', null],
    ['a dimension past 2^53', [2 ** 53]],
    ['too many elements', [2 ** 30, 2 ** 30]],
  ])('rejects a shape with %s (bad-shape)', async (_, shape) => {
    const file = await rawFile('s.safetensors', rawSafetensors({ ok: entry('U8', [4], [0, 4]), w: entry('F32', shape, [4, 8]) }, { data: 8 }));
    await expectHeaderError(file, 'bad-shape', 'w');
  });

  it.each([
    ['begin after end', [8, 4]],
    ['one number', [4]],
    ['three numbers', [0, 4, 8]],
    ['a negative begin', [-4, 0]],
    ['a non-integer end', [0, 4.5]],
    ['strings', ['0', '4']],
    ['an object', { begin: 0, end: 4 }],
    ['null', null],
    ['an offset past 2^53', [0, 2 ** 53]],
  ])('rejects data_offsets with %s (bad-offsets)', async (_, offsets) => {
    const file = await rawFile('o.safetensors', rawSafetensors({ w: entry('F32', [1], offsets) }, { data: 8 }));
    await expectHeaderError(file, 'bad-offsets', 'w');
  });

  it.each([
    ['too few bytes', 'F32', [2, 2], [0, 12]],
    ['too many bytes', 'BF16', [3], [0, 8]],
    ['a zero-element tensor with bytes', 'F32', [0], [0, 4]],
    ['a scalar of the wrong width', 'F64', [], [0, 4]],
    ['sub-byte elements that do not end on a byte', 'F4', [3], [0, 2]],
  ])('rejects shape x dtype != byte length: %s (length-mismatch)', async (_, dtype, shape, offsets) => {
    const file = await rawFile('l.safetensors', rawSafetensors({ w: entry(dtype as string, shape, offsets) }, { data: (offsets as number[])[1]! }));
    await expectHeaderError(file, 'length-mismatch', 'w');
  });

  it('rejects __metadata__ with a non-string value (bad-tensor-entry on __metadata__)', async () => {
    for (const value of [1, true, null, { nested: 'x' }, ['a']]) {
      const file = await rawFile('m.safetensors', rawSafetensors({ __metadata__: { format: 'pt', bad: value } }));
      await expectHeaderError(file, 'bad-tensor-entry', '__metadata__');
    }
  });

  it('rejects __metadata__ that is not an object (bad-tensor-entry on __metadata__)', async () => {
    for (const value of ['pt', null, ['pt'], 3]) {
      const file = await rawFile('m.safetensors', rawSafetensors({ __metadata__: value }));
      await expectHeaderError(file, 'bad-tensor-entry', '__metadata__');
    }
  });
});

describe('the data section', () => {
  it('rejects overlapping tensors, naming the later one (overlapping-tensors)', async () => {
    const file = await rawFile('ov.safetensors', rawSafetensors({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }, { data: 12 }));
    await expectHeaderError(file, 'overlapping-tensors', 'b');
  });

  it('rejects two tensors sharing the same bytes (overlapping-tensors)', async () => {
    const file = await rawFile('ov.safetensors', rawSafetensors({ a: entry('F32', [2], [0, 8]), b: entry('I32', [2], [0, 8]) }, { data: 8 }));
    await expectHeaderError(file, 'overlapping-tensors', 'b');
  });

  it('rejects a tensor nested inside another (overlapping-tensors)', async () => {
    const file = await rawFile('ov.safetensors', rawSafetensors({ outer: entry('U8', [16], [0, 16]), inner: entry('U8', [4], [4, 8]) }, { data: 16 }));
    await expectHeaderError(file, 'overlapping-tensors', 'inner');
  });

  it('rejects a gap between tensors (gap-between-tensors)', async () => {
    const file = await rawFile('gap.safetensors', rawSafetensors({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }, { data: 12 }));
    await expectHeaderError(file, 'gap-between-tensors', 'b');
  });

  it('rejects a gap before the first tensor (gap-between-tensors)', async () => {
    const file = await rawFile('gap.safetensors', rawSafetensors({ a: entry('F32', [1], [4, 8]) }, { data: 8 }));
    await expectHeaderError(file, 'gap-between-tensors', 'a');
  });

  it('rejects a tensor that starts past the end of the data (offset-out-of-range)', async () => {
    const file = await rawFile('oor.safetensors', rawSafetensors({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [100, 104]) }, { data: 4 }));
    await expectHeaderError(file, 'offset-out-of-range', 'b');
  });

  it('reports a tensor that starts exactly where the data ends as a truncated file (file-truncated)', async () => {
    const file = await rawFile('oor.safetensors', rawSafetensors({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [4, 8]) }, { data: 4 }));
    await expectHeaderError(file, 'file-truncated', 'b');
  });

  it('rejects a file cut in the middle of a tensor, naming that tensor (file-truncated)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, [patterned('first', 'F32', [4]), patterned('second', 'F32', [4]), patterned('third', 'F32', [4])]);
    const { size } = await stat(file);
    await truncate(file, size - 16 - 6); // third is gone and 6 bytes of second
    // `third` starts past the end too, but the tensors are checked in offset order: `second` is the first one cut.
    await expectHeaderError(file, 'file-truncated', 'second');
  });

  it('rejects a file cut one byte short (file-truncated, naming the last tensor)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, [patterned('first', 'F32', [4]), patterned('last', 'U8', [5])]);
    await truncate(file, (await stat(file)).size - 1);
    await expectHeaderError(file, 'file-truncated', 'last');
  });

  it('reports a file cut exactly between two tensors as truncated at the next tensor', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, [patterned('first', 'F32', [4]), patterned('second', 'F32', [4])]);
    await truncate(file, (await stat(file)).size - 16);
    await expectHeaderError(file, 'file-truncated', 'second');
  });

  it('rejects a file cut inside its header (header-length-out-of-range)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'cut.safetensors');
    await writeSafetensors(file, [patterned('w', 'F32', [4])]);
    const header = encodeSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [4] }]);
    await truncate(file, header.length - 3);
    await expectHeaderError(file, 'header-length-out-of-range');
  });

  it('rejects extra bytes after the last tensor (trailing-bytes, no tensor named)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'extra.safetensors');
    await writeSafetensors(file, [patterned('w', 'F32', [4])]);
    await appendFile(file, new Uint8Array([1, 2, 3]));
    await expectHeaderError(file, 'trailing-bytes', undefined);
  });

  it('rejects data after a header with no tensors (trailing-bytes)', async () => {
    await expectHeaderError(await rawFile('extra.safetensors', rawSafetensors({ __metadata__: {} }, { data: 1 })), 'trailing-bytes', undefined);
  });

  it('rejects a file that is not there (file-not-found)', async () => {
    const dir = await tempDir();
    await expectHeaderError(path.join(dir, 'absent.safetensors'), 'file-not-found', undefined);
  });
});

describe('parseSafetensorsHeader (pure)', () => {
  it('agrees with readSafetensorsHeader on a valid file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, [patterned('a', 'F16', [3, 2]), patterned('b', 'F32', [1])]);
    const bytes = new Uint8Array(await readFile(file));
    const parsed = parseSafetensorsHeader(bytes, bytes.length, file);
    expect(parsed).toEqual(await readSafetensorsHeader(file));
  });

  it('needs only the 8 + N header bytes, not the data', () => {
    const header = encodeSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [1000] }]);
    const parsed = parseSafetensorsHeader(header, header.length + 4000, 'p.safetensors');
    expect(parsed.tensors[0]!.offset).toBe(header.length);
    expect(parsed.tensors[0]!.byteLength).toBe(4000);
  });

  it('rejects a prefix shorter than the header it announces (file-truncated)', async () => {
    const header = encodeSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [2] }]);
    await expectTpError(() => parseSafetensorsHeader(header.subarray(0, header.length - 1), header.length + 8, 'p.safetensors'), {
      code: 'file-truncated',
      file: 'p.safetensors',
      tensor: undefined,
    });
  });

  it('rejects a prefix shorter than 8 bytes (header-too-short)', async () => {
    await expectTpError(() => parseSafetensorsHeader(new Uint8Array(4), 100, 'p.safetensors'), { code: 'header-too-short', file: 'p.safetensors' });
  });

  it('ignores data bytes after the header prefix', () => {
    const header = encodeSafetensorsHeader([{ name: 'w', dtype: 'F32', shape: [2] }]);
    const withData = new Uint8Array(header.length + 8);
    withData.set(header);
    withData.set(f32Bytes([1, 2]), header.length);
    expect(parseSafetensorsHeader(withData, withData.length, 'p').tensors).toEqual(parseSafetensorsHeader(header, withData.length, 'p').tensors);
  });
});

describe('a file replaced by garbage', () => {
  it('rejects random bytes promptly with a TpError', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'noise.safetensors');
    const bytes = new Uint8Array(4096);
    let x = 12345;
    for (let i = 0; i < bytes.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      bytes[i] = x >>> 24;
    }
    await writeFile(file, bytes);
    // The length field of these bytes is far past the cap.
    await expectHeaderError(file, 'header-too-large');
  });
});
