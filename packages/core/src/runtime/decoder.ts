/**
 * The decoder forward, written once for every decoder family: the family's DecoderSpec switches norm
 * kind and placement, parallel or sequential residual, rotary / ALiBi / learned / sinusoidal
 * positions, gated or plain MLP and mixture of experts. It knows nothing of tensor parallelism beyond
 * local head counts: `linear` (linear.ts) performs every collective.
 */
import { hostTensor, type AttentionSpec, type AttentionStep, type DeviceTensor, type KvCache, type Rank, type RotarySpec, type StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { DecoderSpec, ModelGraph } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { combineSubLayers, embed, finishSubLayer, linear, linearPartial, type LinearWeight, type SubLayerOutput } from './linear.js';
import type { LoadedShard } from './load.js';
import { alibiSlopes, ropeInvFreq, rotaryDims } from './positions.js';
import { modelRefs, type LayerRefs, type MlpRefs, type ModelRefs, type WeightRef } from './structure.js';
import { StepTimeline } from './timeline.js';

/** What rank 0 sends back from a step: the logits, or only what the sampler needs of them. */
export type StepOutput = 'logits' | 'argmax' | { topk: number };

/**
 * One forward pass, as the coordinator sends it: only the new rows. The rank keeps the key mask and
 * key positions of the timeline so far itself, so a message's size follows the new tokens.
 */
export interface StepInput {
  /** Token ids, [batch × rows]. */
  ids: Int32Array;
  /** Position ids, [batch × rows] (rotary, learned and sinusoidal positions). */
  positions: Int32Array;
  batch: number;
  rows: number;
  /** Timeline slot of the first row (the KV cache index). */
  start: number;
  /** [batch × rows]: 1 where the new slot holds a real token (0: left padding). */
  keyMask: Int32Array;
  /** [batch × rows]: the position each new slot has for ALiBi. */
  keyPositions: Int32Array;
  /** Which rows need logits. */
  logits: 'last' | 'all' | 'none';
  /** What rank 0 returns (default: the logits). */
  output?: StepOutput;
}

/** What rank 0 returns from a step. */
export interface StepResult {
  logits?: Float32Array;
  ids?: Int32Array;
  topk?: { values: Float32Array; indices: Int32Array };
}

/** The step's inputs on the device, uploaded once and read by every layer. */
interface DeviceStep {
  batch: number;
  rows: number;
  start: number;
  ids: DeviceTensor;
  positions: DeviceTensor;
  attention: AttentionStep;
}

interface LayerRuntime {
  refs: LayerRefs;
  attention: AttentionSpec;
  rotary: RotarySpec | undefined;
  /** Local head counts and widths, to split a fused q/k/v output. */
  qWidth: number;
  kWidth: number;
  vWidth: number;
  /** Local head columns of a whole q/k (when a cross-head norm keeps q/k whole). */
  qColumns?: [number, number];
  kColumns?: [number, number];
  cache?: KvCache;
}

export class DecoderEngine {
  private readonly refs: ModelRefs;
  private readonly layers: LayerRuntime[];
  private readonly rank: Rank;
  private readonly timeline = new StepTimeline();
  /** Rotary inverse frequencies and ALiBi slopes, uploaded once per model (shared by equal layers). */
  private readonly constants = new Map<string, DeviceTensor>();

  constructor(
    rank: Rank,
    private readonly graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: DecoderSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    this.rank = rank;
    this.refs = modelRefs(graph, plan);
    this.layers = this.refs.layers.map((refs, i) => this.layerRuntime(refs, i));
  }

  /** Fresh, empty KV caches for `batch` sequences; they grow as the sequences do. */
  reset(batch: number): void {
    for (const layer of this.layers) {
      if (layer.cache) this.rank.freeKvCache(layer.cache);
      layer.cache = this.rank.createKvCache(batch, layer.attention.kvHeads, layer.attention.headDim, layer.attention.valueDim, this.kvDtype);
    }
    this.timeline.reset(batch);
  }

  /** Bytes of the KV caches and timeline this rank holds now (for tests and reports). */
  get cachedSlots(): number {
    return this.timeline.length;
  }

  async forward(step: StepInput): Promise<StepResult | undefined> {
    this.rank.beginStep();
    try {
      return await this.forwardStep(step);
    } finally {
      await this.rank.endStep();
    }
  }

  /** Upload the step's inputs once: ids, positions, and the key mask and positions so far. */
  private deviceStep(step: StepInput): DeviceStep {
    const { rank } = this;
    if (step.ids.length !== step.batch * step.rows || step.positions.length !== step.batch * step.rows) {
      throw new TpError('invalid-argument', `a step of ${step.batch} × ${step.rows} rows needs as many ids and positions`);
    }
    this.timeline.append(step);
    const keys = this.timeline.length;
    const alibi = this.spec.positions === 'alibi';
    return {
      batch: step.batch,
      rows: step.rows,
      start: step.start,
      ids: rank.upload(hostTensor(step.ids)),
      positions: rank.upload(hostTensor(step.positions)),
      attention: {
        batch: step.batch,
        rows: step.rows,
        start: step.start,
        keyMask: rank.upload(hostTensor(this.timeline.mask(), [step.batch, keys])),
        ...(alibi ? { keyPositions: rank.upload(hostTensor(this.timeline.positions(), [step.batch, keys])) } : {}),
      },
    };
  }

  private async forwardStep(input: StepInput): Promise<StepResult | undefined> {
    const { rank, spec, refs } = this;
    const step = this.deviceStep(input);
    if (refs.embed === undefined) throw new TpError('unsupported-model', 'the model has no token embedding');
    let h = await embed(rank, this.tensor(refs.embed.weight.name), refs.embed.weight, step.ids, spec.embedScale ?? 1);
    if (refs.projectIn) h = await linear(rank, h, this.weight(refs.projectIn));
    if (spec.positions === 'learned' && refs.posEmbed) {
      rank.addInPlace(h, rank.embedding(this.tensor(refs.posEmbed.weight.name), step.positions, -(spec.positionOffset ?? 0)));
    } else if (spec.positions === 'sinusoidal') {
      const offset = spec.positionOffset ?? 0;
      const positions = offset === 0 ? step.positions : rank.upload(hostTensor(input.positions.map((p) => p + offset)));
      rank.addInPlace(h, rank.sinusoidal(positions, h.shape[1]!, 'fairseq'));
    }
    const embedNorm = refs.norms.get('embed_norm');
    if (embedNorm) h = this.norm(h, embedNorm);

    for (const layer of this.layers) h = await this.layer(layer, h, step);

    if (input.logits === 'none') return undefined;
    const finalNorm = refs.norms.get('final_norm');
    if (finalNorm && spec.normPlacement === 'pre') h = this.norm(h, finalNorm);
    if (input.logits === 'last' && step.rows > 1) {
      const last = Int32Array.from({ length: step.batch }, (_, b) => b * step.rows + step.rows - 1);
      h = rank.gatherRows(h, rank.upload(hostTensor(last)));
    }
    if (refs.projectOut) h = await linear(rank, h, this.weight(refs.projectOut));
    const logits = await this.lmHead(h);
    if (this.rank.rank !== 0) return undefined;
    const output = input.output ?? 'logits';
    if (output === 'logits') return { logits: (await rank.download(logits)) as Float32Array };
    if (output === 'argmax') return { ids: (await rank.download(rank.argmax(logits))) as Int32Array };
    const top = rank.topk(logits, Math.min(output.topk, logits.shape[1]!));
    return { topk: { values: (await rank.download(top.values)) as Float32Array, indices: (await rank.download(top.indices)) as Int32Array } };
  }

  private async layer(layer: LayerRuntime, h: DeviceTensor, step: DeviceStep): Promise<DeviceTensor> {
    const { rank, spec } = this;
    const norms = layer.refs.norms;
    const attnNorm = norms.get('attn_norm');
    const mlpNorm = norms.get('mlp_norm');
    if (spec.normPlacement === 'post') {
      // OpenAI GPT, OPT-350m: x = norm(x + attn(x)); x = norm(x + mlp(x))
      let x = rank.add(h, await this.attention(layer, h, step));
      if (attnNorm) x = this.norm(x, attnNorm);
      const y = rank.add(x, await this.mlp(layer, x));
      return mlpNorm ? this.norm(y, mlpNorm) : y;
    }
    if (spec.residual === 'parallel') {
      // x + attn(n1(x)) + mlp(n2(x) or n1(x)): the partial sums of both share one all-reduce
      const a = attnNorm ? this.norm(h, attnNorm) : h;
      const m = mlpNorm ? this.norm(h, mlpNorm) : a;
      const attn = await this.attentionPartial(layer, a, step);
      const mlp = await this.mlpPartial(layer, m);
      return rank.addInPlace(await this.finish(combineSubLayers(rank, attn, mlp)), h);
    }
    const x = rank.addInPlace(await this.attention(layer, attnNorm ? this.norm(h, attnNorm) : h, step), h);
    return rank.addInPlace(await this.mlp(layer, mlpNorm ? this.norm(x, mlpNorm) : x), x);
  }

  // ---- attention -------------------------------------------------------------------------------

  private async attention(layer: LayerRuntime, x: DeviceTensor, step: DeviceStep): Promise<DeviceTensor> {
    return this.finish(await this.attentionPartial(layer, x, step));
  }

  private async attentionPartial(layer: LayerRuntime, x: DeviceTensor, step: DeviceStep): Promise<SubLayerOutput> {
    const o = await this.attentionCore(layer, x, step);
    return this.projection(o, this.weight(layer.refs.out!));
  }

  /** A projection as a sub-layer output: partial when row-parallel, complete otherwise. */
  private async projection(x: DeviceTensor, w: LinearWeight): Promise<SubLayerOutput> {
    if (w.plan.split !== 'row') return { partial: undefined, complete: await linear(this.rank, x, w), biases: [] };
    const part = linearPartial(this.rank, x, w);
    return { partial: part.partial, complete: undefined, biases: [part] };
  }

  private finish(out: SubLayerOutput): Promise<DeviceTensor> {
    return finishSubLayer(this.rank, out);
  }

  private async attentionCore(layer: LayerRuntime, x: DeviceTensor, step: DeviceStep): Promise<DeviceTensor> {
    const { rank } = this;
    const r = layer.refs;
    let q: DeviceTensor;
    let k: DeviceTensor;
    let v: DeviceTensor;
    if (r.qkv) {
      const qkv = await linear(rank, x, this.weight(r.qkv));
      q = rank.sliceColumns(qkv, 0, layer.qWidth);
      k = rank.sliceColumns(qkv, layer.qWidth, layer.qWidth + layer.kWidth);
      v = rank.sliceColumns(qkv, layer.qWidth + layer.kWidth, layer.qWidth + layer.kWidth + layer.vWidth);
    } else {
      q = await linear(rank, x, this.weight(r.q!));
      k = r.k ? await linear(rank, x, this.weight(r.k)) : q; // reformer LSH shares q and k
      v = await linear(rank, x, this.weight(r.v!));
    }
    if (r.qFullNorm) q = this.norm(q, r.qFullNorm);
    if (r.kFullNorm) k = this.norm(k, r.kFullNorm);
    if (layer.qColumns) q = rank.sliceColumns(q, ...layer.qColumns);
    if (layer.kColumns) {
      k = rank.sliceColumns(k, ...layer.kColumns);
      v = rank.sliceColumns(v, layer.kColumns[0] / layer.attention.headDim * layer.attention.valueDim, layer.kColumns[1] / layer.attention.headDim * layer.attention.valueDim);
    }
    const qNorm = r.norms.get('q_norm');
    const kNorm = r.norms.get('k_norm');
    if (qNorm) q = rank.groupNorm(q, layer.attention.headDim, this.normSpec(), this.tensor(qNorm.weight.name), qNorm.bias ? this.tensor(qNorm.bias.name) : undefined);
    if (kNorm) k = rank.groupNorm(k, layer.attention.headDim, this.normSpec(), this.tensor(kNorm.weight.name), kNorm.bias ? this.tensor(kNorm.bias.name) : undefined);
    if (this.spec.clipQkv !== undefined) for (const t of [q, k, v]) rank.clamp(t, this.spec.clipQkv);
    if (layer.rotary) {
      const rotary = this.dynamicRotary(layer.rotary, step.start + step.rows);
      rank.rotary(q, step.positions, rotary);
      rank.rotary(k, step.positions, rotary);
    }
    return rank.attention(q, k, v, layer.cache!, step.attention, layer.attention);
  }

  // ---- MLP and experts -------------------------------------------------------------------------

  private async mlp(layer: LayerRuntime, x: DeviceTensor): Promise<DeviceTensor> {
    return this.finish(await this.mlpPartial(layer, x));
  }

  /** The MLP (dense, or experts plus shared expert) as a sub-layer output not yet reduced. */
  private async mlpPartial(layer: LayerRuntime, x: DeviceTensor): Promise<SubLayerOutput> {
    const r = layer.refs;
    if (r.router !== undefined && r.experts.size > 0 && this.spec.moe !== undefined) return this.experts(layer, x);
    return this.projection(await this.mlpHidden(r.mlp, x), this.weight(r.mlp.down!));
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
  private async experts(layer: LayerRuntime, x: DeviceTensor): Promise<SubLayerOutput> {
    const { rank } = this;
    const r = layer.refs;
    const moe = this.spec.moe!;
    const routing = rank.route(await linear(rank, x, this.weight(r.router!)), moe.topK, moe.normalize);
    const out: SubLayerOutput = { partial: undefined, complete: undefined, biases: [] };
    const sum = (key: 'partial' | 'complete') => (out[key] ??= rank.scale(x, 0));
    for (const [e, m] of [...r.experts].sort((a, b) => a[0] - b[0])) {
      const picked = rank.expertRows(x, routing, e);
      if (picked.x.shape[0] === 0) continue; // no row chose this expert (a backend that can tell)
      const down = this.weight(m.down!);
      const y = linearPartial(rank, await this.mlpHidden(m, picked.x), down);
      rank.scatterAddRows(sum(down.plan.split === 'row' ? 'partial' : 'complete'), y.partial, picked.rows, picked.weights);
    }
    if (r.shared) {
      const down = this.weight(r.shared.down!);
      const part = linearPartial(rank, await this.mlpHidden(r.shared, x), down);
      const rows = x.shape[0]!;
      const gates = r.sharedGate ? rank.sigmoid(await linear(rank, x, this.weight(r.sharedGate))) : rank.upload(hostTensor(new Float32Array(rows).fill(1)));
      const all = rank.upload(hostTensor(Int32Array.from({ length: rows }, (_, i) => i)));
      rank.scatterAddRows(sum(down.plan.split === 'row' ? 'partial' : 'complete'), part.partial, all, gates);
      if (down.plan.split === 'row') out.biases.push(part);
    }
    // Without a partial sum nothing is reduced: a complete sum is the output as it is.
    if (out.partial === undefined && out.complete === undefined) out.complete = rank.scale(x, 0);
    return out;
  }

  // ---- output ----------------------------------------------------------------------------------

  private async lmHead(h: DeviceTensor): Promise<DeviceTensor> {
    const { rank, plan } = this;
    const head = plan.lmHead;
    if (head === null) throw new TpError('unsupported-model', 'the model has no LM head');
    const lmHead = this.refs.lmHead;
    const bias = lmHead?.bias ? this.tensor(lmHead.bias.name) : undefined;
    if (head.split === 'row') {
      const [start, end] = head.ranks[rank.rank]!.ranges[0]!;
      const weight = head.tied ? this.shard.tiedLmHead! : this.tensor(head.weight);
      const logits = rank.linear(rank.sliceColumns(h, start, end), weight);
      return this.finish({ partial: logits, complete: undefined, biases: [{ partial: logits, bias }] });
    }
    const weight = this.tensor(head.weight);
    const w: LinearWeight = { plan: plan.tensors.find((t) => t.name === head.weight)!, weight, bias };
    return linear(rank, h, w);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private tensor(name: string): DeviceTensor {
    const t = this.shard.tensors.get(name);
    if (t === undefined) throw new TpError('internal', `weight ${name} was not loaded`);
    return t;
  }

  private weight(ref: WeightRef): LinearWeight {
    return { plan: ref.weight, weight: this.tensor(ref.weight.name), bias: ref.bias ? this.tensor(ref.bias.name) : undefined };
  }

  private normSpec() {
    return this.spec.norm;
  }

  private norm(x: DeviceTensor, ref: WeightRef): DeviceTensor {
    return this.rank.norm(x, this.spec.norm, this.tensor(ref.weight.name), ref.bias ? this.tensor(ref.bias.name) : undefined);
  }

  /** A per-model constant on the device, uploaded the first time it is asked for. */
  private constant(key: string, values: Float32Array): DeviceTensor {
    let t = this.constants.get(key);
    if (t === undefined) this.constants.set(key, (t = this.rank.upload(hostTensor(values))));
    return t;
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

  private layerRuntime(refs: LayerRefs, index: number): LayerRuntime {
    const { plan, spec, graph } = this;
    const projection = refs.q ?? refs.qkv;
    const group = projection ? (graph.weights.find((w) => w.name === projection.weight.name)!.attention ?? 'self') : 'self';
    const a = plan.attention.find((x) => x.group === group);
    const g = plan.geometry.attention[group]!;
    const share = a?.ranks[this.rank.rank];
    const heads = share ? share.q[1] - share.q[0] : g.heads;
    const kvHeads = share ? share.kv[1] - share.kv[0] : g.kvHeads;
    const wholeQk = a?.sliceAfterNorm === true;
    // Widths per head, from the local tensors (they differ from the config for e.g. Perceiver).
    let headDim: number;
    let valueDim: number;
    // Output features of a local weight (GPT-2's Conv1D stores [in, out]).
    const outFeatures = (ref: WeightRef) => {
      const shape = ref.weight.ranks[this.rank.rank]!.shape;
      return graph.weights.find((w) => w.name === ref.weight.name)!.transposed ? shape[1]! : shape[0]!;
    };
    if (refs.qkv) {
      const rows = outFeatures(refs.qkv);
      const localQ = wholeQk ? g.heads : heads;
      const localKv = wholeQk ? g.kvHeads : kvHeads;
      headDim = rows / (localQ + 2 * localKv);
      valueDim = headDim;
    } else {
      const qRows = outFeatures(refs.q!);
      headDim = qRows / (wholeQk ? g.heads : heads);
      const vRows = outFeatures(refs.v!);
      valueDim = vRows / (wholeQk ? g.kvHeads : kvHeads);
    }
    const fullQ = (wholeQk ? g.heads : heads) * headDim;
    const fullKv = (wholeQk ? g.kvHeads : kvHeads) * headDim;
    const scale = spec.attentionScale === 'none' ? 1 : typeof spec.attentionScale === 'number' ? spec.attentionScale : 1 / Math.sqrt(headDim);
    const window = typeof spec.window === 'function' ? spec.window(index) : spec.window;
    const attention: AttentionSpec = {
      mask: 'causal',
      heads,
      kvHeads,
      headDim,
      valueDim,
      scale: spec.scaleByLayer ? scale / (index + 1) : scale,
      ...(window !== undefined ? { window } : {}),
    };
    if (spec.positions === 'alibi' && spec.alibi) {
      const slopes = alibiSlopes(g.heads, spec.alibi.kind, spec.alibi.maxBias);
      const local = share ? slopes.slice(share.q[0], share.q[1]) : slopes;
      attention.alibi = this.constant(`alibi:${local.join(',')}`, local);
      attention.alibiScaled = spec.alibi.scaled === true;
    }
    const rotary: RotarySpec | undefined =
      spec.positions === 'rope' && spec.rope
        ? { headDim, rotaryDim: rotaryDims(spec.rope, headDim), style: spec.rope.style, invFreq: this.constant(`rope:${headDim}`, ropeInvFreq(spec.rope, headDim)) }
        : undefined;
    return {
      refs,
      attention,
      rotary,
      qWidth: fullQ,
      kWidth: fullKv,
      vWidth: (wholeQk ? g.kvHeads : kvHeads) * valueDim,
      ...(wholeQk && share ? { qColumns: [share.q[0] * headDim, share.q[1] * headDim] as [number, number], kColumns: [share.kv[0] * headDim, share.kv[1] * headDim] as [number, number] } : {}),
    };
  }
}
