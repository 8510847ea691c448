/**
 * Loading one rank's shard: for every tensor the plan lists, read exactly that rank's ranges from disk
 * and upload them. Format quirks are applied here, once, on the host: GPT-2's Conv1D weights are
 * transposed to [out, in], fused q/k/v rows are reordered into [Q; K; V], and a tied LM head takes its
 * hidden slice of the embedding.
 */
import { readSlice, type Checkpoint } from '../checkpoint/index.js';
import type { DeviceTensor, Rank } from '../backend/index.js';
import type { ModelGraph, WeightNode } from '../graph/index.js';
import { canonicalQkvOrder, codegenLocalBlocks, fusedHeadWidth, type TPPlan, type TensorPlan } from '../plan/index.js';

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

export function loadShard(
  ckpt: Checkpoint,
  graph: ModelGraph,
  plan: TPPlan,
  rank: Rank,
  onProgress?: (p: LoadProgress) => void,
): LoadedShard {
  const nodes = new Map(graph.weights.map((w) => [w.name, w]));
  const tensors = new Map<string, DeviceTensor>();
  const before = ckpt.bytesRead;
  const bytesTotal = plan.ranks[rank.rank]!.bytesToRead;
  let tiedLmHead: DeviceTensor | undefined;
  for (const t of plan.tensors) {
    if (!t.read) continue;
    const node = nodes.get(t.name)!;
    const slice = t.ranks[rank.rank]!;
    const { data, shape } = readSlice(ckpt, t.name, { dim: t.dim, ranges: slice.ranges });
    let host = data;
    let hostShape = shape.length === 0 ? [1] : shape;
    if (node.transposed && hostShape.length === 2) {
      host = transpose(host, hostShape[0]!, hostShape[1]!);
      hostShape = [hostShape[1]!, hostShape[0]!];
    }
    if (node.layout !== undefined && node.role === 'attn.qkv') host = reorderRows(host, hostShape, qkvOrder(node, t, plan, rank.rank, hostShape[0]!));
    tensors.set(t.name, rank.upload(host, hostShape));
    if (plan.lmHead?.tied && plan.lmHead.split === 'row' && plan.lmHead.weight === t.name && t.split === 'replicate') {
      const [start, end] = plan.lmHead.ranks[rank.rank]!.ranges[0]!;
      tiedLmHead = rank.upload(columns(host, hostShape[0]!, hostShape[1]!, start, end), [hostShape[0]!, end - start]);
    }
    onProgress?.({ rank: rank.rank, bytesRead: ckpt.bytesRead - before, bytesTotal, tensor: t.name });
  }
  return { tensors, tiedLmHead, bytesRead: ckpt.bytesRead - before };
}

function qkvOrder(node: WeightNode, t: TensorPlan, plan: TPPlan, rank: number, localRows: number): Int32Array {
  const a = plan.attention.find((x) => x.group === (node.attention ?? 'self'));
  if (a === undefined) {
    // Replicated (e.g. kept whole for a cross-head norm): the whole tensor in its native layout.
    const g = plan.geometry.attention[node.attention ?? 'self']!;
    const hd = fusedHeadWidth(node.layout!, localRows, g.heads, g.kvHeads);
    return canonicalQkvOrder(node.layout!, g.heads, g.kvHeads, hd, 4);
  }
  const share = a.ranks[rank]!;
  const sliced = t.split !== 'replicate';
  const q = sliced ? share.q[1] - share.q[0] : a.heads;
  const kv = sliced ? share.kv[1] - share.kv[0] : a.kvHeads;
  const hd = node.layout === 'qkv-codegen' ? localRows / (3 * q) : localRows / (q + 2 * kv);
  const blocks = node.layout === 'qkv-codegen' ? (sliced ? codegenLocalBlocks(a.heads, plan.tpSize) : 4) : 1;
  return canonicalQkvOrder(node.layout!, q, kv, hd, blocks);
}

function reorderRows(data: Float32Array, shape: number[], order: Int32Array): Float32Array {
  const width = shape.length === 1 ? 1 : data.length / shape[0]!;
  const out = new Float32Array(data.length);
  for (let i = 0; i < order.length; i++) out.set(data.subarray(order[i]! * width, (order[i]! + 1) * width), i * width);
  return out;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

function columns(data: Float32Array, rows: number, cols: number, start: number, end: number): Float32Array {
  const width = end - start;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols + start, r * cols + end), r * width);
  return out;
}
