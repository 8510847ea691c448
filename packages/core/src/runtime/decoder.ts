/**
 * The decoder forward, written once for every decoder family: the family's DecoderSpec switches norm
 * kind and placement, parallel or sequential residual, rotary / ALiBi / learned / sinusoidal
 * positions, gated or plain MLP and mixture of experts. It knows nothing of tensor parallelism beyond
 * local head counts: `linear` (linear.ts) performs every collective.
 */
import type { AttentionSpec, DeviceTensor, KvCache, Rank, RotarySpec } from '../backend/index.js';
import type { DecoderSpec, ModelGraph } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { embed, linear, linearPartial, reducePartials, type LinearWeight, type PartialSum } from './linear.js';
import type { LoadedShard } from './load.js';
import { alibiSlopes, ropeInvFreq, rotaryDims, sinusoidalRows } from './positions.js';
import { modelRefs, type LayerRefs, type MlpRefs, type ModelRefs, type WeightRef } from './structure.js';

export interface StepInput {
  /** Token ids, [batch × rows]. */
  ids: Int32Array;
  /** Position ids, [batch × rows] (rotary, learned and sinusoidal positions). */
  positions: Int32Array;
  batch: number;
  rows: number;
  /** Timeline slot of the first row (the KV cache index). */
  start: number;
  /** [batch × capacity]: 1 where the slot holds a real token. */
  keyMask: Uint8Array;
  /** [batch × capacity]: position of each slot (ALiBi). */
  keyPositions: Int32Array;
  /** Which rows need logits. */
  logits: 'last' | 'all' | 'none';
}

/** A sub-layer's output: reduced already (`fused: false`), or row-parallel partial sums still to reduce. */
interface SubLayerOutput {
  fused: boolean;
  value: DeviceTensor;
  parts: PartialSum[];
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

  constructor(
    rank: Rank,
    private readonly graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: DecoderSpec,
  ) {
    this.rank = rank;
    this.refs = modelRefs(graph, plan);
    this.layers = this.refs.layers.map((refs, i) => this.layerRuntime(refs, i));
  }

  /** Fresh KV caches for `batch` sequences of up to `capacity` positions. */
  reset(batch: number, capacity: number): void {
    for (const layer of this.layers) {
      if (layer.cache) this.rank.freeKvCache(layer.cache);
      layer.cache = this.rank.createKvCache(batch, capacity, layer.attention.kvHeads, layer.attention.headDim, layer.attention.valueDim);
    }
  }

  async forward(step: StepInput): Promise<Float32Array | undefined> {
    this.rank.beginStep();
    try {
      return await this.forwardStep(step);
    } finally {
      this.rank.endStep();
    }
  }

  private async forwardStep(step: StepInput): Promise<Float32Array | undefined> {
    const { rank, spec, refs } = this;
    const n = step.batch * step.rows;
    if (refs.embed === undefined) throw new Error('the model has no token embedding');
    let h = await embed(rank, this.tensor(refs.embed.weight.name), refs.embed.weight, step.ids, spec.embedScale ?? 1);
    if (refs.projectIn) h = await linear(rank, h, this.weight(refs.projectIn));
    if (spec.positions === 'learned' && refs.posEmbed) {
      const ids = step.positions.map((p) => p + (spec.positionOffset ?? 0));
      rank.addInPlace(h, rank.embedding(this.tensor(refs.posEmbed.weight.name), ids));
    } else if (spec.positions === 'sinusoidal') {
      const ids = step.positions.map((p) => p + (spec.positionOffset ?? 0));
      rank.addInPlace(h, rank.upload(sinusoidalRows(ids, h.shape[1]!), [n, h.shape[1]!]));
    }
    const embedNorm = refs.norms.get('embed_norm');
    if (embedNorm) h = this.norm(h, embedNorm);

    for (const layer of this.layers) h = await this.layer(layer, h, step);

    if (step.logits === 'none') return undefined;
    const finalNorm = refs.norms.get('final_norm');
    if (finalNorm && spec.normPlacement === 'pre') h = this.norm(h, finalNorm);
    if (step.logits === 'last' && step.rows > 1) {
      h = rank.gatherRows(h, Int32Array.from({ length: step.batch }, (_, b) => b * step.rows + step.rows - 1));
    }
    if (refs.projectOut) h = await linear(rank, h, this.weight(refs.projectOut));
    const logits = await this.lmHead(h);
    return this.rank.rank === 0 ? rank.download(logits) : undefined;
  }

