/**
 * Writing safetensors files: the header (tensors in the given order, contiguous offsets, JSON padded
 * with spaces to a multiple of 8 bytes as the reference writer does), then each tensor's bytes. Tensor
 * data may be produced lazily, so a large checkpoint is streamed and never held whole in memory.
 */
import { ArgumentError, CheckpointError } from '../errors/index.js';
import { DTYPE_BITS, type Dtype } from './dtype.js';
import { nodeModules } from './node-fs.js';

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  /** Little-endian bytes of the tensor, or a function producing them when the file is written. */
  data: Uint8Array | (() => Uint8Array);
}

export function tensorByteLength(dtype: Dtype, shape: readonly number[]): number {
  return (shape.reduce((a, b) => a * b, 1) * DTYPE_BITS[dtype]) / 8;
}

/** The 8-byte length plus the padded JSON header for these tensors. */
export function encodeSafetensorsHeader(
  tensors: ReadonlyArray<Pick<TensorToWrite, 'name' | 'dtype' | 'shape'>>,
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array {
  // No prototype: a tensor named "__proto__" must become a key like any other, not replace the prototype.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  header['__metadata__'] = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name in header) throw new ArgumentError({ argument: 'tensors', detail: `tensor "${t.name}": the name is used twice or is reserved` });
    const length = tensorByteLength(t.dtype, t.shape);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  const utf8 = new TextEncoder();
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (utf8.encode(json).length % 8)) % 8);
  const body = utf8.encode(json);
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

export async function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const header = encodeSafetensorsHeader(tensors, metadata); // may throw: before the file is created
  const handle = await nodeModules('writeSafetensors').fsp.open(file, 'w');
  try {
    let position = 0;
    const write = async (bytes: Uint8Array) => {
      let done = 0;
      while (done < bytes.length) {
        const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
        done += bytesWritten;
      }
      position += bytes.length;
    };
    await write(header);
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const expected = tensorByteLength(t.dtype, t.shape);
      if (data.byteLength !== expected) {
        throw new CheckpointError('length-mismatch', {
          file,
          tensor: t.name,
          detail: `${data.byteLength} bytes given, but shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected}`,
        });
      }
      await write(data);
    }
  } finally {
    await handle.close();
  }
}
