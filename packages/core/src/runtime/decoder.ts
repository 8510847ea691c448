/**
 * The decoder stack (causal LM), written once for every decoder family: token (and learned or
 * sinusoidal position) embeddings, layers of causal self-attention and MLP assembled by `runLayer`,
 * the final norm and the LM head. The family's DecoderSpec switches norm kind and placement, the
 * residual, positions, gated MLP and experts. It knows nothing of tensor parallelism beyond local
 * head counts: `linear` (linear.ts) performs every collective.
 */
import { hostTensor, type AttentionStep, type DeviceTensor, type KvCache, type Rank, type StorageDtype } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { DecoderSpec, ModelGraph } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { inLayerStep, withinStep, type Engine, type StepInput, type StepResult } from './engine.js';
import { runLayer } from './layer.js';
import { embedTokens } from './embeddings.js';
import { linear, type LinearWeight } from './linear.js';
import type { LoadedShard } from './load.js';
import { modelRefs, type LayerRefs, type StackRefs, type TopRefs } from './structure.js';
import { SubLayers, type AttentionRuntime } from './sublayers.js';
import { StepTimeline } from './timeline.js';

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
  self: AttentionRuntime;
  cache?: KvCache;
}

export class DecoderEngine implements Engine {
  private readonly ops: SubLayers;
  private readonly stack: StackRefs;
  private readonly top: TopRefs;
  private readonly layers: LayerRuntime[];
  private readonly rank: Rank;
  private readonly timeline = new StepTimeline();

  constructor(
    rank: Rank,
    graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: DecoderSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    this.rank = rank;
    this.ops = new SubLayers(rank, graph, plan, shard, spec);
    const refs = modelRefs(graph, plan);
    this.stack = refs.stacks[0]!;
    this.top = refs.top;
    this.layers = this.stack.layers.map((layer, i) => {
      const self = layer.attention.values().next().value;
      if (self === undefined) throw new TpError('unsupported-model', `layer ${i} of ${this.stack.blockList} has no attention weights`);
      return { refs: layer, self: this.ops.attentionRuntime(self, i, { mask: 'causal', norms: layer.norms }) };
    });
  }

  /** Fresh, empty KV caches for `batch` sequences; they grow as the sequences do. */
  reset(batch: number): void {
    for (const layer of this.layers) {
      if (layer.cache) this.rank.freeKvCache(layer.cache);
      const a = layer.self.spec;
      layer.cache = this.rank.createKvCache(batch, a.kvHeads, a.headDim, a.valueDim, this.kvDtype);
    }
    this.timeline.reset(batch);
  }

  get cachedSlots(): number {
    return this.timeline.length;
  }

  async forward(step: StepInput): Promise<StepResult | undefined> {
    return withinStep(this.rank, () => this.forwardStep(step));
  }

  /** Beam search: sequence b continues sequence order[b] — its KV caches and its key timeline. */
  private reorder(order: Int32Array): void {
    this.timeline.reorder(order);
    if (isIdentity(order)) return;
    const device = this.rank.upload(hostTensor(order));
    for (const layer of this.layers) this.rank.reorderKvCache(layer.cache!, device);
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
    const { rank, spec, ops } = this;
    const top = this.top;
    if (input.order !== undefined) this.reorder(input.order);
    const step = this.deviceStep(input);
    let h = await embedTokens(ops, spec, top.embed, top, { ids: step.ids, positions: step.positions, hostPositions: input.positions });

    const attention = { positions: step.positions, length: step.start + step.rows, step: step.attention };
    for (const layer of this.layers) {
      const x = h;
      h = await inLayerStep(rank, () => runLayer(ops, spec, { norms: layer.refs.norms, attention: (y) => ops.selfAttention(layer.self, y, attention, layer.cache!), mlp: (y) => ops.mlp(layer.refs, y) }, x));
    }

    if (input.logits === 'none') return undefined;
    const finalNorm = top.slots.get('final_norm');
    if (finalNorm && spec.normPlacement === 'pre') h = ops.norm(h, finalNorm);
    if (input.logits === 'last' && step.rows > 1) {
      const last = Int32Array.from({ length: step.batch }, (_, b) => b * step.rows + step.rows - 1);
      h = rank.gatherRows(h, rank.upload(hostTensor(last)));
    }
    const projectOut = top.slots.get('project_out');
    if (projectOut) h = await linear(rank, h, ops.weight(projectOut));
    return rankZeroOutput(rank, await lmHead(ops, this.plan, this.shard, top, h), input);
  }
}

/**
 * The LM head: a stored or tied output projection, split by hidden (each rank multiplies its slice
 * of h, the logits are all-reduced), by vocabulary (gathered) or whole; then the vocabulary bias.
 */
export async function lmHead(ops: SubLayers, plan: TPPlan, shard: LoadedShard, top: TopRefs, h: DeviceTensor): Promise<DeviceTensor> {
  const { rank } = ops;
  const head = plan.lmHead;
  if (head === null) throw new TpError('unsupported-model', 'the model has no LM head');
  // A head's own bias (phi, gpt-j) or a vocabulary bias beside it (BERT's cls.predictions.bias).
  const biasPlan = top.lmHead?.bias ?? top.vocabBias;
  const bias = biasPlan ? ops.tensor(biasPlan.name) : undefined;
  if (head.split === 'row') {
    const [start, end] = head.ranks[rank.rank]!.ranges[0]!;
    const weight = head.tied ? shard.tiedLmHead! : ops.tensor(head.weight);
    const logits = rank.linear(rank.sliceColumns(h, start, end), weight);
    return ops.finish({ partial: logits, complete: undefined, biases: [{ partial: logits, bias }] });
  }
  const w: LinearWeight = { plan: plan.tensors.find((t) => t.name === head.weight)!, weight: ops.tensor(head.weight), bias };
  return linear(rank, h, w);
}

/** What rank 0 returns: the logits, or only what the sampler needs of them. */
export async function rankZeroOutput(rank: Rank, logits: DeviceTensor, input: Pick<StepInput, 'output'>): Promise<StepResult | undefined> {
  if (rank.rank !== 0) return undefined;
  const output = input.output ?? 'logits';
  if (output === 'logits') return { logits: (await rank.download(logits)) as Float32Array };
  if (output === 'argmax') return { ids: (await rank.download(rank.argmax(logits))) as Int32Array };
  const top = rank.topk(logits, Math.min(output.topk, logits.shape[1]!));
  return { topk: { values: (await rank.download(top.values)) as Float32Array, indices: (await rank.download(top.indices)) as Int32Array } };
}

/** An order that keeps every sequence where it is. */
export function isIdentity(order: Int32Array): boolean {
  for (let b = 0; b < order.length; b++) if (order[b] !== b) return false;
  return true;
}
