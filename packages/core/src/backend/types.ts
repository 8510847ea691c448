/**
 * The backend interface: what the engine needs from a device, designed for the CPU, WebGPU and CUDA
 * backends alike.
 *
 * Each rank lives in its own worker thread and owns one `Rank`. Kernels are *enqueued*: they return a
 * tensor handle at once, and a backend may run them immediately (CPU), record them into a command
 * buffer (WebGPU) or launch them on a stream (CUDA). Only collectives, `download` and the end of a
 * step return promises, so nothing in the interface forces a host round trip per kernel.
 *
 * Version 4 (this file) adds to version 3 nested steps: a step opened inside a step is a scope (one
 * layer of a forward pass) whose temporaries are released when it ends, except the one tensor it
 * hands to the enclosing step (`endStep(keep)`). A forward pass then holds one layer's activations at
 * a time instead of every layer's. A version-3 backend would hold or lose them wrongly, so core
 * refuses it.
 *
 * Version 3 adds to version 2 what attention variants need: relative-position terms
 * (`AttentionSpec.relative` with `AttentionStep.relativeIndex`: NEZHA, DeBERTa), a per-sequence
 * additive bias (`AttentionStep.bias` [batch, heads, rows, keys]: Reformer's LSH buckets) and
 * YOSO's expectation scoring (`AttentionSpec.scoring`). A backend of version 2 would ignore them
 * and answer wrongly, so core refuses it.
 *
 * Version 2:
 * - Host data crosses the interface as raw bytes with their dtype (`HostTensor`), and `upload` stores
 *   weights in the storage dtype asked for (`f32 | f16 | bf16`); kernels widen to f32 internally.
 *   Activations and accumulation are always f32.
 * - Everything a kernel reads is a device tensor: ids, positions, key masks and key positions are
 *   uploaded once per step (sized to the current length), rotary inverse frequencies and ALiBi slopes
 *   once per model. No kernel takes a host array.
 * - One attention entry point: causal or bidirectional masking, a cached cross-attention source,
 *   an optional additive per-head bias.
 * - Device-side `argmax`, `topk` and MoE routing, so a decode step downloads one id per sequence.
 * - The backend chooses how its ranks communicate (`createCommunicator`), so NCCL's unique id and the
 *   CPU's shared memory travel the same way.
 * - `endStep` and `dispose` are asynchronous: a step's temporaries are released only after the device
 *   has finished with them, and disposing reaches every rank.
 *
 * Weights are stored [out, in] (as nn.Linear does); activations are row-major [rows, features].
 */
export const BACKEND_INTERFACE_VERSION = 4 as const;

/** Storage dtypes of weights (and of the KV cache). Compute is f32 whatever the storage. */
export type StorageDtype = 'f32' | 'f16' | 'bf16';

/** Element types a device tensor may have: a storage dtype, or i32 for ids, positions and masks. */
export type DeviceDtype = StorageDtype | 'i32';

/** Bytes per element of a device dtype. */
export const DEVICE_DTYPE_BYTES: Readonly<Record<DeviceDtype, number>> = { f32: 4, f16: 2, bf16: 2, i32: 4 };

/** Host data as raw little-endian bytes of `dtype`, row-major. */
export interface HostTensor {
  readonly bytes: Uint8Array;
  readonly dtype: DeviceDtype;
  readonly shape: readonly number[];
}

/** An opaque handle to device memory. */
export interface DeviceTensor {
  readonly shape: readonly number[];
  readonly dtype: DeviceDtype;
}

export interface BackendProbe {
  available: boolean;
  /** Why not, and what to do, when unavailable. */
  reason?: string;
  /**
   * The devices a rank can be given, in the order `backendOptions.devices` numbers them (rank r takes
   * `devices[r]`, or device r mod count without that option).
   */
  devices: BackendDevice[];
}

