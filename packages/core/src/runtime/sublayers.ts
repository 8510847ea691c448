/**
 * The sub-layers every model kind is assembled from, written once: attention (causal, bidirectional,
 * cross; rotary, ALiBi, relative bias and windows as switches), the MLP (plain, gated, experts) and
 * norms. They know nothing of tensor parallelism beyond local head counts: projections go through
 * `linear` (linear.ts), which performs every collective, and a sub-layer returns its output still
 * partial (`SubLayerOutput`) so that the caller decides when to reduce.
 */
import { hostTensor, type AttentionSpec, type AttentionStep, type DeviceTensor, type KvCache, type NormSpec, type Rank, type RotarySpec } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { DecoderSpec, ModelGraph } from '../graph/index.js';
import { headWidths, type TPPlan } from '../plan/index.js';
import { finishSubLayer, linear, linearPartial, type LinearWeight, type SubLayerOutput } from './linear.js';
import type { LoadedShard } from './load.js';
import { alibiSlopes, ropeInvFreq, rotaryDims } from './positions.js';
import type { AttentionRefs, LayerRefs, MlpRefs, WeightRef } from './structure.js';

/** One attention sub-layer of one layer, with what this rank computes for it. */
export interface AttentionRuntime {
  readonly refs: AttentionRefs;
  readonly spec: AttentionSpec;
  readonly rotary: RotarySpec | undefined;
  /** Local widths of q, k and v, to split a fused q/k/v output. */
  readonly qWidth: number;
  readonly kWidth: number;
  readonly vWidth: number;
  /** Local head columns of a whole q/k (when a cross-head norm keeps q/k whole). */
  readonly qColumns?: [number, number];
  readonly kColumns?: [number, number];
  /** Norms over each head's features (Qwen3's q_norm / k_norm). */
  readonly qNorm?: WeightRef;
  readonly kNorm?: WeightRef;
  /** Per-head biases added to q and v after the projection (DeBERTa v1's q_bias / v_bias, split with the heads). */
  readonly qBias?: WeightRef;
  readonly vBias?: WeightRef;
}

export interface AttentionOptions {
  mask: AttentionSpec['mask'];
  /** Apply the family's positions (rotary, ALiBi); false for cross-attention. Default true. */
  positional?: boolean;
  /** The layer's per-layer norms, for per-head q/k norms. */
  norms?: ReadonlyMap<string, WeightRef>;
}

/** What attention reads of a step: the positions of its query rows and the step's key side. */
export interface AttentionInput {
  /** i32 [batch·rows] position of each query row (rotary). */
  positions: DeviceTensor;
  /** Keys visible after this step, for dynamic rotary scaling. */
  length: number;
  step: AttentionStep;
}

export class SubLayers {
  /** Rotary inverse frequencies and ALiBi slopes, uploaded once per model (shared by equal layers). */
  private readonly constants = new Map<string, DeviceTensor>();

  constructor(
    readonly rank: Rank,
    readonly graph: ModelGraph,
    readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    readonly spec: DecoderSpec,
  ) {}

  // ---- weights ---------------------------------------------------------------------------------

  tensor(name: string): DeviceTensor {
    const t = this.shard.tensors.get(name);
    if (t === undefined) throw new TpError('internal', `weight ${name} was not loaded`);
    return t;
  }

  weight(ref: WeightRef): LinearWeight {
    return { plan: ref.weight, weight: this.tensor(ref.weight.name), bias: ref.bias ? this.tensor(ref.bias.name) : undefined };
  }

  norm(x: DeviceTensor, ref: WeightRef, spec: NormSpec = this.spec.norm): DeviceTensor {
    return this.rank.norm(x, spec, this.tensor(ref.weight.name), ref.bias ? this.tensor(ref.bias.name) : undefined);
  }

  /** A per-model constant on the device, uploaded the first time it is asked for. */
  constant(key: string, values: Float32Array): DeviceTensor {
    let t = this.constants.get(key);
    if (t === undefined) this.constants.set(key, (t = this.rank.upload(hostTensor(values))));
    return t;
  }

