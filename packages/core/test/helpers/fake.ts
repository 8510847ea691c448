/**
 * In-memory checkpoints for planner tests: a config and a header (name → shape), no file. Planning
 * reads headers only, so this is all it needs.
 */
import type { Checkpoint, Dtype, HfConfig, TensorInfo } from '../../src/index.js';

export function fakeCheckpoint(config: HfConfig, shapes: Record<string, readonly number[]>, dtype: Dtype = 'F32'): Checkpoint {
  const tensors = new Map<string, TensorInfo>();
  let offset = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    const byteLength = shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
    tensors.set(name, { name, dtype, shape: [...shape], file: 'fake.safetensors', offset, byteLength });
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
