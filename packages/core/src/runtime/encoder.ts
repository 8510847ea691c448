/**
 * The encoder stack (BERT family), on the same sub-layers as the decoder: embeddings (tokens,
 * learned positions with their offset, token types, ESM's token dropout, then the embedding norm
 * and an optional projection to the hidden width), layers of bidirectional self-attention over the
 * real tokens (padding masked; the family's relative positions or scoring from encoder-attention.ts),
 * and then the last hidden state and/or the masked-LM head. Every forward is a whole batch: nothing
 * is kept between steps, and one scratch KV cache serves every layer.
 */
import { hostTensor, type DeviceTensor, type Rank, type StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { EncoderSpec, ModelGraph } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { lmHead, rankZeroOutput } from './decoder.js';
import { EncoderAttention } from './encoder-attention.js';
import { inLayerStep, type Engine, type StepInput, type StepResult } from './engine.js';
import { runLayer } from './layer.js';
import { embed, linear } from './linear.js';
import type { LoadedShard } from './load.js';
import { modelRefs, type LayerRefs, type StackRefs, type TopRefs } from './structure.js';
import { SubLayers, type AttentionRuntime } from './sublayers.js';

interface LayerRuntime {
  refs: LayerRefs;
  self: AttentionRuntime;
}

/** The segment that numbers the layers inside one of ALBERT's shared layer groups. */
const SHARED_INNER = 'albert_layers';

export class EncoderEngine implements Engine {
  private readonly ops: SubLayers;
  private readonly stack: StackRefs;
  private readonly top: TopRefs;
  private stored: LayerRuntime[];
  /** Which stored layer each layer runs (ALBERT shares stored layers; others run each once). */
  private readonly schedule: number[];
  /** The family's additions to attention (relative positions, scoring), set on the layers by the first forward. */
  private readonly extras: EncoderAttention;
  private prepared = false;

  constructor(
    private readonly rank: Rank,
    graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: EncoderSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    this.ops = new SubLayers(rank, graph, plan, shard, spec);
    const refs = modelRefs(graph, plan, spec.sharedLayers ? { innerSegment: SHARED_INNER } : {});
    this.stack = refs.stacks[0]!;
    this.top = refs.top;
    this.stored = this.stack.layers.map((layer, i) => {
      const self = layer.attention.get('self') ?? layer.attention.values().next().value;
      if (self === undefined) throw new TpError('unsupported-model', `layer ${i} of ${this.stack.blockList} has no attention weights`);
      return { refs: layer, self: this.ops.attentionRuntime(self, i, { mask: 'bidirectional', norms: layer.norms }) };
    });
    this.schedule = layerSchedule(spec, this.stored.length);
    this.extras = new EncoderAttention(rank, this.ops, spec, this.stack.own);
  }

  reset(): void {
    // Nothing lives between forwards: each is a whole batch.
  }

  get cachedSlots(): number {
    return 0;
  }

  async forward(input: StepInput): Promise<StepResult | undefined> {
    const { rank } = this;
    if (!this.prepared) {
      // Outside the step: the tables it uploads live as long as the model.
      const layers = await this.extras.prepare(this.stored);
      this.stored = this.stored.map((l, i) => ({ ...l, self: layers[i]! }));
      this.prepared = true;
    }
    rank.beginStep();
    const a = this.stored[0]!.self.spec;
    const cache = rank.createKvCache(input.batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
    try {
      return await this.run(input, cache);
    } finally {
      rank.freeKvCache(cache);
      await rank.endStep();
    }
  }

  private async run(input: StepInput, cache: ReturnType<Rank['createKvCache']>): Promise<StepResult | undefined> {
    const { rank, ops, spec, top } = this;
    const { batch, rows } = input;
    if (input.ids.length !== batch * rows || input.positions.length !== batch * rows || input.keyMask.length !== batch * rows) {
      throw new TpError('invalid-argument', `a step of ${batch} × ${rows} rows needs as many ids, positions and mask entries`);
    }
    const positions = rank.upload(hostTensor(input.positions));
    let h = await this.embeddings(input, positions);
    // YOSO's mask hides nothing in transformers (EncoderSpec.paddingVisible): every slot is a key.
    const keyMask = spec.paddingVisible ? new Int32Array(batch * rows).fill(1) : input.keyMask;
    const relativeIndex = this.extras.stepIndex(rows);
    const attention = {
      positions,
      length: rows,
      step: { batch, rows, start: 0, keyMask: rank.upload(hostTensor(keyMask, [batch, rows])), ...(relativeIndex ? { relativeIndex } : {}) },
    };
    for (const index of this.schedule) {
      const layer = this.stored[index]!;
      const x = h;
      h = await inLayerStep(rank, () => runLayer(ops, spec, { norms: layer.refs.norms, attention: (y) => ops.selfAttention(layer.self, y, attention, cache), mlp: (y) => ops.mlp(layer.refs, y) }, x));
    }
    const finalNorm = this.stack.own.slots.get('final_norm') ?? top.slots.get('final_norm');
    if (finalNorm) h = ops.norm(h, finalNorm);

    const result: StepResult = {};
    if (input.hidden && rank.rank === 0) result.hidden = (await rank.download(h)) as Float32Array;
    if (input.pooled) {
      const pooled = await this.pooler(h, batch, rows);
      if (pooled !== undefined) result.pooled = pooled;
    }
    if (input.logits !== 'none') {
      if (this.plan.lmHead === null) {
        throw new TpError('unsupported-model', `${this.ops.graph.title} has no masked-LM head in this checkpoint; ask for the hidden states instead`);
      }
      const logits = await lmHead(ops, this.plan, this.shard, top, await this.mlmTransform(h));
      Object.assign(result, await rankZeroOutput(rank, logits, { output: 'logits' }));
    }
    return rank.rank === 0 ? result : undefined;
  }

  /** Word embeddings (+ token dropout) + positions + token types → norm → projection to the hidden width. */
  private async embeddings(input: StepInput, positions: DeviceTensor): Promise<DeviceTensor> {
    const { rank, ops, spec, top } = this;
    if (top.embed === undefined) throw new TpError('unsupported-model', 'the model has no token embedding');
    let h = await embed(rank, ops.tensor(top.embed.weight.name), top.embed.weight, rank.upload(hostTensor(input.ids)), spec.embedScale ?? 1);
    if (spec.tokenDropout) h = this.tokenDropout(h, input);
    if (spec.positions === 'learned' && top.posEmbed) {
      rank.addInPlace(h, rank.embedding(ops.tensor(top.posEmbed.weight.name), positions, -(spec.positionOffset ?? 0)));
    }
    if (top.typeEmbed) {
      const types = input.tokenTypes ?? new Int32Array(input.ids.length);
      rank.addInPlace(h, rank.embedding(ops.tensor(top.typeEmbed.weight.name), rank.upload(hostTensor(types))));
    }
    const norm = top.slots.get('embed_norm');
    if (norm) h = ops.norm(h, norm);
    const project = top.slots.get('project_in') ?? this.stack.own.slots.get('project_in');
    if (project) h = await linear(rank, h, ops.weight(project));
    return h;
  }

  /**
   * ESM: rows of mask tokens become zero and each sequence's rows are scaled by
   * (1 − trainRatio) / (1 − its share of mask tokens among its real tokens).
   */
  private tokenDropout(h: DeviceTensor, input: StepInput): DeviceTensor {
    const { rank } = this;
    const { maskTokenId, trainRatio } = this.spec.tokenDropout!;
    const factors = new Float32Array(input.batch * input.rows);
    for (let b = 0; b < input.batch; b++) {
      let real = 0;
      let masked = 0;
      for (let t = 0; t < input.rows; t++) {
        const i = b * input.rows + t;
        if (input.keyMask[i] === 0) continue;
        real++;
        if (input.ids[i] === maskTokenId) masked++;
      }
      const scale = (1 - trainRatio) / (1 - (real === 0 ? 0 : masked / real));
      for (let t = 0; t < input.rows; t++) {
        const i = b * input.rows + t;
        factors[i] = input.ids[i] === maskTokenId ? 0 : scale;
      }
    }
    const all = Int32Array.from({ length: factors.length }, (_, i) => i);
    return rank.scatterAddRows(rank.scale(h, 0), h, rank.upload(hostTensor(all)), rank.upload(hostTensor(factors)));
  }

  /**
   * BERT's pooler: tanh(dense(h of each sequence's first token)). The dense layer is replicated, so
   * rank 0 computes it alone; tanh is applied on the host (the backend has no tanh kernel, and it is
   * one row per sequence).
   */
  private async pooler(h: DeviceTensor, batch: number, rows: number): Promise<Float32Array | undefined> {
    const { rank, ops, top } = this;
    const dense = top.slots.get('pooler');
    if (dense === undefined) throw new TpError('unsupported-model', `${ops.graph.title}: this checkpoint has no pooler`);
    if (dense.weight.split !== 'replicate') throw new TpError('unsupported-model', `the pooler ${dense.weight.name} is split (${dense.weight.split}) by the policy; it runs replicated only`);
    if (rank.rank !== 0) return undefined;
    const first = rank.gatherRows(h, rank.upload(hostTensor(Int32Array.from({ length: batch }, (_, b) => b * rows))));
    const y = (await rank.download(await linear(rank, first, ops.weight(dense)))) as Float32Array;
    return y.map(Math.tanh);
  }

  /** The MLM head's transform (dense → activation → norm); the decoder is the LM head. */
  private async mlmTransform(h: DeviceTensor): Promise<DeviceTensor> {
    const { rank, ops, spec, top } = this;
    const dense = top.slots.get('mlm_dense');
    if (dense === undefined) return h;
    let x = rank.activation(await linear(rank, h, ops.weight(dense)), spec.mlm?.activation ?? 'gelu');
    const norm = top.slots.get('mlm_norm');
    if (norm) x = ops.norm(x, norm);
    return x;
  }
}

/**
 * The stored layer each layer runs. With shared layers (transformers' AlbertTransformer), layer l
 * runs group floor(l / (layers / groups)), whose `inner` stored layers run in order.
 */
export function layerSchedule(spec: EncoderSpec, stored: number): number[] {
  const shared = spec.sharedLayers;
  if (shared === undefined) return Array.from({ length: stored }, (_, i) => i);
  if (shared.groups * shared.inner !== stored) {
    throw new TpError('unsupported-model', `the config says ${shared.groups} layer groups of ${shared.inner}, but the checkpoint stores ${stored} shared layers`);
  }
  const out: number[] = [];
  for (let l = 0; l < shared.layers; l++) {
    const group = Math.floor(l / (shared.layers / shared.groups));
    for (let j = 0; j < shared.inner; j++) out.push(group * shared.inner + j);
  }
  return out;
}