  /** A projection as a sub-layer output: partial when row-parallel, complete otherwise. */
  async projection(x: DeviceTensor, w: LinearWeight): Promise<SubLayerOutput> {
    if (w.plan.split !== 'row') return { partial: undefined, complete: await linear(this.rank, x, w), biases: [] };
    const part = linearPartial(this.rank, x, w);
    return { partial: part.partial, complete: undefined, biases: [part] };
  }

  finish(out: SubLayerOutput): Promise<DeviceTensor> {
    return finishSubLayer(this.rank, out);
  }

  // ---- attention -------------------------------------------------------------------------------

  /**
   * Self-attention of the step's rows (causal or bidirectional, by `a.spec.mask`): q, k, v from x,
   * k and v appended to `cache` at the step's slots, then the output projection (not yet reduced).
   */
  async selfAttention(a: AttentionRuntime, x: DeviceTensor, input: AttentionInput, cache: KvCache): Promise<SubLayerOutput> {
    const { rank } = this;
    const { q, k, v } = await this.qkv(a, x);
    if (a.rotary) {
      const rotary = this.dynamicRotary(a.rotary, input.length);
      rank.rotary(q, input.positions, rotary);
      rank.rotary(k, input.positions, rotary);
    }
    const o = rank.attention(q, k, v, cache, input.step, a.spec);
    return this.projection(o, this.weight(a.refs.out!));
  }

  /**
   * Cross-attention: queries from x, keys and values from `source`, a cache filled once from the
   * encoder output by `fillCrossCache`.
   */
  async crossAttention(a: AttentionRuntime, x: DeviceTensor, step: AttentionStep, source: KvCache): Promise<SubLayerOutput> {
    const q = await linear(this.rank, x, this.weight(a.refs.q!));
    const o = this.rank.attention(q, undefined, undefined, source, step, a.spec);
    return this.projection(o, this.weight(a.refs.out!));
  }

  /** Keys and values of the encoder output for one cross-attention sub-layer, written once. */
  async fillCrossCache(a: AttentionRuntime, encoded: DeviceTensor, cache: KvCache, batch: number, rows: number): Promise<void> {
    const k = await linear(this.rank, encoded, this.weight(a.refs.k!));
    const v = await linear(this.rank, encoded, this.weight(a.refs.v!));
    this.rank.fillKvCache(cache, k, v, batch, rows);
  }

  /** q, k and v of the local heads, from separate or fused projections, normed where the family norms them. */
  private async qkv(a: AttentionRuntime, x: DeviceTensor): Promise<{ q: DeviceTensor; k: DeviceTensor; v: DeviceTensor }> {
    const { rank } = this;
    const r = a.refs;
    let q: DeviceTensor;
    let k: DeviceTensor;
    let v: DeviceTensor;
    if (r.qkv) {
      const qkv = await linear(rank, x, this.weight(r.qkv));
      q = rank.sliceColumns(qkv, 0, a.qWidth);
      k = rank.sliceColumns(qkv, a.qWidth, a.qWidth + a.kWidth);
      v = rank.sliceColumns(qkv, a.qWidth + a.kWidth, a.qWidth + a.kWidth + a.vWidth);
    } else {
      q = await linear(rank, x, this.weight(r.q!));
      k = r.k ? await linear(rank, x, this.weight(r.k)) : q; // reformer LSH shares q and k
      v = await linear(rank, x, this.weight(r.v!));
    }
    if (a.qBias) q = rank.add(q, this.tensor(a.qBias.weight.name));
    if (a.vBias) v = rank.add(v, this.tensor(a.vBias.weight.name));
    if (r.qFullNorm) q = this.norm(q, r.qFullNorm);
    if (r.kFullNorm) k = this.norm(k, r.kFullNorm);
    const { headDim, valueDim } = a.spec;
    if (a.qColumns) q = rank.sliceColumns(q, ...a.qColumns);
    if (a.kColumns) {
      k = rank.sliceColumns(k, ...a.kColumns);
      v = rank.sliceColumns(v, (a.kColumns[0] / headDim) * valueDim, (a.kColumns[1] / headDim) * valueDim);
    }
    const norm = this.spec.norm;
    if (a.qNorm) q = rank.groupNorm(q, headDim, norm, this.tensor(a.qNorm.weight.name), a.qNorm.bias ? this.tensor(a.qNorm.bias.name) : undefined);
    if (a.kNorm) k = rank.groupNorm(k, headDim, norm, this.tensor(a.kNorm.weight.name), a.kNorm.bias ? this.tensor(a.kNorm.bias.name) : undefined);
    if (this.spec.clipQkv !== undefined) for (const t of [q, k, v]) rank.clamp(t, this.spec.clipQkv);
    return { q, k, v };
  }