export interface BackendDevice {
  name: string;
  memoryBytes?: number;
  /**
   * What a user choosing devices wants to know, as label → value, printed by `tp devices` in this
   * order (WebGPU: vendor, architecture, software or not, features, key limits; CUDA: compute
   * capability). A device that cannot be used says why under `unusable`.
   */
  details?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /** Set when this device is listed but cannot run a rank, with the reason. */
  unusable?: string;
}

/**
 * How the ranks of one session reach each other, made once by the coordinator and passed to every
 * rank. It must survive `postMessage` (structured clone): SharedArrayBuffers for host collectives, an
 * NCCL unique id as bytes, and so on. `kind` names the mechanism.
 */
export interface CommunicatorInit {
  readonly kind: string;
  readonly world: number;
  readonly timeoutMs: number;
  readonly [key: string]: unknown;
}

/** What a backend package exports as `backend`. */
export interface Backend {
  readonly interfaceVersion: typeof BACKEND_INTERFACE_VERSION;
  readonly name: string;
  /** URL of the module that exports this object as `backend`; each rank's worker imports it. */
  readonly moduleUrl: string;
  /** Storage dtypes `upload` accepts for weights, fastest first. */
  readonly storageDtypes: readonly StorageDtype[];
  /**
   * What `dtype: 'auto'` holds a checkpoint dtype as where this backend measured another storage
   * faster (the CPU backend widens f16 to f32: its WebAssembly has no f16 conversion). Explicit
   * dtypes are unaffected.
   */
  readonly autoStorage?: Readonly<Partial<Record<StorageDtype, StorageDtype>>>;
  /** Dtypes `createKvCache` accepts, fastest first. */
  readonly kvDtypes: readonly StorageDtype[];
  probe(): Promise<BackendProbe>;
  /**
   * Bytes one rank can hold (weights + KV cache + workspace), or undefined when unknown. The
   * coordinator refuses a plan whose share does not fit before any rank loads.
   */
  rankMemoryLimit(options: Record<string, unknown>): Promise<number | undefined>;
  /**
   * Called once by the coordinator, on the main thread. `backendOptions` are the session's (`initInference({ backendOptions })`, the CLI's `--devices`):
   * a backend that places ranks on devices here (CUDA: which GPU each rank's NCCL rank uses) reads
   * `devices` from them.
   */
  createCommunicator(world: number, options: { timeoutMs: number; backendOptions?: Readonly<Record<string, unknown>> }): CommunicatorInit;
  /** Wake every rank blocked in a collective because `rank` failed (called from the failing rank). */
  abortCommunicator(init: CommunicatorInit, rank: number): void;
  /** Create this worker's rank. Called once per worker, inside the worker. */
  createRank(init: RankInit): Promise<Rank>;
}

export interface RankInit {
  rank: number;
  world: number;
  communicator: CommunicatorInit;
  /** Backend-specific options passed through from `initInference`. */
  options: Record<string, unknown>;
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
  /** f32 [rotaryDim / 2] inverse frequencies (scaling already applied), uploaded once per model. */
  invFreq: DeviceTensor;
  /** Multiplies cos and sin (YaRN's attention factor); 1 otherwise. */
  scale?: number;
}