  private async layer(layer: LayerRuntime, h: DeviceTensor, step: StepInput): Promise<DeviceTensor> {
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
      // x + attn(n1(x)) + mlp(n2(x) or n1(x)), with one all-reduce for both when both are row-parallel
      const a = attnNorm ? this.norm(h, attnNorm) : h;
      const m = mlpNorm ? this.norm(h, mlpNorm) : a;
      const attn = await this.attentionPartial(layer, a, step);
      const mlp = await this.mlpPartial(layer, m);
      if (attn.fused && mlp.fused) {
        const sum = rank.add(attn.value, mlp.value);
        return rank.addInPlace(await reducePartials(rank, sum, [...attn.parts, ...mlp.parts], true), h);
      }
      const attnOut = attn.fused ? await reducePartials(rank, attn.value, attn.parts, true) : attn.value;
      const mlpOut = mlp.fused ? await reducePartials(rank, mlp.value, mlp.parts, true) : mlp.value;
      return rank.addInPlace(rank.addInPlace(attnOut, mlpOut), h);
    }
    const x = rank.addInPlace(await this.attention(layer, attnNorm ? this.norm(h, attnNorm) : h, step), h);
    return rank.addInPlace(await this.mlp(layer, mlpNorm ? this.norm(x, mlpNorm) : x), x);
  }

  // ---- attention -------------------------------------------------------------------------------

  private async attention(layer: LayerRuntime, x: DeviceTensor, step: StepInput): Promise<DeviceTensor> {
    const o = await this.attentionCore(layer, x, step);
    return linear(this.rank, o, this.weight(layer.refs.out!));
  }

  private async attentionPartial(layer: LayerRuntime, x: DeviceTensor, step: StepInput): Promise<SubLayerOutput> {
    const o = await this.attentionCore(layer, x, step);
    const out = this.weight(layer.refs.out!);
    if (out.plan.split !== 'row') return { fused: false, value: await linear(this.rank, o, out), parts: [] };
    const part = linearPartial(this.rank, o, out);
    return { fused: true, value: part.partial, parts: [part] };
  }

  private async attentionCore(layer: LayerRuntime, x: DeviceTensor, step: StepInput): Promise<DeviceTensor> {
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
      const rotary = this.spec.rope?.scaling?.type === 'dynamic' ? { ...layer.rotary, invFreq: ropeInvFreq(this.spec.rope, layer.attention.headDim, step.start + step.rows) } : layer.rotary;
      rank.rotary(q, step.positions, rotary);
      rank.rotary(k, step.positions, rotary);
    }
    return rank.attention(q, k, v, layer.cache!, step, layer.attention);
  }

  // ---- MLP and experts -------------------------------------------------------------------------

  private async mlp(layer: LayerRuntime, x: DeviceTensor): Promise<DeviceTensor> {
    const p = await this.mlpPartial(layer, x);
    return p.fused ? reducePartials(this.rank, p.value, p.parts, true) : p.value;
  }

  /** The MLP (dense, or experts plus shared expert) as row-parallel partial sums not yet reduced. */
  private async mlpPartial(layer: LayerRuntime, x: DeviceTensor): Promise<SubLayerOutput> {
    const { rank } = this;
    const r = layer.refs;
    if (r.router !== undefined && r.experts.size > 0 && this.spec.moe !== undefined) return this.experts(layer, x);
    const down = this.weight(r.mlp.down!);
    const hidden = await this.mlpHidden(r.mlp, x);
    if (down.plan.split !== 'row') return { fused: false, value: await linear(rank, hidden, down), parts: [] };
    const part = linearPartial(rank, hidden, down);
    return { fused: true, value: part.partial, parts: [part] };
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
   * Mixture of experts. The router is replicated, so every rank picks the same experts; each expert's
   * partial output is weighted and summed, so one all-reduce (by the caller) covers all experts and the
   * shared expert.
   */
  private async experts(layer: LayerRuntime, x: DeviceTensor): Promise<SubLayerOutput> {
    const { rank } = this;
    const r = layer.refs;
    const moe = this.spec.moe!;
    const rows = x.shape[0]!;
    const logits = await rank.download(await linear(rank, x, this.weight(r.router!)));
    const experts = logits.length / rows;
    const picks = new Map<number, { rows: number[]; weights: number[] }>();
    for (let t = 0; t < rows; t++) {
      const row = logits.subarray(t * experts, (t + 1) * experts);
      const max = Math.max(...row);
      const probs = Array.from(row, (l) => Math.exp(l - max));
      const total = probs.reduce((a, b) => a + b, 0);
      const top = probs.map((p, e) => ({ e, p: p / total })).sort((a, b) => b.p - a.p || a.e - b.e).slice(0, moe.topK);
      const norm = moe.normalize ? top.reduce((a, b) => a + b.p, 0) : 1;
      for (const { e, p } of top) {
        const entry = picks.get(e) ?? { rows: [], weights: [] };
        entry.rows.push(t);
        entry.weights.push(p / norm);
        picks.set(e, entry);
      }
    }
    const acc = rank.scale(x, 0);
    const biases: PartialSum[] = [];
    for (const [e, pick] of [...picks].sort((a, b) => a[0] - b[0])) {
      const m = r.experts.get(e)!;
      const idx = Int32Array.from(pick.rows);
      const xe = rank.gatherRows(x, idx);
      const part = linearPartial(rank, await this.mlpHidden(m, xe), this.weight(m.down!));
      rank.scatterAddRows(acc, part.partial, idx, Float32Array.from(pick.weights));
    }
    if (r.shared) {
      const part = linearPartial(rank, await this.mlpHidden(r.shared, x), this.weight(r.shared.down!));
      let gates = new Float32Array(rows).fill(1);
      if (r.sharedGate) {
        const g = await rank.download(await linear(rank, x, this.weight(r.sharedGate)));
        gates = g.map((v) => 1 / (1 + Math.exp(-v)));
      }
      rank.scatterAddRows(acc, part.partial, Int32Array.from({ length: rows }, (_, i) => i), gates);
      biases.push(part);
    }
    return { fused: true, value: acc, parts: biases };
  }

  // ---- output ----------------------------------------------------------------------------------

  private async lmHead(h: DeviceTensor): Promise<DeviceTensor> {
    const { rank, plan } = this;
    const head = plan.lmHead;
    if (head === null) throw new Error('the model has no LM head');
    const lmHead = this.refs.lmHead;
    const bias = lmHead?.bias ? this.tensor(lmHead.bias.name) : undefined;
    if (head.split === 'row') {
      const [start, end] = head.ranks[rank.rank]!.ranges[0]!;
      const weight = head.tied ? this.shard.tiedLmHead! : this.tensor(head.weight);
      const logits = rank.linear(rank.sliceColumns(h, start, end), weight);
      return reducePartials(rank, logits, [{ partial: logits, bias }], true);
    }
    const weight = this.tensor(head.weight);
    const w: LinearWeight = { plan: plan.tensors.find((t) => t.name === head.weight)!, weight, bias };
    return linear(rank, h, w);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private tensor(name: string): DeviceTensor {
    const t = this.shard.tensors.get(name);
    if (t === undefined) throw new Error(`weight ${name} was not loaded`);
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
      heads,
      kvHeads,
      headDim,
      valueDim,
      scale: spec.scaleByLayer ? scale / (index + 1) : scale,
      ...(window !== undefined ? { window } : {}),
    };
    if (spec.positions === 'alibi' && spec.alibi) {
      const slopes = alibiSlopes(g.heads, spec.alibi.kind, spec.alibi.maxBias);
      attention.alibi = share ? slopes.slice(share.q[0], share.q[1]) : slopes;
      attention.alibiScaled = spec.alibi.scaled === true;
    }
    const rotary: RotarySpec | undefined =
      spec.positions === 'rope' && spec.rope
        ? { headDim, rotaryDim: rotaryDims(spec.rope, headDim), style: spec.rope.style, invFreq: ropeInvFreq(spec.rope, headDim) }
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