  /**
   * Dynamic NTK scaling changes the frequencies once the sequence outgrows the trained length: only
   * then are they recomputed (into the step's arena).
   */
  private dynamicRotary(rotary: RotarySpec, seqLen: number): RotarySpec {
    const rope = this.spec.rope!;
    if (rope.scaling?.type !== 'dynamic' || rope.maxPositions === undefined || seqLen <= rope.maxPositions) return rotary;
    return { ...rotary, invFreq: this.rank.upload(hostTensor(ropeInvFreq(rope, rotary.headDim, seqLen))) };
  }

  /**
   * What this rank computes for one attention sub-layer of layer `index`: local head counts from
   * the plan's head assignment, head widths from the local weights (they differ from the config for
   * e.g. Perceiver), the scale, window, ALiBi slopes and rotary tables of the family.
   */
  attentionRuntime(refs: AttentionRefs, index: number, options: AttentionOptions): AttentionRuntime {
    const { mask, positional = true, norms } = options;
    const { plan, spec, graph } = this;
    const a = plan.attention.find((x) => x.group === refs.group);
    const g = plan.geometry.attention[refs.group]!;
    // The plan says what this rank's attention computes; a group it does not split (replicated by a
    // policy) runs every head on every rank.
    const share = a?.ranks[this.rank.rank];
    const { heads, kvHeads, headDim, valueDim } = share ?? { heads: g.heads, kvHeads: g.kvHeads, ...headWidths(graph, refs.group) };
    // q/k kept whole for a norm over all heads (MPT's qk_ln) are sliced to the local heads after it.
    const wholeQk = a?.sliceAfterNorm === true;
    const localQ = wholeQk ? g.heads : heads;
    const localKv = wholeQk ? g.kvHeads : kvHeads;
    const scale = spec.attentionScale === 'none' ? 1 : typeof spec.attentionScale === 'number' ? spec.attentionScale : 1 / Math.sqrt(headDim);
    const window = typeof spec.window === 'function' ? spec.window(index) : spec.window;
    const attention: AttentionSpec = {
      mask,
      heads,
      kvHeads,
      headDim,
      valueDim,
      scale: spec.scaleByLayer ? scale / (index + 1) : scale,
      ...(window !== undefined ? { window } : {}),
    };
    if (positional && spec.positions === 'alibi' && spec.alibi) {
      const slopes = alibiSlopes(g.heads, spec.alibi.kind, spec.alibi.maxBias);
      const local = share ? slopes.slice(share.q[0], share.q[1]) : slopes;
      attention.alibi = this.constant(`alibi:${local.join(',')}`, local);
      attention.alibiScaled = spec.alibi.scaled === true;
    }
    const rotary: RotarySpec | undefined =
      positional && spec.positions === 'rope' && spec.rope
        ? { headDim, rotaryDim: rotaryDims(spec.rope, headDim), style: spec.rope.style, invFreq: this.constant(`rope:${headDim}`, ropeInvFreq(spec.rope, headDim)) }
        : undefined;
    const qNorm = norms?.get('q_norm');
    const kNorm = norms?.get('k_norm');
    const qBias = norms?.get('q_bias');
    const vBias = norms?.get('v_bias');
    return {
      refs,
      spec: attention,
      rotary,
      ...(qNorm ? { qNorm } : {}),
      ...(kNorm ? { kNorm } : {}),
      ...(qBias ? { qBias } : {}),
      ...(vBias ? { vBias } : {}),
      qWidth: localQ * headDim,
      kWidth: localKv * headDim,
      vWidth: localKv * valueDim,
      ...(wholeQk && share ? { qColumns: [share.q[0] * headDim, share.q[1] * headDim] as [number, number], kColumns: [share.kv[0] * headDim, share.kv[1] * headDim] as [number, number] } : {}),
    };
  }

