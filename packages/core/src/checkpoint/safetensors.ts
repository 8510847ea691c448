/**
 * The safetensors header, checked completely before any weight byte is read.
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON, then the data
 * section. The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative
 * to the data section) plus an optional "__metadata__" map of strings. The checks follow the order
 * of the reference implementation (huggingface/safetensors tensor.rs): length, cap, UTF-8, JSON,
 * object, entries, then the tensors in offset order must tile the data section exactly.
 */
import { CheckpointError } from '../errors/index.js';
import { fileByteSource, type ByteSource } from './byte-source.js';
import { DTYPE_BITS, isDtype, type Dtype } from './dtype.js';

/** Headers larger than this are refused (the reference implementation uses the same cap). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  /** Name as stored in the file. */
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** The file holding the tensor (absolute path). */
  readonly file: string;
  /** Absolute byte offset of the first element in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly file: string;
  readonly fileSize: number;
  readonly headerLength: number;
  /** Absolute offset of the data section (8 + headerLength). */
  readonly dataOffset: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors in the order of their offsets. */
  readonly tensors: readonly TensorInfo[];
}

// ignoreBOM keeps a byte-order mark in the text, so JSON.parse rejects it as the reference reader does.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Read and check the header of one safetensors file. Reads 8 + N bytes, never the data. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const source = fileByteSource(file);
  try {
    return await readSafetensorsHeaderFrom(source);
  } finally {
    await source.close?.();
  }
}

/**
 * The same from any byte source (a file, a URL over HTTP Range requests): the size, then two reads,
 * the 8-byte length and the N bytes of JSON. The source's name is the `file` of its tensors.
 */
export async function readSafetensorsHeaderFrom(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  const size = await source.size();
  // Fewer than 8 bytes: checkHeaderLength refuses them without a read.
  const lengthBytes = size < 8 ? new Uint8Array(size) : await source.read(0, 8);
  const headerLength = checkHeaderLength(lengthBytes, size, file);
  const prefix = new Uint8Array(8 + headerLength);
  prefix.set(lengthBytes, 0);
  prefix.set(await source.read(8, headerLength), 8);
  return parseSafetensorsHeader(prefix, size, file);
}

