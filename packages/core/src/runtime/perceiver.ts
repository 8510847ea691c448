/**
 * Perceiver IO's masked-LM (transformers' PerceiverForMaskedLM), on the shared sub-layers:
 *
 * 1. the text preprocessor (PerceiverTextPreprocessor): token embeddings plus the learned position of
 *    each input row (embedTokens);
 * 2. the encoder's cross-attention (a PerceiverLayer): the learned latent array, normed (layernorm1),
 *    queries the normed inputs (layernorm2) — their keys and values written once into a cache by
 *    fillKvCache, padding masked —, the latents are added back (use_query_residual), then the MLP on
 *    the normed result (layernorm) with its own residual;
 * 3. num_blocks passes over the stored self-attention PerceiverLayers (pre-norm, bidirectional over
 *    the latents, nothing masked): the last hidden state, [latents × d_latents] per sequence;
 * 4. the decoder (PerceiverBasicDecoder): learned queries, one per output position, cross-attend to
 *    the normed latents with no query residual, then the MLP; PerceiverEmbeddingDecoder multiplies by
 *    the input embeddings transposed and adds its bias — the tied LM head.
 *
 * Every attention — the encoder's and the decoder's, whose rows are d_model wide and whose 8 heads
 * the class fixes — is split by heads as the plan says (q/k/v column-parallel, the output projection
 * row-parallel through linear.ts), and every MLP column then row; the latents, the decoder queries
 * and the norms are replicated. The tied LM head after the decoder is split by the embedding's width
 * and all-reduced. Nothing lives between forwards: each is a whole right-padded batch.
 */
