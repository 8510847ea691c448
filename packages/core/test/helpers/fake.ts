/**
 * In-memory checkpoints for planner tests: a config and a header (name → shape), no file. Planning
 * reads headers only, so this is all it needs.
 */
import { tensorByteLength, type Checkpoint, type Dtype, type HfConfig, type TensorInfo } from '../../src/index.js';

/** `dtype` for every tensor, except those named in `dtypes`. */
export function fakeCheckpoint(config: HfConfig, shapes: Record<string, readonly number[]>, dtype: Dtype = 'F32', dtypes: Record<string, Dtype> = {}): Checkpoint {
  const tensors = new Map<string, TensorInfo>();
  let offset = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const byteLength = tensorByteLength(dtypes[name] ?? dtype, shape);
    tensors.set(name, { name, dtype: dtypes[name] ?? dtype, shape: [...shape], file: 'fake.safetensors', offset, byteLength });
    offset += byteLength;
  }
  return {
    dir: 'fake',
    configPath: 'fake/config.json',
    config,
    files: [],
    tensors,
    tensor(name) {
      const t = tensors.get(name);
      if (t === undefined) throw new Error(`no tensor ${name}`);
      return t;
    },
    readBytes() {
      throw new Error('a fake checkpoint has no data');
    },
    bytesRead: 0,
    warnings: [],
    close() {},
  };
}
