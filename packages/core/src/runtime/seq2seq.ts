/**
 * The encoder–decoder model (T5, the BART family), on the same sub-layers and layer assembly as the
 * other stacks. A batch's first step carries the encoder input: the encoder stack runs once
 * (bidirectional attention over the real tokens), and each decoder layer's cross-attention keys and
 * values are computed from its output once and cached. Every step then runs the decoder rows: causal
 * self-attention with its own growing KV cache, cross-attention to the cached source, the MLP, and
 * the LM head. T5's relative position bias is built per step from each rank's own heads' columns;
 * LongT5's local and transient-global encoder attention is built in longt5-attention.ts.
 */
import { hostTensor, type AttentionStep, type DeviceTensor, type KvCache, type Rank, type StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { ModelGraph, Seq2SeqSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { isIdentity, lmHead, rankZeroOutput } from './decoder.js';
import { embedTokens } from './embeddings.js';
import { inLayerStep, type Engine, type StepInput, type StepResult } from './engine.js';
import { runLayer } from './layer.js';
import type { LoadedShard } from './load.js';
import { LongT5Encoder } from './longt5-attention.js';
import { checkSourceLength } from './source-limit.js';
import { relativeBias } from './relative-bias.js';
import { modelRefs, type LayerRefs, type StackRefs, type TopRefs } from './structure.js';
import { SubLayers, type AttentionRuntime } from './sublayers.js';
import { StepTimeline } from './timeline.js';

interface EncoderLayer {
  refs: LayerRefs;
  self: AttentionRuntime;
}

interface DecoderLayer extends EncoderLayer {
  cross: AttentionRuntime;
  cache?: KvCache;
  source?: KvCache;
}

/** A stack's relative-bias table: [buckets, local heads], read from the device once. */
type BiasTable = { values: Float32Array; heads: number } | undefined;

export class Seq2SeqEngine implements Engine {
  private readonly enc: SubLayers;
  private readonly dec: SubLayers;
  private readonly encoderStack: StackRefs;
  private readonly decoderStack: StackRefs;
  private readonly top: TopRefs;
  private readonly encoderLayers: EncoderLayer[];
  private readonly decoderLayers: DecoderLayer[];
  private readonly timeline = new StepTimeline();
  /**
   * The encoder's key mask of each decoder sequence, kept on the host and uploaded with each step, and
   * which encoder row each decoder sequence reads (beams of one source share it).
   */
  private source: { mask: Int32Array; rows: number; of: Int32Array } | undefined;
  private tables: { encoder: BiasTable; decoder: BiasTable } | undefined;
  /** LongT5's local / transient-global encoder attention, when the spec asks for it. */
  private longT5: LongT5Encoder | undefined;

  constructor(
    private readonly rank: Rank,
    graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: Seq2SeqSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    this.enc = new SubLayers(rank, graph, plan, shard, spec.encoder);
    this.dec = new SubLayers(rank, graph, plan, shard, spec.decoder);
    const refs = modelRefs(graph, plan);
    this.top = refs.top;
    const stackNamed = (name: string) => {
      const found = refs.stacks.find((s) => s.blockList.split('.').includes(name));
      if (found === undefined) throw new TpError('unsupported-model', `${graph.title}: no ${name} layers among ${refs.stacks.map((s) => s.blockList).join(', ')}`);
      return found;
    };
    this.encoderStack = stackNamed(spec.stacks.encoder);
    this.decoderStack = stackNamed(spec.stacks.decoder);
    this.encoderLayers = this.encoderStack.layers.map((layer, i) => ({
      refs: layer,
      self: this.enc.attentionRuntime(selfGroup(layer, spec.crossGroup, i), i, { mask: 'bidirectional', norms: layer.norms }),
    }));
    this.decoderLayers = this.decoderStack.layers.map((layer, i) => {
      const cross = layer.attention.get(spec.crossGroup);
      if (cross === undefined) throw new TpError('unsupported-model', `decoder layer ${i} has no cross-attention weights (group "${spec.crossGroup}")`);
      return {
        refs: layer,
        self: this.dec.attentionRuntime(selfGroup(layer, spec.crossGroup, i), i, { mask: 'causal', norms: layer.norms }),
        cross: this.dec.attentionRuntime(cross, i, { mask: 'bidirectional', positional: false }),
      };
    });
  }

  /** Fresh decoder caches (self-attention and cross-attention sources) for `batch` sequences. */
  reset(batch: number): void {
    const { rank } = this;
    for (const layer of this.decoderLayers) {
      if (layer.cache) rank.freeKvCache(layer.cache);
      if (layer.source) rank.freeKvCache(layer.source);
      const a = layer.self.spec;
      const c = layer.cross.spec;
      layer.cache = rank.createKvCache(batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
      layer.source = rank.createKvCache(batch, c.kvHeads, c.headDim, c.valueDim, this.kvDtype);
    }
    this.timeline.reset(batch);
    this.source = undefined;
  }

  get cachedSlots(): number {
    return this.timeline.length;
  }

  async forward(input: StepInput): Promise<StepResult | undefined> {
    this.tables ??= { encoder: await this.biasTable(this.encoderStack), decoder: await this.biasTable(this.decoderStack) };
    if (this.spec.encoderAttention !== undefined && this.longT5 === undefined) {
      const local = this.tables.encoder;
      if (local === undefined) throw new TpError('unsupported-model', `${this.encoderStack.blockList}: LongT5's encoder attention needs the stack's relative bias`);
      this.longT5 = await LongT5Encoder.create(this.enc, this.encoderStack, this.spec.encoderAttention, local, this.spec.relativeBias!);
    }
    this.rank.beginStep();
    try {
      const result: StepResult = {};
      if (input.order !== undefined) this.reorder(input.order);
      if (input.encoder !== undefined) {
        const encoded = await this.encode(input);
        if (input.hidden && this.rank.rank === 0) result.hidden = (await this.rank.download(encoded)) as Float32Array;
      }
      if (this.source === undefined) throw new TpError('invalid-argument', 'the first step of a batch must carry the encoder input');
      const logits = await this.decode(input);
      if (logits !== undefined) Object.assign(result, await rankZeroOutput(this.rank, logits, input));
      return this.rank.rank === 0 ? result : undefined;
    } finally {
      await this.rank.endStep();
    }
  }

  /** The encoder stack over the source rows; its output fills every decoder layer's cross-attention cache. */
  private async encode(input: StepInput): Promise<DeviceTensor> {
    const { rank, enc, spec } = this;
    const src = input.encoder!;
    const repeat = src.repeat ?? 1;
    if (!Number.isInteger(repeat) || repeat < 1 || input.batch % repeat !== 0) {
      throw new TpError('invalid-argument', `a batch of ${input.batch} decoder sequences cannot repeat each source ${repeat} times`);
    }
    const batch = input.batch / repeat;
    if (src.ids.length !== batch * src.rows || src.keyMask.length !== batch * src.rows) {
      throw new TpError('invalid-argument', `an encoder input of ${batch} × ${src.rows} rows needs as many ids and mask entries`);
    }
    checkSourceLength(spec, src.rows);
    const positions = rank.upload(hostTensor(src.positions));
    const own = this.encoderStack.own;
    let h = await embedTokens(enc, spec.encoder, own.embed ?? this.top.embed, own, { ids: rank.upload(hostTensor(src.ids)), positions, hostPositions: src.positions });
    // LongT5: keys [globals | tokens] with a bias that keeps each query's window (longt5-attention.ts).
    const longT5 = this.longT5?.prepare(src.keyMask, batch, src.rows);
    const step: AttentionStep = longT5?.step ?? { batch, rows: src.rows, start: 0, keyMask: rank.upload(hostTensor(src.keyMask, [batch, src.rows])) };
    const bias = longT5 ? undefined : this.bias('encoder', src.rows, src.rows, 0);
    if (bias) step.bias = bias;
    const attention = { positions, length: src.rows, step };
    // One scratch cache serves every encoder layer: each writes its keys at slots [0, rows) and reads them
    // back (LongT5's transient-global: its global keys at [0, globals), then its tokens').
    const a = this.encoderLayers[0]!.self.spec;
    const scratch = rank.createKvCache(batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
    try {
      for (const layer of this.encoderLayers) {
        const self = async (x: DeviceTensor) => {
          await longT5?.fillGlobals(layer.self, layer.refs.norms, x, scratch);
          return enc.selfAttention(layer.self, x, attention, scratch);
        };
        const x = h;
        h = await inLayerStep(rank, () => runLayer(enc, spec.encoder, { norms: layer.refs.norms, attention: self, mlp: (y) => enc.mlp(layer.refs, y) }, x));
      }
    } finally {
      rank.freeKvCache(scratch);
    }
    const norm = own.slots.get('final_norm');
    if (norm) h = enc.norm(h, norm);
    // Beams of one source read the same encoder output: expand it once, before the cross projections.
    const of = Int32Array.from({ length: input.batch }, (_, b) => Math.floor(b / repeat));
    const rowsOf = (rows: number) => Int32Array.from({ length: input.batch * rows }, (_, i) => of[Math.floor(i / rows)]! * rows + (i % rows));
    const expanded = repeat === 1 ? h : rank.gatherRows(h, rank.upload(hostTensor(rowsOf(src.rows))));
    for (const layer of this.decoderLayers) await this.dec.fillCrossCache(layer.cross, expanded, layer.source!, input.batch, src.rows);
    const mask = repeat === 1 ? src.keyMask.slice() : Int32Array.from(rowsOf(src.rows), (i) => src.keyMask[i]!);
    this.source = { mask, rows: src.rows, of };
    return h;
  }

  /**
   * Beam search: sequence b continues sequence order[b] — its self-attention caches and timeline, and
   * its source when order[b] read another one (beams of one source never do).
   */
  private reorder(order: Int32Array): void {
    const { rank } = this;
    this.timeline.reorder(order);
    if (isIdentity(order)) return;
    const device = rank.upload(hostTensor(order));
    for (const layer of this.decoderLayers) rank.reorderKvCache(layer.cache!, device);
    const source = this.source;
    if (source === undefined) return;
    const of = Int32Array.from(order, (s) => source.of[s]!);
    if (of.every((s, b) => s === source.of[b])) return;
    for (const layer of this.decoderLayers) rank.reorderKvCache(layer.source!, device);
    const mask = new Int32Array(source.mask.length);
    order.forEach((s, b) => mask.set(source.mask.subarray(s * source.rows, (s + 1) * source.rows), b * source.rows));
    this.source = { mask, rows: source.rows, of };
  }

  /** The decoder rows of a step; the logits asked for (or undefined). */
  private async decode(input: StepInput): Promise<DeviceTensor | undefined> {
    const { rank, dec, spec } = this;
    const { batch, rows } = input;
    if (input.ids.length !== batch * rows || input.positions.length !== batch * rows) {
      throw new TpError('invalid-argument', `a step of ${batch} × ${rows} rows needs as many ids and positions`);
    }
    this.timeline.append(input);
    const keys = this.timeline.length;
    const positions = rank.upload(hostTensor(input.positions));
    const own = this.decoderStack.own;
    let h = await embedTokens(dec, spec.decoder, own.embed ?? this.top.embed, own, { ids: rank.upload(hostTensor(input.ids)), positions, hostPositions: input.positions });
    const self: AttentionStep = { batch, rows, start: input.start, keyMask: rank.upload(hostTensor(this.timeline.mask(), [batch, keys])) };
    const bias = this.bias('decoder', rows, keys, input.start);
    if (bias) self.bias = bias;
    const source = this.source!;
    const cross: AttentionStep = { batch, rows, start: 0, keyMask: rank.upload(hostTensor(source.mask, [batch, source.rows])) };
    const attention = { positions, length: keys, step: self };
    for (const layer of this.decoderLayers) {
      const x = h;
      h = await inLayerStep(rank, () =>
        runLayer(
          dec,
          spec.decoder,
          {
            norms: layer.refs.norms,
            attention: (y) => dec.selfAttention(layer.self, y, attention, layer.cache!),
            cross: (y) => dec.crossAttention(layer.cross, y, cross, layer.source!),
            mlp: (y) => dec.mlp(layer.refs, y),
          },
          x,
        ),
      );
    }
    if (input.logits === 'none') return undefined;
    const norm = own.slots.get('final_norm');
    if (norm) h = dec.norm(h, norm);
    if (input.logits === 'last' && rows > 1) {
      h = rank.gatherRows(h, rank.upload(hostTensor(Int32Array.from({ length: batch }, (_, b) => b * rows + rows - 1))));
    }
    if (spec.logitScale !== undefined) h = rank.scale(h, spec.logitScale);
    return lmHead(dec, this.plan, this.shard, this.top, h);
  }

  /** The step's relative position bias on the device, or undefined for families without one. */
  private bias(stack: 'encoder' | 'decoder', rows: number, keys: number, queryStart: number): DeviceTensor | undefined {
    const table = this.tables?.[stack];
    const rel = this.spec.relativeBias;
    if (table === undefined || rel === undefined) return undefined;
    const values = relativeBias(table.values, { heads: table.heads, rows, keys, queryStart, bidirectional: stack === 'encoder', buckets: rel.buckets, maxDistance: rel.maxDistance });
    return this.rank.upload(hostTensor(values, [table.heads, rows, keys]));
  }

  /** The stack's relative-bias table (stored in its first layer), with this rank's heads. */
  private async biasTable(stack: StackRefs): Promise<BiasTable> {
    if (this.spec.relativeBias === undefined) return undefined;
    const ref = [...(stack.layers[0]?.attention.values() ?? [])].find((a) => a.relBias !== undefined)?.relBias;
    if (ref === undefined) throw new TpError('unsupported-model', `${stack.blockList}.0 has no relative_attention_bias table`);
    const t = this.enc.tensor(ref.weight.name);
    return { values: (await this.rank.download(t)) as Float32Array, heads: t.shape[1]! };
  }
}

/** A layer's self-attention: its attention group that is not the cross-attention. */
function selfGroup(layer: LayerRefs, crossGroup: string, index: number) {
  const self = [...layer.attention.values()].find((a) => a.group !== crossGroup && a.q !== undefined);
  if (self === undefined) throw new TpError('unsupported-model', `layer ${index} has no self-attention weights`);
  return self;
}
