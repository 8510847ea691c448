/**
 * A small GGUF (version 3) writer and header reader, written from the format description in ggml's
 * docs/gguf.md. Layout of a file:
 *
 *   header        "GGUF" · u32 version (3) · u64 tensor count · u64 metadata count
 *   metadata      per entry: string key · u32 value type · value
 *   tensor infos  per tensor: string name · u32 number of dims · u64 dims (ggml order: the first dim is
 *                 the one that varies fastest, so a row-major [out, in] matrix has dims [in, out]) ·
 *                 u32 ggml type · u64 offset of its data, relative to the start of the data section
 *   padding       zeros up to a multiple of the alignment (general.alignment, 32 when absent)
 *   data          each tensor at its offset (a multiple of the alignment), zeros between tensors
 *
 * Strings are a u64 byte length followed by UTF-8 bytes (no terminator). An array value is a u32 item
 * type, a u64 item count, then the items. Everything is little-endian.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';

/** Metadata value types (gguf_metadata_value_type). */
export const VALUE = Object.freeze({ UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 });
/**
 * The tensor types this writer handles (enum ggml_type in ggml/include/ggml.h: GGML_TYPE_F32 = 0,
 * GGML_TYPE_F16 = 1, GGML_TYPE_BF16 = 30); the others are block-quantized. F16 is IEEE binary16, BF16
 * the top 16 bits of an IEEE binary32; both little-endian, one element after the other like F32.
 */
export const GGML = Object.freeze({ F32: 0, F16: 1, BF16: 30 });
export const GGML_ELEMENT_BYTES = Object.freeze({ [GGML.F32]: 4, [GGML.F16]: 2, [GGML.BF16]: 2 });
export const GGML_NAMES = Object.freeze({ [GGML.F32]: 'F32', [GGML.F16]: 'F16', [GGML.BF16]: 'BF16' });
/**
 * general.file_type (enum llama_ftype in llama.cpp's include/llama.h): the type of most tensors.
 * MOSTLY_F16 and MOSTLY_BF16 are "except 1d tensors", which stay F32.
 */
export const FILE_TYPE = Object.freeze({ ALL_F32: 0, MOSTLY_F16: 1, MOSTLY_BF16: 32 });

export const GGUF_VERSION = 3;
export const DEFAULT_ALIGNMENT = 32;

/** Metadata entries: `{ key, type, value }`, with `itemType` for arrays. */
export const meta = {
  u32: (key, value) => ({ key, type: VALUE.UINT32, value }),
  i32: (key, value) => ({ key, type: VALUE.INT32, value }),
  u64: (key, value) => ({ key, type: VALUE.UINT64, value }),
  f32: (key, value) => ({ key, type: VALUE.FLOAT32, value }),
  bool: (key, value) => ({ key, type: VALUE.BOOL, value }),
  str: (key, value) => ({ key, type: VALUE.STRING, value }),
  array: (key, itemType, value) => ({ key, type: VALUE.ARRAY, itemType, value }),
};

