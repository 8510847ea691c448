/**
 * Files on disk for checkpoint-reader tests: temporary folders (removed after each test), valid
 * safetensors files from the project's writer, hand-made headers for invalid ones, and an assertion
 * for "this throws exactly this TpError, promptly".
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect } from 'vitest';
import {
  f32ToBf16Bits,
  f32ToF16Bits,
  tensorByteLength,
  TpError,
  writeSafetensors,
  type Dtype,
  type TensorToWrite,
} from '../../src/index.js';

// ---- temporary folders ------------------------------------------------------------------------

/**
 * Call once at the top of a test file (or describe block): returns a function that makes a fresh
 * folder under os.tmpdir(); every folder it made is removed after each test.
 */
export function useTempDirs(): () => Promise<string> {
  const made: string[] = [];
  afterEach(async () => {
    for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tp-core-test-'));
    made.push(dir);
    return dir;
  };
}

// ---- element bytes ----------------------------------------------------------------------------

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function f64Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float64Array.from(values).buffer);
}

export function f16Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Uint16Array.from(Array.from(values, (v) => f32ToF16Bits(v))).buffer);
}

export function bf16Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Uint16Array.from(Array.from(values, (v) => f32ToBf16Bits(v))).buffer);
}

export function i32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Int32Array.from(values).buffer);
}

/** 0, 1, 2, ... n-1 */
export function iota(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A tensor whose bytes are a recognisable pattern (byte i = (i * 7 + seed) mod 256). */
export function patterned(name: string, dtype: Dtype, shape: readonly number[], seed = 0): TensorToWrite {
  const bytes = new Uint8Array(tensorByteLength(dtype, shape));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + seed) & 0xff;
  return { name, dtype, shape, data: bytes };
}

/** An F32 tensor holding 0, 1, 2, ... in row-major order. */
export function f32Iota(name: string, shape: readonly number[]): TensorToWrite {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype: 'F32', shape, data: f32Bytes(iota(n)) };
}

// ---- raw (possibly invalid) safetensors files ---------------------------------------------------

export interface RawFileOptions {
  /** Override the 8-byte header length field (default: the header's byte length). */
  lengthField?: bigint;
  /** Bytes after the header (default none). */
  data?: Uint8Array | number;
}

/** Bytes of a safetensors-like file from a header given as JSON text, raw bytes or a value to stringify. */
export function rawSafetensors(header: string | Uint8Array | object | null, options: RawFileOptions = {}): Uint8Array {
  const body =
    header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const data = typeof options.data === 'number' ? new Uint8Array(options.data) : (options.data ?? new Uint8Array(0));
  const out = new Uint8Array(8 + body.length + data.length);
  new DataView(out.buffer).setBigUint64(0, options.lengthField ?? BigInt(body.length), true);
  out.set(body, 8);
  out.set(data, 8 + body.length);
  return out;
}

/** Write bytes to `dir/name` and return the path. */
export async function put(dir: string, name: string, bytes: Uint8Array | string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return file;
}

export async function putJson(dir: string, name: string, value: unknown): Promise<string> {
  return put(dir, name, JSON.stringify(value));
}

/** A checkpoint folder: config.json plus the given safetensors files. */
export async function writeCheckpoint(
  dir: string,
  fields: { config?: unknown; files?: Record<string, readonly TensorToWrite[]>; index?: unknown },
): Promise<string> {
  if (fields.config !== undefined) await putJson(dir, 'config.json', fields.config);
  for (const [name, tensors] of Object.entries(fields.files ?? {})) await writeSafetensors(path.join(dir, name), tensors);
  if (fields.index !== undefined) await putJson(dir, 'model.safetensors.index.json', fields.index);
  return dir;
}

// ---- asserting errors -------------------------------------------------------------------------

/** Anything that throws within this many milliseconds counts as prompt. */
export const PROMPT_MS = 2_000;

export interface ExpectedError {
  code: string;
  /** The error's `file` field must end with this (a path separator before it, unless it is the whole path). */
  file?: string;
  /**
   * The error's `tensor` field. Pass `undefined` explicitly to assert that no tensor is named; leave
   * the key out to not check it.
   */
  tensor?: string | undefined;
  /** The error's `key` field (ConfigError). */
  key?: string | undefined;
  /** The error class name (`CheckpointError`, `ConfigError`, `ShapeError`...). */
  name?: string;
}

/**
 * Run `action` (sync or async), expect it to throw a TpError with exactly these fields, and to do
 * so promptly. Returns the error for further checks.
 */
export async function expectTpError(action: () => unknown, expected: ExpectedError): Promise<TpError & Record<string, unknown>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no error after ${PROMPT_MS} ms (hang?)`)), PROMPT_MS);
  });
  let caught: unknown;
  let threw = false;
  try {
    await Promise.race([(async () => action())(), hang]);
  } catch (e) {
    caught = e;
    threw = true;
  } finally {
    clearTimeout(timer);
  }
  const elapsed = performance.now() - started;
  expect(threw, `expected ${expected.code}, but nothing was thrown`).toBe(true);
  if (!TpError.isInstance(caught)) {
    throw new Error(`expected a TpError with code ${expected.code}, got: ${String((caught as Error)?.stack ?? caught)}`);
  }
  const error = caught as TpError & Record<string, unknown>;
  expect(error.code).toBe(expected.code);
  expect(elapsed).toBeLessThan(PROMPT_MS);
  if (expected.name !== undefined) expect(error.name).toBe(expected.name);
  if (expected.file !== undefined) {
    expect(typeof error['file']).toBe('string');
    const file = error['file'] as string;
    expect(file === expected.file || file.endsWith(path.sep + expected.file), `file ${file} should end with ${expected.file}`).toBe(true);
  }
  if ('tensor' in expected) expect(error['tensor']).toBe(expected.tensor);
  if ('key' in expected) expect(error['key']).toBe(expected.key);
  return error;
}