export interface AttentionSpec {
  /** Local query heads and key/value heads (query head h uses kv head h / (heads/kvHeads)). */
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Width of a value head (usually headDim). */
  valueDim: number;
  /** Multiplies q·k before softmax (1 for T5's unscaled attention). */
  scale: number;
  /**
   * `causal`: query i sees keys up to its own timeline slot. `bidirectional`: every unmasked key
   * (encoders, and cross-attention).
   */
  mask: 'causal' | 'bidirectional';
  /** f32 [heads] per local head ALiBi slope (added as slope × key position), or undefined. */
  alibi?: DeviceTensor;
  /** Multiplies the ALiBi term together with q·k (falcon scales the sum). */
  alibiScaled?: boolean;
  /** Keys further back than this many positions are masked (sliding window / local attention). */
  window?: number;
  /** Caps attention logits: softcap · tanh(x / softcap). */
  softcap?: number;
  /**
   * Relative-position terms (Shaw et al. 2018; NEZHA, DeBERTa's disentangled attention), read with
   * `step.relativeIndex` (i32 [rows, keys]: one table row per query row i and key slot j, r = index[i, j]):
   *
   *     score[h, i, j] = (q[h, i]·k[h, j] + q[h, i]·keys[r, h] + k[h, j]·queries[r, h]) · scale
   *     out[h, i]      = Σ_j p[h, i, j] · (v[h, j] + values[r, h])
   *
   * where k[h, j] and v[h, j] are the key and value of query head h's kv head. Each table is f32
   * [positions, heads·headDim] (`values`: heads·valueDim), one slice per local query head (DeBERTa's
   * projected relative embeddings, split with the heads), or [positions, headDim] (valueDim) shared
   * by every head (NEZHA's sinusoidal table). Any of the three may be absent. The terms come before
   * ALiBi, the soft cap and `step.bias`. Requires `step.relativeIndex`; an index out of
   * [0, positions) throws at enqueue where the backend can check it, and is clamped otherwise.
   */
  relative?: { keys?: DeviceTensor; queries?: DeviceTensor; values?: DeviceTensor };
  /**
   * How scores become weights. `softmax` (the default). `expectation`: YOSO's expected LSH
   * collision weight, used by transformers' YosoCumulation at inference — q and k are L2-normalized
   * per head, w[h, i, j] = (1 − acos(q̂·k̂) / π)^bits for visible keys (0 for keys `step.keyMask` or
   * the causal limit hides; `scale`, ALiBi, soft cap, relative terms and `step.bias` — its masking
   * entries included — are not applied), and the output row of each head is
   * L2-normalized: out[h, i] = normalize(Σ_j w[h, i, j] · v[h, j]) (transformers' F.normalize, eps 1e-12).
   */
  scoring?: AttentionScoring;
}

/** See `AttentionSpec.scoring`. `bits`: transformers' hash_code_len, a whole number ≥ 1 (backends refuse bits < 1). */
export type AttentionScoring = { kind: 'softmax' } | { kind: 'expectation'; bits: number };

/**
 * A KV cache for one attention layer of one rank: `batch` sequences. It grows with the sequence (a
 * step that appends past its capacity extends it), so its size follows the tokens so far, never a
 * requested maximum. `length` is the number of timeline slots written.
 */
export interface KvCache {
  readonly batch: number;
  readonly length: number;
  readonly dtype: StorageDtype;
}

/**
 * What one attention call needs of the step, all on the device.
 * - `keyMask`: i32 [batch, keys], 1 where the slot holds a real token (0: padding no query may see).
 * - `keyPositions`: i32 [batch, keys], each slot's position (ALiBi), or undefined without ALiBi.
 * - `bias`: f32 [heads, rows, keys] added to the scaled scores (T5's relative bias), broadcast over
 *   the batch; or f32 [batch, heads, rows, keys], one per sequence (Reformer's LSH buckets); or
 *   undefined. Under softmax scoring a bias entry ≤ -1e30 (or -Infinity) masks that key exactly as
 *   padding does: weight 0, and a query with no key left outputs zeros.
 * - `relativeIndex`: i32 [rows, keys], the relative-position table row of each (query, key) pair,
 *   shared by the batch; required with `spec.relative`, ignored without.
 * `keys` is the number of key slots visible after this call's append (start + rows for
 * self-attention, the source length for cross-attention).
 */
export interface AttentionStep {
  batch: number;
  rows: number;
  /** Timeline slot of the first query row (where its keys and values are appended). */
  start: number;
  keyMask: DeviceTensor;
  keyPositions?: DeviceTensor;
  bias?: DeviceTensor;
  relativeIndex?: DeviceTensor;
}