/** A growable little-endian byte buffer. */
class Bytes {
  constructor(capacity = 1 << 16) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
    this.length = 0;
  }
  reserve(n) {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v) { this.reserve(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v) { this.reserve(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v) { this.reserve(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v) { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v) { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v) { this.reserve(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v) { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v) { this.reserve(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  raw(bytes) { this.reserve(bytes.length); this.buf.set(bytes, this.length); this.length += bytes.length; }
  string(s) {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.raw(bytes);
  }
  bytes() { return this.buf.subarray(0, this.length); }
}

function writeValue(out, type, value, itemType) {
  switch (type) {
    case VALUE.UINT8: return out.u8(value);
    case VALUE.INT8: return out.i8(value);
    case VALUE.UINT16: return out.u16(value);
    case VALUE.INT16: return out.i16(value);
    case VALUE.UINT32: return out.u32(value);
    case VALUE.INT32: return out.i32(value);
    case VALUE.FLOAT32: return out.f32(value);
    case VALUE.BOOL: return out.u8(value ? 1 : 0);
    case VALUE.STRING: return out.string(value);
    case VALUE.UINT64: return out.u64(value);
    case VALUE.INT64: return out.i64(value);
    case VALUE.FLOAT64: return out.f64(value);
    case VALUE.ARRAY: {
      if (itemType === undefined || itemType === VALUE.ARRAY) throw new Error('gguf: arrays of arrays are not supported by this writer');
      out.u32(itemType);
      out.u64(value.length);
      for (const item of value) writeValue(out, itemType, item);
      return undefined;
    }
    default:
      throw new Error(`gguf: unknown value type ${type}`);
  }
}

const alignUp = (n, alignment) => Math.ceil(n / alignment) * alignment;

/**
 * Write a GGUF file. `tensors`: `{ name, dims, type, data }` where `dims` is in ggml order (fastest
 * first) and `data()` returns the tensor's little-endian bytes; it is called once per tensor, in order,
 * so only one tensor is in memory at a time. Writes `${file}.partial` and renames it when complete.
 */
export function writeGguf(file, { metadata, tensors, alignment = DEFAULT_ALIGNMENT }) {
  if (alignment % 8 !== 0) throw new Error(`gguf: alignment ${alignment} is not a multiple of 8`);
  const keys = new Set();
  for (const m of metadata) {
    if (!/^[a-z0-9_]+(\.[a-z0-9_]+)*$/.test(m.key)) throw new Error(`gguf: bad metadata key ${JSON.stringify(m.key)}`);
    if (keys.has(m.key)) throw new Error(`gguf: metadata key ${m.key} appears twice`);
    keys.add(m.key);
  }
  const entries = metadata.some((m) => m.key === 'general.alignment') || alignment === DEFAULT_ALIGNMENT ? metadata : [...metadata, meta.u32('general.alignment', alignment)];

  const head = new Bytes();
  head.raw(Buffer.from('GGUF', 'ascii'));
  head.u32(GGUF_VERSION);
  head.u64(tensors.length);
  head.u64(entries.length);
  for (const m of entries) {
    head.string(m.key);
    head.u32(m.type);
    writeValue(head, m.type, m.value, m.itemType);
  }
  let offset = 0;
  const layout = [];
  for (const t of tensors) {
    if (Buffer.byteLength(t.name) > 64) throw new Error(`gguf: tensor name ${t.name} is longer than 64 bytes`);
    const elementBytes = GGML_ELEMENT_BYTES[t.type];
    if (elementBytes === undefined) throw new Error(`gguf: tensor type ${t.type} is not supported by this writer`);
    const byteLength = t.dims.reduce((a, b) => a * b, 1) * elementBytes;
    offset = alignUp(offset, alignment);
    head.string(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    layout.push({ offset, byteLength });
    offset += byteLength;
  }
  const dataStart = alignUp(head.length, alignment);
  head.raw(new Uint8Array(dataStart - head.length));

  const partial = `${file}.partial`;
  const fd = openSync(partial, 'w');
  try {
    writeAll(fd, head.bytes());
    let position = 0;
    for (let i = 0; i < tensors.length; i++) {
      const { offset: at, byteLength } = layout[i];
      if (at > position) writeAll(fd, new Uint8Array(at - position));
      const bytes = tensors[i].data();
      if (bytes.byteLength !== byteLength) throw new Error(`gguf: tensor ${tensors[i].name} has ${bytes.byteLength} bytes, its dims say ${byteLength}`);
      writeAll(fd, bytes);
      position = at + byteLength;
    }
  } catch (error) {
    closeSync(fd);
    rmSync(partial, { force: true });
    throw error;
  }
  closeSync(fd);
  renameSync(partial, file);
  return { bytes: dataStart + offset, dataStart, tensors: tensors.length, metadata: entries.length };
}

function writeAll(fd, bytes) {
  let done = 0;
  while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

/**
 * Read the header, metadata and tensor infos of a GGUF file (not the tensor data). Arrays of more than
 * `arrayLimit` items are summarized as `{ itemType, length }` unless their key is in `fullArrays`.
 */
export function readGgufHeader(file, { arrayLimit = 16, fullArrays = [] } = {}) {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let chunk = Buffer.alloc(0);
    let chunkStart = 0;
    let pos = 0;
    const need = (n) => {
      if (pos + n <= chunkStart + chunk.length) return;
      const length = Math.max(n, 1 << 20);
      chunk = Buffer.alloc(Math.min(length, size - pos));
      chunkStart = pos;
      readSync(fd, chunk, 0, chunk.length, pos);
      if (chunk.length < n) throw new Error(`gguf: ${file} ends early at byte ${pos}`);
    };
    const take = (n, read) => {
      need(n);
      const v = read(chunk, pos - chunkStart);
      pos += n;
      return v;
    };
    const u8 = () => take(1, (b, o) => b.readUInt8(o));
    const u32 = () => take(4, (b, o) => b.readUInt32LE(o));
    const u64 = () => Number(take(8, (b, o) => b.readBigUInt64LE(o)));
    const str = () => {
      const n = u64();
      return take(n, (b, o) => b.toString('utf8', o, o + n));
    };
    const value = (type, keepArray = () => true) => {
      switch (type) {
        case VALUE.UINT8: return u8();
        case VALUE.INT8: return take(1, (b, o) => b.readInt8(o));
        case VALUE.UINT16: return take(2, (b, o) => b.readUInt16LE(o));
        case VALUE.INT16: return take(2, (b, o) => b.readInt16LE(o));
        case VALUE.UINT32: return u32();
        case VALUE.INT32: return take(4, (b, o) => b.readInt32LE(o));
        case VALUE.FLOAT32: return take(4, (b, o) => b.readFloatLE(o));
        case VALUE.BOOL: return u8() !== 0;
        case VALUE.STRING: return str();
        case VALUE.UINT64: return u64();
        case VALUE.INT64: return Number(take(8, (b, o) => b.readBigInt64LE(o)));
        case VALUE.FLOAT64: return take(8, (b, o) => b.readDoubleLE(o));
        case VALUE.ARRAY: {
          const itemType = u32();
          const length = u64();
          const keep = keepArray(length);
          const items = [];
          for (let i = 0; i < length; i++) {
            const item = value(itemType);
            if (keep) items.push(item);
          }
          return keep ? items : { itemType, length };
        }
        default:
          throw new Error(`gguf: ${file}: unknown value type ${type} at byte ${pos}`);
      }
    };
    need(24);
    const magic = take(4, (b, o) => b.toString('ascii', o, o + 4));
    if (magic !== 'GGUF') throw new Error(`gguf: ${file} does not start with GGUF`);
    const version = u32();
    const tensorCount = u64();
    const metadataCount = u64();
    const metadata = {};
    const types = {};
    for (let i = 0; i < metadataCount; i++) {
      const key = str();
      const type = u32();
      types[key] = type;
      metadata[key] = value(type, (length) => length <= arrayLimit || fullArrays.includes(key));
    }
    const tensors = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = str();
      const nDims = u32();
      const dims = Array.from({ length: nDims }, () => u64());
      const type = u32();
      const offset = u64();
      tensors.push({ name, dims, type, typeName: GGML_NAMES[type] ?? `type ${type}`, offset });
    }
    const alignment = metadata['general.alignment'] ?? DEFAULT_ALIGNMENT;
    return { version, metadata, types, tensors, alignment, dataStart: alignUp(pos, alignment), fileSize: size };
  } finally {
    closeSync(fd);
  }
}

/** The little-endian bytes of one tensor of a GGUF file, from the header readGgufHeader returned. */
export function readGgufTensorBytes(file, header, name) {
  const t = header.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`gguf: ${file} has no tensor ${name}`);
  const elementBytes = GGML_ELEMENT_BYTES[t.type];
  if (elementBytes === undefined) throw new Error(`gguf: tensor ${name} is ${t.typeName}, not F32, F16 or BF16`);
  const bytes = Buffer.alloc(t.dims.reduce((a, b) => a * b, 1) * elementBytes);
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(fd, bytes, done, bytes.length - done, header.dataStart + t.offset + done);
      if (n === 0) throw new Error(`gguf: ${file} ends inside tensor ${name}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}
