/**
 * Loading one rank's shard: for every tensor the plan lists, read exactly that rank's ranges from disk
 * as raw bytes and upload them in the storage dtype the plan chose. Format quirks are byte
 * permutations the plan prescribes, applied here, once, on the host, whatever the element width:
 * GPT-2's Conv1D weights are transposed to [out, in] (`TensorPlan.transposed`), fused q/k/v rows are
 * reordered into [Q; K; V] (`RankSlice.rowOrder`), and a tied LM head takes its hidden slice of the
 * embedding (`plan.lmHead`). Nothing is derived from head counts here, and nothing is widened to f32.
 */
import { bytesToF32, readSliceBytes, type Checkpoint, type Dtype } from '../checkpoint/index.js';
import type { DeviceTensor, HostTensor, Rank, StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import { canonicalQkvOrder, type TPPlan, type TensorPlan } from '../plan/index.js';

export interface LoadedShard {
  readonly tensors: Map<string, DeviceTensor>;
  /** The tied LM head's hidden slice of the embedding (row split of a replicated embedding). */
  readonly tiedLmHead: DeviceTensor | undefined;
  readonly bytesRead: number;
}

export interface LoadProgress {
  rank: number;
  bytesRead: number;
  bytesTotal: number;
  tensor: string;
}

/** The checkpoint dtypes that go to the device as they are; F64 is narrowed to f32 on the host. */
const HOST_DTYPE: Partial<Record<Dtype, StorageDtype>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

export function loadShard(
  ckpt: Checkpoint,
  plan: TPPlan,
  rank: Rank,
  onProgress?: (p: LoadProgress) => void,
): LoadedShard {
  const tensors = new Map<string, DeviceTensor>();
  const before = ckpt.bytesRead;
  const bytesTotal = plan.ranks[rank.rank]!.bytesToRead;
  let tiedLmHead: DeviceTensor | undefined;
  for (const t of plan.tensors) {
    if (!t.read) continue;
    const slice = t.ranks[rank.rank]!;
    const raw = readSliceBytes(ckpt, t.name, { dim: t.dim, ranges: slice.ranges });
    let host = hostOf(raw.bytes, raw.shape.length === 0 ? [1] : raw.shape, t);
    if (t.transposed && host.shape.length === 2) host = transpose(host);
    const order = slice.rowOrder;
    if (order !== undefined) host = reorderRows(host, canonicalQkvOrder(order.layout, order.qHeads, order.kvHeads, order.headWidth, order.codegenBlocks));
    const as = t.storage ?? 'f32';
    tensors.set(t.name, upload(rank, host, as, t.name));
    if (plan.lmHead?.tied && plan.lmHead.split === 'row' && plan.lmHead.weight === t.name && t.split === 'replicate') {
      const [start, end] = plan.lmHead.ranks[rank.rank]!.ranges[0]!;
      tiedLmHead = upload(rank, columns(host, start, end), as, t.name);
    }
    onProgress?.({ rank: rank.rank, bytesRead: ckpt.bytesRead - before, bytesTotal, tensor: t.name });
  }
  return { tensors, tiedLmHead, bytesRead: ckpt.bytesRead - before };
}

function hostOf(bytes: Uint8Array, shape: number[], t: TensorPlan): HostTensor {
  const dtype = HOST_DTYPE[t.dtype];
  if (dtype !== undefined) return { bytes, dtype, shape };
  if (t.dtype === 'F64') {
    const f32 = bytesToF32(bytes, 'F64');
    return { bytes: new Uint8Array(f32.buffer), dtype: 'f32', shape };
  }
  throw new TpError('unsupported-model', `tensor ${t.name} is ${t.dtype}; tp loads F32, F16, BF16 and F64 weights`);
}

/** Upload, naming the tensor when its values cannot be stored as asked (bf16 → f16 overflow). */
function upload(rank: Rank, host: HostTensor, as: StorageDtype, name: string): DeviceTensor {
  try {
    return rank.upload(host, as);
  } catch (cause) {
    if (TpError.isInstance(cause) && cause.code === 'invalid-argument') {
      throw new TpError('invalid-argument', `tensor ${name} (${host.dtype}) cannot be stored as ${as}: ${cause.message}`, { cause });
    }
    throw cause;
  }
}

const elementBytes = (h: HostTensor) => (h.dtype === 'f32' || h.dtype === 'i32' ? 4 : 2);

/** Rows in `order` (a permutation of dim 0). */
function reorderRows(h: HostTensor, order: Int32Array): HostTensor {
  const rowBytes = h.bytes.byteLength / h.shape[0]!;
  const out = new Uint8Array(h.bytes.byteLength);
  for (let i = 0; i < order.length; i++) out.set(h.bytes.subarray(order[i]! * rowBytes, (order[i]! + 1) * rowBytes), i * rowBytes);
  return { ...h, bytes: out };
}

/** [rows, cols] → [cols, rows], element by element of any width. */
function transpose(h: HostTensor): HostTensor {
  const [rows, cols] = h.shape as [number, number];
  const e = elementBytes(h);
  const out = new Uint8Array(h.bytes.byteLength);
  const src = h.bytes;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * e;
      const to = (c * rows + r) * e;
      for (let b = 0; b < e; b++) out[to + b] = src[from + b]!;
    }
  }
  return { ...h, bytes: out, shape: [cols, rows] };
}

/** Columns [start, end) of a [rows, cols] tensor. */
function columns(h: HostTensor, start: number, end: number): HostTensor {
  const [rows, cols] = h.shape as [number, number];
  const e = elementBytes(h);
  const width = (end - start) * e;
  const out = new Uint8Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(h.bytes.subarray((r * cols + start) * e, (r * cols + end) * e), r * width);
  return { ...h, bytes: out, shape: [rows, end - start] };
}