/** MoE routing of a batch of rows: which experts each row uses and with what weight. */
export interface Routing {
  /** i32 [rows, topK] chosen experts, best first. */
  readonly experts: DeviceTensor;
  /** f32 [rows, topK] their weights. */
  readonly weights: DeviceTensor;
}

/** The rows routed to one expert: compacted by backends that can size on the host (CPU). */
export interface ExpertRows {
  /** f32 [n, features] input rows for the expert. */
  readonly x: DeviceTensor;
  /** i32 [n] which input row each one came from. */
  readonly rows: DeviceTensor;
  /** f32 [n] routing weight of each. A backend may return every row, with weight 0 where unrouted. */
  readonly weights: DeviceTensor;
}

export interface Rank {
  readonly rank: number;
  readonly world: number;
  readonly backend: string;

  /**
   * Tensors made between beginStep and endStep (one forward pass) are released together when the
   * promise of endStep resolves: after the device has finished the step's queued work. Tensors made
   * outside a step (weights, KV caches, rotary tables) live until freed.
   *
   * Steps nest. A beginStep inside an open step opens a scope; its endStep releases every tensor made
   * since that beginStep at once — in device order: work already enqueued still reads them, and later
   * work may reuse their memory — except `keep`, which from then on belongs to the enclosing step
   * (the same handle, the same contents). Successive scopes must reuse each other's memory, so a
   * forward pass run one scope per layer holds one layer's temporaries at a time. Ending a scope need
   * not wait for the device. `keep` on the outermost endStep is refused (nothing encloses it), and the
   * step stays open.
   */
  beginStep(): void;
  endStep(keep?: DeviceTensor): Promise<void>;
  /** Device memory this rank holds, in bytes (for reports). */
  memoryBytes(): number;

  /**
   * Copy host data to the device. Floating-point data is stored as `as` (default: its own dtype):
   * f32/f16/bf16 convert among themselves; i32 stays i32. A conversion that cannot be represented
   * (a value beyond f16's range) is an error naming nothing but the value: the loader names the tensor.
   */
  upload(host: HostTensor, as?: DeviceDtype): DeviceTensor;
  /** The tensor's elements, widened to f32 (or i32 for i32 tensors). */
  download(t: DeviceTensor): Promise<Float32Array | Int32Array>;
  free(t: DeviceTensor): void;