  // ---- MLP and experts -------------------------------------------------------------------------

  /** The layer's MLP (dense, or experts plus shared expert) as a sub-layer output not yet reduced. */
  async mlp(layer: LayerRefs, x: DeviceTensor): Promise<SubLayerOutput> {
    if (layer.router !== undefined && layer.experts.size > 0 && this.spec.moe !== undefined) return this.experts(layer, x);
    return this.projection(await this.mlpHidden(layer.mlp, x), this.weight(layer.mlp.down!));
  }

  /** act(gate(x)) ⊙ up(x), or act(up(x)): the input of the down projection. */
  private async mlpHidden(m: MlpRefs, x: DeviceTensor): Promise<DeviceTensor> {
    const { rank } = this;
    const act = this.spec.mlp.activation;
    if (m.gateUp) return rank.gated(await linear(rank, x, this.weight(m.gateUp)), undefined, act);
    const up = await linear(rank, x, this.weight(m.up!));
    if (m.gate) return rank.gated(await linear(rank, x, this.weight(m.gate)), up, act);
    return rank.activation(up, act);
  }

  /**
   * Mixture of experts, routed on the device. The router is replicated, so every rank picks the same
   * experts. Each expert's output is weighted and added into one of two sums: the partial sum when
   * its down projection is row-parallel (reduced once, by the caller, together with the shared
   * expert), the complete sum when the expert is replicated — a whole output must never be reduced.
   */
  private async experts(layer: LayerRefs, x: DeviceTensor): Promise<SubLayerOutput> {
    const { rank } = this;
    const moe = this.spec.moe!;
    const routing = rank.route(await linear(rank, x, this.weight(layer.router!)), moe.topK, moe.normalize);
    const out: SubLayerOutput = { partial: undefined, complete: undefined, biases: [] };
    const sum = (key: 'partial' | 'complete') => (out[key] ??= rank.scale(x, 0));
    for (const [e, m] of [...layer.experts].sort((a, b) => a[0] - b[0])) {
      const picked = rank.expertRows(x, routing, e);
      if (picked.x.shape[0] === 0) continue; // no row chose this expert (a backend that can tell)
      const down = this.weight(m.down!);
      const y = linearPartial(rank, await this.mlpHidden(m, picked.x), down);
      rank.scatterAddRows(sum(down.plan.split === 'row' ? 'partial' : 'complete'), y.partial, picked.rows, picked.weights);
    }
    if (layer.shared) {
      const down = this.weight(layer.shared.down!);
      const part = linearPartial(rank, await this.mlpHidden(layer.shared, x), down);
      const rows = x.shape[0]!;
      const gates = layer.sharedGate ? rank.sigmoid(await linear(rank, x, this.weight(layer.sharedGate))) : rank.upload(hostTensor(new Float32Array(rows).fill(1)));
      const all = rank.upload(hostTensor(Int32Array.from({ length: rows }, (_, i) => i)));
      rank.scatterAddRows(sum(down.plan.split === 'row' ? 'partial' : 'complete'), part.partial, all, gates);
      if (down.plan.split === 'row') out.biases.push(part);
    }
    // Without a partial sum nothing is reduced: a complete sum is the output as it is.
    if (out.partial === undefined && out.complete === undefined) out.complete = rank.scale(x, 0);
    return out;
  }
}