/**
 * Check a header given its first bytes (at least 8 + N of them) and the size of the whole file.
 * Pure: used by `readSafetensorsHeader` and directly by tests.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  const headerLength = checkHeaderLength(prefix.subarray(0, 8), fileSize, file);
  if (prefix.length < 8 + headerLength) {
    throw new CheckpointError('file-truncated', { file, detail: `the header is cut short (${prefix.length - 8} of ${headerLength} bytes)` });
  }
  let text: string;
  try {
    text = decoder.decode(prefix.subarray(8, 8 + headerLength));
  } catch (cause) {
    throw new CheckpointError('header-not-utf8', { file, detail: 'the header is not valid UTF-8', hint: 'The file is not a safetensors file or is corrupt' }, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CheckpointError(
      'header-not-json',
      { file, detail: `the header is not valid JSON (${(cause as Error).message})`, hint: 'The file is not a safetensors file or is corrupt' },
      { cause },
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError('header-not-object', { file, detail: `the header must be a JSON object, found ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}` });
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new CheckpointError('duplicate-tensor', { file, tensor: duplicate, detail: 'the header names this tensor more than once' });
  }

  const dataOffset = 8 + headerLength;
  const dataSize = fileSize - dataOffset;
  let metadata: Record<string, string> = {};
  const entries: Array<{ name: string; dtype: Dtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(value, file);
      continue;
    }
    entries.push(checkEntry(name, value, file));
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previousEnd = 0;
  let previousName: string | undefined;
  for (const entry of entries) {
    if (entry.begin < previousEnd) {
      throw new CheckpointError('overlapping-tensors', {
        file,
        tensor: entry.name,
        detail: `data_offsets [${entry.begin}, ${entry.end}] overlap tensor "${previousName}" which ends at ${previousEnd}`,
        hint: 'The header is corrupt',
      });
    }
    if (entry.begin > previousEnd) {
      // Not where the previous tensor ended: either pointing outside the file or leaving a hole.
      if (entry.begin >= dataSize) {
        throw new CheckpointError('offset-out-of-range', {
          file,
          tensor: entry.name,
          detail: `data_offsets [${entry.begin}, ${entry.end}] point past the end of the data section (${dataSize} bytes)`,
          hint: 'The header is corrupt',
        });
      }
      throw new CheckpointError('gap-between-tensors', {
        file,
        tensor: entry.name,
        detail: `data_offsets start at ${entry.begin} but the previous tensor ends at ${previousEnd}; safetensors data must be contiguous`,
        hint: 'The header is corrupt',
      });
    }
    if (entry.end > dataSize) {
      // The layout is consistent but the file stops early: it was cut (an interrupted download).
      throw new CheckpointError('file-truncated', {
        file,
        tensor: entry.name,
        detail: `the tensor ends at byte ${entry.end} of the data section but the file holds only ${dataSize} data bytes`,
        hint: 'The file is truncated (an interrupted download?); fetch it again',
      });
    }
    previousEnd = entry.end;
    previousName = entry.name;
  }
  if (previousEnd < dataSize) {
    throw new CheckpointError('trailing-bytes', {
      file,
      detail: `the tensors cover ${previousEnd} bytes but the data section holds ${dataSize}`,
      hint: 'The file has extra bytes after its tensors; it is corrupt or was written by a broken tool',
    });
  }

  return {
    file,
    fileSize,
    headerLength,
    dataOffset,
    metadata,
    tensors: entries.map((e) => ({
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      file,
      offset: dataOffset + e.begin,
      byteLength: e.end - e.begin,
    })),
  };
}

function checkHeaderLength(lengthBytes: Uint8Array, fileSize: number, file: string): number {
  if (lengthBytes.length < 8 || fileSize < 8) {
    throw new CheckpointError('header-too-short', { file, detail: `the file has ${fileSize} bytes, fewer than the 8-byte header length`, hint: 'The file is empty or truncated' });
  }
  const view = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError('header-too-large', { file, detail: `the header claims ${length} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`, hint: 'The file is not a safetensors file or is corrupt' });
  }
  const n = Number(length);
  if (n > fileSize - 8) {
    throw new CheckpointError('header-length-out-of-range', { file, detail: `the header claims ${n} bytes but only ${fileSize - 8} follow the length`, hint: 'The file is truncated or not a safetensors file' });
  }
  if (n < 2) {
    throw new CheckpointError('header-not-json', { file, detail: `a ${n}-byte header cannot hold a JSON object` });
  }
  return n;
}

function checkMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError('bad-tensor-entry', { file, tensor: '__metadata__', detail: '__metadata__ must be an object of strings' });
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new CheckpointError('bad-tensor-entry', { file, tensor: '__metadata__', detail: `__metadata__["${key}"] must be a string` });
    }
  }
  return value as Record<string, string>;
}

function checkEntry(name: string, value: unknown, file: string) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CheckpointError('bad-tensor-entry', { file, tensor: name, detail: 'the entry must be an object with dtype, shape and data_offsets' });
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (!isDtype(dtype)) {
    throw new CheckpointError('unknown-dtype', {
      file,
      tensor: name,
      detail: `unknown dtype ${JSON.stringify(dtype)}`,
      hint: `safetensors dtypes are ${Object.keys(DTYPE_BITS).join(', ')}`,
    });
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new CheckpointError('bad-shape', { file, tensor: name, detail: `shape ${JSON.stringify(shape)} must be a list of non-negative integers` });
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
    (offsets[0] as number) > (offsets[1] as number)
  ) {
    throw new CheckpointError('bad-offsets', { file, tensor: name, detail: `data_offsets ${JSON.stringify(offsets)} must be [begin, end] with 0 <= begin <= end` });
  }
  const dims = shape as number[];
  let elements = 1;
  for (const d of dims) {
    elements *= d;
    if (!Number.isSafeInteger(elements)) {
      throw new CheckpointError('bad-shape', { file, tensor: name, detail: `shape [${dims.join(', ')}] has too many elements` });
    }
  }
  const bits = elements * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits)) {
    throw new CheckpointError('bad-shape', { file, tensor: name, detail: `shape [${dims.join(', ')}] of ${dtype} is too large` });
  }
  if (bits % 8 !== 0) {
    throw new CheckpointError('length-mismatch', { file, tensor: name, detail: `${elements} elements of ${dtype} do not end on a byte boundary` });
  }
  const [begin, end] = offsets as [number, number];
  if (end - begin !== bits / 8) {
    throw new CheckpointError('length-mismatch', {
      file,
      tensor: name,
      detail: `shape [${dims.join(', ')}] of ${dtype} needs ${bits / 8} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      hint: 'The header is corrupt',
    });
  }
  return { name, dtype, shape: dims, begin, end };
}

/**
 * JSON.parse keeps the last of duplicate keys silently; scan the top-level object's keys ourselves.
 * The text is known to be valid JSON here, so a small scanner that tracks strings and depth is enough.
 */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\') i++;
        i++;
      }
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(start, i + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}