  /** y = x · wᵀ (+ bias): x f32 [M, K], w [N, K] in any storage dtype → f32 [M, N]. */
  linear(x: DeviceTensor, w: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /**
   * Rows of `table` for `ids` (i32 [n]), times `scale`. Ids outside [rowOffset, rowOffset + rows)
   * give zeros, so a vocabulary-split table followed by an all-reduce is a complete lookup. A negative
   * rowOffset shifts ids up (learned positions with an offset: row = id - rowOffset).
   */
  embedding(table: DeviceTensor, ids: DeviceTensor, rowOffset?: number, scale?: number): DeviceTensor;
  /**
   * Sinusoidal position rows for `positions` (i32 [n]), `[sin | cos]` halves: `fairseq` frequencies
   * exp(-ln(10000)·i/(half-1)) (XGLM, M2M100) or `marian` 10000^(-2i/dim) (Marian, Pegasus).
   */
  sinusoidal(positions: DeviceTensor, dim: number, kind: 'fairseq' | 'marian'): DeviceTensor;
  norm(x: DeviceTensor, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /** Norm over each `width`-wide group of features (Qwen3's per-head q/k norm). */
  groupNorm(x: DeviceTensor, width: number, spec: NormSpec, weight?: DeviceTensor, bias?: DeviceTensor): DeviceTensor;
  /** a + b (b broadcast over rows when it is one row: [cols] or [1, cols]). */
  add(a: DeviceTensor, b: DeviceTensor): DeviceTensor;
  /** a += b in place (b broadcast over rows when it is one row: [cols] or [1, cols]); returns a. */
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
  /** Rows `rows` (i32 [n]) of x, in order. */
  gatherRows(x: DeviceTensor, rows: DeviceTensor): DeviceTensor;
  /** target[rows[i]] += weights[i] · src[i] (rows i32 [n], weights f32 [n]); returns target. */
  scatterAddRows(target: DeviceTensor, src: DeviceTensor, rows: DeviceTensor, weights: DeviceTensor): DeviceTensor;
  /** Rotate q or k ([M, heads·headDim]) in place for the given positions (i32 [M]). */
  rotary(x: DeviceTensor, positions: DeviceTensor, spec: RotarySpec): DeviceTensor;
  /** Elementwise 1 / (1 + e^-x) (Qwen2-MoE's shared-expert gate). */
  sigmoid(x: DeviceTensor): DeviceTensor;

  /** i32 [rows]: index of the largest value of each row (the first on ties, like torch.argmax). */
  argmax(x: DeviceTensor): DeviceTensor;
  /** The k largest values of each row, best first (lower index first on ties): f32 and i32 [rows, k]. */
  topk(x: DeviceTensor, k: number): { values: DeviceTensor; indices: DeviceTensor };
  /** MoE routing: softmax over each row of router logits, the top k, renormalised when asked. */
  route(logits: DeviceTensor, topK: number, normalize: boolean): Routing;
  /** The rows of `x` routed to expert `e`, with their indices and weights. */
  expertRows(x: DeviceTensor, routing: Routing, e: number): ExpertRows;

  /** An empty KV cache for `batch` sequences; it grows as attention appends. */
  createKvCache(batch: number, kvHeads: number, headDim: number, valueDim: number, dtype: StorageDtype): KvCache;
  freeKvCache(cache: KvCache): void;
  /**
   * Attention of `rows` new query rows per sequence (q f32 [batch·rows, heads·headDim]).
   * With `k` and `v` ([batch·rows, kvHeads·headDim] and [batch·rows, kvHeads·valueDim]) they are first
   * written to the cache at slots [start, start + rows); without them the cache is read as it is (a
   * cross-attention source filled once by `fillKvCache`). Keys visible: the cache's first
   * `keyMask.shape[1]` slots, under `spec.mask`. Output f32 [batch·rows, heads·valueDim].
   */
  attention(q: DeviceTensor, k: DeviceTensor | undefined, v: DeviceTensor | undefined, cache: KvCache, step: AttentionStep, spec: AttentionSpec): DeviceTensor;
  /** Write `rows` keys and values per sequence at slots [0, rows) (cross-attention sources). */
  fillKvCache(cache: KvCache, k: DeviceTensor, v: DeviceTensor, batch: number, rows: number): void;
  /**
   * Reorder the cache's sequences (beam search): afterwards sequence b holds what sequence `order[b]`
   * held before, every written slot of it — keys, values and `length` alike. `order` is i32 [batch]
   * with values in [0, batch); entries may repeat (a beam continued twice) and sequences may be dropped
   * (a beam nobody continues). The cache keeps its batch, length and capacity. Enqueued like a kernel:
   * attention calls enqueued after it see the reordered cache, and `order` may be a step temporary.
   * An order of the wrong length or with a value out of range throws at enqueue.
   */
  reorderKvCache(cache: KvCache, order: DeviceTensor): void;

  readonly collective: Collective;
  /** Release every device resource; the rank is unusable afterwards. */
  dispose(): Promise<void>;
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

/** The host collective's communicator (shared memory between worker threads). */
export interface HostCollectiveInit extends CommunicatorInit {
  readonly kind: 'host';
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** Floats each rank may contribute to one collective. */
  slotFloats: number;
}

/** Host tensors from typed arrays (tests, the engine's step inputs). */
export function hostTensor(data: Float32Array | Int32Array, shape: readonly number[] = [data.length]): HostTensor {
  return { bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dtype: data instanceof Int32Array ? 'i32' : 'f32', shape };
}