import { hostTensor, type DeviceTensor, type Rank, type StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import { perceiverSlots, type EncoderSpec, type ModelGraph, type PerceiverSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { lmHead, rankZeroOutput } from './decoder.js';
import { embedTokens } from './embeddings.js';
import { inLayerStep, withinStep, type Engine, type StepInput, type StepResult } from './engine.js';
import { runLayer } from './layer.js';
import type { LoadedShard } from './load.js';
import { modelRefs, type AttentionRefs, type LayerRefs, type TopRefs, type WeightRef } from './structure.js';
import { SubLayers, type AttentionRuntime } from './sublayers.js';

/** One cross-attention PerceiverLayer: its attention on this rank, the norms of both sides, and its MLP. */
interface CrossLayer {
  attention: AttentionRuntime;
  queryNorm: WeightRef;
  sourceNorm: WeightRef;
  /** The MLP and its input norm (`mlp_norm`), shaped as a layer for SubLayers.mlp. */
  mlp: LayerRefs;
}

interface SelfLayer {
  refs: LayerRefs;
  self: AttentionRuntime;
}

/** What a cross-attention reads: `rows` source rows per sequence and which of them are real. */
interface Source {
  x: DeviceTensor;
  batch: number;
  rows: number;
  /** i32 [batch, rows]: 1 for a real row (0: padding, never attended to). */
  keyMask: DeviceTensor;
}

export class PerceiverEngine implements Engine {
  private readonly ops: SubLayers;
  private readonly top: TopRefs;
  private readonly perceiver: PerceiverSpec;
  private readonly latents: WeightRef;
  private readonly encoderCross: CrossLayer;
  private readonly selfLayers: SelfLayer[];
  /** Absent when the checkpoint has no masked-LM decoder (only the latents can be asked for then). */
  private readonly decoder: { queries: WeightRef; cross: CrossLayer } | undefined;

  constructor(
    private readonly rank: Rank,
    graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: EncoderSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    if (spec.perceiver === undefined) throw new TpError('internal', `${graph.title}: the Perceiver engine needs the spec's perceiver part`);
    this.perceiver = spec.perceiver;
    this.ops = new SubLayers(rank, graph, plan, shard, spec);
    const refs = modelRefs(graph, plan);
    this.top = refs.top;
    if (refs.stacks.length !== 1) throw new TpError('unsupported-model', `${graph.title}: expected one list of self-attention layers, found ${refs.stacks.map((s) => s.blockList).join(', ')}`);
    this.selfLayers = refs.stacks[0]!.layers.map((layer, i) => {
      const self = layer.attention.get('self');
      if (self === undefined) throw new TpError('unsupported-model', `self-attention layer ${i} of ${refs.stacks[0]!.blockList} has no attention weights`);
      return { refs: layer, self: this.ops.attentionRuntime(self, i, { mask: 'bidirectional', positional: false }) };
    });
    this.latents = this.slot(perceiverSlots.latents, 'the latent array (perceiver.embeddings.latents)');
    this.encoderCross = this.crossLayer('cross', this.perceiver.cross.group);
    const queries = this.top.slots.get(perceiverSlots.decoderQueries);
    this.decoder = queries === undefined ? undefined : { queries, cross: this.crossLayer('decoder', this.perceiver.decoder.group) };
  }

  reset(): void {
    // Nothing lives between forwards: each is a whole batch.
  }

  get cachedSlots(): number {
    return 0;
  }

  async forward(input: StepInput): Promise<StepResult | undefined> {
    return withinStep(this.rank, () => this.run(input));
  }

  private async run(input: StepInput): Promise<StepResult | undefined> {
    const { rank, ops, spec, top } = this;
    const { batch, rows } = input;
    if (input.ids.length !== batch * rows || input.positions.length !== batch * rows || input.keyMask.length !== batch * rows) {
      throw new TpError('invalid-argument', `a step of ${batch} × ${rows} rows needs as many ids, positions and mask entries`);
    }
    const positionRows = top.posEmbed?.weight.shape[0];
    if (positionRows !== undefined && rows > positionRows) {
      throw new TpError(
        'invalid-argument',
        `${ops.graph.title} takes at most ${positionRows} input tokens (max_position_embeddings: its text position table has ${positionRows} rows), but the input has ${rows}; shorten it to ${positionRows} tokens or fewer`,
      );
    }
    const positions = rank.upload(hostTensor(input.positions));
    const inputs = await embedTokens(ops, spec, top.embed, top, { ids: rank.upload(hostTensor(input.ids)), positions, hostPositions: input.positions });
    const source: Source = { x: inputs, batch, rows, keyMask: rank.upload(hostTensor(input.keyMask, [batch, rows])) };

    const latentRows = this.latents.weight.shape[0]!;
    let z = await this.cross(this.encoderCross, this.perBatch(this.latents, batch), source, this.perceiver.cross.queryResidual);
    z = await this.selfAttends(z, batch, latentRows);

    const result: StepResult = {};
    if (input.hidden && rank.rank === 0) {
      result.hidden = (await rank.download(z)) as Float32Array;
      result.hiddenRows = latentRows;
    }
    if (input.logits !== 'none') {
      if (this.plan.lmHead === null || this.decoder === undefined) {
        throw new TpError('unsupported-model', `${ops.graph.title}: this checkpoint has no masked-LM decoder (decoder queries and embedding decoder); ask for the hidden states (the latents) instead`);
      }
      const { queries, cross } = this.decoder;
      const latents: Source = { x: z, batch, rows: latentRows, keyMask: rank.upload(hostTensor(new Int32Array(batch * latentRows).fill(1), [batch, latentRows])) };
      const decoded = await this.cross(cross, this.perBatch(queries, batch), latents, this.perceiver.decoder.queryResidual);
      const logits = await lmHead(ops, this.plan, this.shard, top, decoded);
      Object.assign(result, await rankZeroOutput(rank, logits, { output: 'logits' }));
      if (rank.rank === 0) result.logitRows = queries.weight.shape[0]!;
    }
    return rank.rank === 0 ? result : undefined;
  }

  /**
   * The self-attention block, num_blocks times (transformers' PerceiverEncoder.forward): each
   * PerceiverLayer is x += out(attn(layernorm1(x))); x += mlp(layernorm(x)). One scratch cache serves
   * every layer: each writes its keys at slots [0, latents) and reads them back.
   */
  private async selfAttends(z: DeviceTensor, batch: number, latents: number): Promise<DeviceTensor> {
    const { rank, ops, spec } = this;
    if (this.selfLayers.length === 0) return z;
    const a = this.selfLayers[0]!.self.spec;
    const cache = rank.createKvCache(batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
    const attention = {
      positions: rank.upload(hostTensor(new Int32Array(batch * latents))),
      length: latents,
      step: { batch, rows: latents, start: 0, keyMask: rank.upload(hostTensor(new Int32Array(batch * latents).fill(1), [batch, latents])) },
    };
    try {
      for (let block = 0; block < this.perceiver.blocks; block++) {
        for (const layer of this.selfLayers) {
          const x = z;
          z = await inLayerStep(rank, () => runLayer(ops, spec, { norms: layer.refs.norms, attention: (y) => ops.selfAttention(layer.self, y, attention, cache), mlp: (y) => ops.mlp(layer.refs, y) }, x));
        }
      }
    } finally {
      rank.freeKvCache(cache);
    }
    return z;
  }

  /**
   * A cross-attention PerceiverLayer (transformers' PerceiverLayer with is_cross_attention): keys and
   * values of the normed source written once, queries from the normed query rows, the output
   * projection (plus the query rows with `residual`), then h + mlp(layernorm(h)).
   */
  private async cross(layer: CrossLayer, queries: DeviceTensor, source: Source, residual: boolean): Promise<DeviceTensor> {
    const { rank, ops } = this;
    const a = layer.attention.spec;
    const cache = rank.createKvCache(source.batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
    try {
      await ops.fillCrossCache(layer.attention, ops.norm(source.x, layer.sourceNorm), cache, source.batch, source.rows);
      const step = { batch: source.batch, rows: queries.shape[0]! / source.batch, start: 0, keyMask: source.keyMask };
      const attended = await ops.finish(await ops.crossAttention(layer.attention, ops.norm(queries, layer.queryNorm), step, cache));
      const h = residual ? rank.addInPlace(attended, queries) : attended;
      return rank.addInPlace(await ops.finish(await ops.mlp(layer.mlp, ops.norm(h, layer.mlp.norms.get('mlp_norm')!))), h);
    } finally {
      rank.freeKvCache(cache);
    }
  }

  /** A learned [n, width] array (latents, decoder queries) repeated for each sequence: [batch·n, width]. */
  private perBatch(array: WeightRef, batch: number): DeviceTensor {
    const n = array.weight.shape[0]!;
    const rows = Int32Array.from({ length: batch * n }, (_, i) => i % n);
    return this.rank.embedding(this.ops.tensor(array.weight.name), this.rank.upload(hostTensor(rows)));
  }

  /**
   * The refs of one cross-attention PerceiverLayer, found by its slots (runtime/structure.ts keeps
   * top-level weights by slot), and what this rank computes for its attention: the plan's heads of
   * `group` on this rank (every head where the plan keeps the group whole), their query/key and value
   * widths (qk_channels and v_channels over the heads), scores scaled by the query/key width per head.
   */
  private crossLayer(prefix: 'cross' | 'decoder', group: string): CrossLayer {
    const s = perceiverSlots.layer(prefix);
    const what = prefix === 'cross' ? "the encoder's cross-attention" : "the decoder's cross-attention";
    const refs: AttentionRefs = { group, q: this.slot(s.q, `${what}'s query`), k: this.slot(s.k, `${what}'s key`), v: this.slot(s.v, `${what}'s value`), out: this.slot(s.out, `${what}'s output`) };
    const mlp: LayerRefs = {
      index: 0,
      attention: new Map([[group, refs]]),
      norms: new Map([['mlp_norm', this.slot(s.mlpNorm, `${what}'s MLP norm (layernorm)`)]]),
      mlp: { up: this.slot(s.up, `${what}'s mlp.dense1`), down: this.slot(s.down, `${what}'s mlp.dense2`) },
      experts: new Map(),
    };
    return {
      attention: this.ops.attentionRuntime(refs, 0, { mask: 'bidirectional', positional: false }),
      queryNorm: this.slot(s.qNorm, `${what}'s query norm (layernorm1)`),
      sourceNorm: this.slot(s.kvNorm, `${what}'s key/value norm (layernorm2)`),
      mlp,
    };
  }

  private slot(name: string, what: string): WeightRef {
    const ref = this.top.slots.get(name);
    if (ref === undefined) throw new TpError('unsupported-model', `${this.ops.graph.title}: this checkpoint has no ${what} (slot "${name}")`);
    return ref;
  }
}
