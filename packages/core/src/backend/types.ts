/**
 * The backend interface: what the engine needs from a device, designed for the CPU, WebGPU and CUDA
 * backends alike.
 *
 * Each rank lives in its own worker thread and owns one `Rank`. Kernels are *enqueued*: they return a
 * tensor handle at once, and a backend may run them immediately (CPU), record them into a command
 * buffer (WebGPU) or launch them on a stream (CUDA). Only collectives and `download` return promises,
 * so nothing in the interface forces a host round trip per kernel.
 *
 * Weights are stored [out, in] (as nn.Linear does); activations are row-major [rows, features].
 */
export const BACKEND_INTERFACE_VERSION = 1 as const;

export type DeviceDtype = 'f32' | 'f16' | 'bf16';

/** An opaque handle to device memory. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DeviceDtype;
}

export interface BackendProbe {
  available: boolean;
  /** Why not, and what to do, when unavailable. */
  reason?: string;
  devices: Array<{ name: string; memoryBytes?: number }>;
}

/** What a backend package exports as `backend`. */
export interface Backend {
  readonly interfaceVersion: typeof BACKEND_INTERFACE_VERSION;
  readonly name: string;
  /** URL of the module that exports this object as `backend`; each rank's worker imports it. */
  readonly moduleUrl: string;
  probe(): Promise<BackendProbe>;
  /** Create this worker's rank. Called once per worker, inside the worker. */
  createRank(init: RankInit): Promise<Rank>;
}

export interface RankInit {
  rank: number;
  world: number;
  /** Shared state for host collectives (SharedArrayBuffers), made by the coordinator. */
  collective: HostCollectiveInit;
  /** Backend-specific options passed through from `initInference`. */
  options: Record<string, unknown>;
}

export interface HostCollectiveInit {
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** Floats each rank may contribute to one collective. */
  slotFloats: number;
  timeoutMs: number;
}

export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu' | 'gelu_quick' | 'identity';

export interface NormSpec {
  kind: 'rms' | 'layer';
  eps: number;
  /** Gemma's RMSNorm multiplies by (1 + weight). */
  plusOne?: boolean;
}

export interface RotarySpec {
  headDim: number;
  /** Leading dimensions of each head that rotate (partial rotary); the rest pass through. */
  rotaryDim: number;
  /** `half`: rotate the two halves (NeoX/Llama); `interleaved`: rotate even/odd pairs (GPT-J). */
  style: 'half' | 'interleaved';
  /** rotaryDim / 2 inverse frequencies (scaling already applied). */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN's attention factor); 1 otherwise. */
  scale?: number;
}

export interface AttentionSpec {
  /** Local query heads and key/value heads (kv heads may be shared: query head h uses kv head h / (heads/kvHeads)). */
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Width of a value head (usually headDim). */
  valueDim: number;
  /** Multiplies q·k before softmax. */
  scale: number;
  /** Per local head ALiBi slope (added as slope × key position), or undefined. */
  alibi?: Float32Array;
  /** Multiplies the ALiBi term together with q·k (falcon scales the sum). */
  alibiScaled?: boolean;
  /** Keys further back than this many positions are masked (sliding window / local attention). */
  window?: number;
  /** Caps attention logits: softcap · tanh(x / softcap). */
  softcap?: number;
}

/**
 * A KV cache for one attention layer of one rank: `batch` sequences of up to `capacity` positions.
 * Slots are indexed by sequence and position in the sequence's timeline (including left padding).
 */
export interface KvCache {
  readonly batch: number;
  readonly capacity: number;
}

export interface Rank {
  readonly rank: number;
  readonly world: number;
  readonly backend: string;

  /**
   * Tensors made between beginStep and endStep (one forward pass) are released together at endStep;
   * tensors made outside a step (weights, KV caches) live until freed.
   */
  beginStep(): void;
  endStep(): void;
  /** Device memory this rank holds, in bytes (for reports). */
  memoryBytes(): number;

  upload(data: Float32Array, shape: readonly number[], dtype?: DeviceDtype): DeviceTensor;
  download(t: DeviceTensor): Promise<Float32Array>;
  free(t: DeviceTensor): void;

  /** y = x · wᵀ (+ bias): x [M, K], w [N, K] → [M, N]. The GEMM (prefill) and GEMV (decode) entry point. */
  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /**
   * Rows of `table` for `ids`, times `scale`. Ids outside [rowOffset, rowOffset + rows) give zeros, so a
   * vocabulary-split table followed by an all-reduce is a complete lookup.
   */
  embedding(table: DeviceTensor, ids: Int32Array, rowOffset?: number, scale?: number): DeviceTensor;
  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /** Norm over each `width`-wide group of features (Qwen3's per-head q/k norm). */
  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /** a + b (b broadcast over rows when it is 1-D). */
  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor;
  /** a += b in place (b broadcast over rows when 1-D); returns a. */
  addInPlace(a: DeviceTensor, b: DeviceTensor): DeviceTensor;
  scale(x: DeviceTensor, s: number): DeviceTensor;
  /** Clamp every element to [-limit, limit] in place; returns x. */
  clamp(x: DeviceTensor, limit: number): DeviceTensor;
  activation(x: DeviceTensor, kind: Activation): DeviceTensor;
  /** act(gate) ⊙ up. `gate` and `up` may be one [gate; up] tensor, given as `gateUp` with `up` omitted. */
  gated(gate: DeviceTensor, up: DeviceTensor | undefined, kind: Activation): DeviceTensor;
  /** Columns [start, end) of every row. */
  sliceColumns(x: DeviceTensor, start: number, end: number): DeviceTensor;
  /** Concatenate the column ranges of `x` (each [start, end)) into one tensor, in order. */
  gatherColumns(x: DeviceTensor, ranges: ReadonlyArray<readonly [number, number]>): DeviceTensor;
  /** Rows `rows` of x, in order. */
  gatherRows(x: DeviceTensor, rows: Int32Array): DeviceTensor;
  /** target[rows[i]] += weights[i] · src[i]; returns target. */
  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: Int32Array, weights: Float32Array): DeviceTensor;
  /** Rotate q or k ([M, heads·headDim]) in place for the given positions (one per row). */
  rotary(x: DeviceTensor, positions: Int32Array, spec: RotarySpec): DeviceTensor;

  createKvCache(batch: number, capacity: number, kvHeads: number, headDim: number, valueDim: number): KvCache;
  freeKvCache(cache: KvCache): void;
  /**
   * Causal attention of `rows` new positions per sequence. q [B·rows, heads·headDim], k and v the new
   * keys and values ([B·rows, kvHeads·headDim] and [B·rows, kvHeads·valueDim]) which are appended to the
   * cache at `start` (the timeline position of the first new row). `keyMask[b][t]` is 0 for padding
   * positions that no query may attend to, `keyPositions[b][t]` the position used for ALiBi.
   */
  attention(
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    cache: KvCache,
    step: { batch: number; rows: number; start: number; keyMask: Uint8Array; keyPositions: Int32Array },
    spec: AttentionSpec,
  ): DeviceTensor;

  readonly collective: Collective;
  dispose(): void;
}

export interface Collective {
  /** Sum `t` over all ranks, in place. */
  allReduce(t: DeviceTensor): Promise<void>;
  /** Concatenate every rank's `t` along the last dimension (widths may differ). */
  allGather(t: DeviceTensor): Promise<DeviceTensor>;
  /** Copy root's `t` to every rank, in place. */
  broadcast(t: DeviceTensor, root: number): Promise<void>;
  barrier(): Promise<void>;
}
