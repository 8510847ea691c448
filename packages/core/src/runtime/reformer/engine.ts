/**
 * The Reformer engine (transformers' ReformerModelWithLMHead at inference), cache-free: LSH buckets
 * depend on the whole sequence, so every step re-runs each sequence from its first token, as
 * transformers' generate does with use_cache=False. The coordinator still sends only the new rows;
 * the engine keeps the tokens (history.ts).
 *
 * One forward, per sequence as transformers runs it alone (a batch is right-aligned to the real
 * tokens; rows past a sequence's length are hidden):
 * - word embeddings + axial (or learned) position embeddings;
 * - the reversible stream: A = X = embeddings; per layer A += attention(norm(X)), then
 *   X += feed_forward(norm(A)) (ReformerLayer.forward; chunking the feed-forward changes nothing);
 * - norm over [A, X] (2 × hidden), then the LM head.
 * Local and LSH attention run as attention with a per-sequence bias (layer-bias.ts). An LSH layer
 * downloads each head's rotations x·R (a small host round trip per LSH layer), hashes and sorts on the
 * host, and uploads the bias. Heads split across ranks: each rank hashes its own heads with its slice
 * of the rotations; linear.ts does every collective.
 */
import { hostTensor, type AttentionSpec, type AttentionStep, type DeviceTensor, type KvCache, type Rank, type StorageDtype } from '../../backend/index.js';
import { ArgumentError, TpError, UnsupportedModelError } from '../../errors/index.js';
import { reformerPaddedLength, type DecoderSpec, type ModelGraph, type ReformerSpec } from '../../graph/index.js';
import type { TPPlan } from '../../plan/index.js';
import { lmHead, rankZeroOutput } from '../decoder.js';
import { inLayerStep, withinStep, type Engine, type StepInput, type StepResult } from '../engine.js';
import { embed, linear, type SubLayerOutput } from '../linear.js';
import type { LoadedShard } from '../load.js';
import { modelRefs, type AttentionRefs, type LayerRefs, type TopRefs, type WeightRef } from '../structure.js';
import { SubLayers } from '../sublayers.js';
import { axialRows, type AxialTables } from './axial.js';
import { TokenHistory } from './history.js';
import { localLayerBias, lshLayerBias, type BatchShape, type ScaledRow } from './layer-bias.js';
import { rotationWeight } from './rotations.js';

/** transformers' LSHSelfAttention._len_norm: x · rsqrt(mean(x²) + 1e-6), per head, no weight. */
const LSH_KEY_NORM = { kind: 'rms', eps: 1e-6 } as const;

interface ReformerLayer {
  kind: 'local' | 'lsh';
  refs: LayerRefs;
  attention: AttentionRefs;
  spec: AttentionSpec;
  cache?: KvCache;
}

/** The batch of one forward, right-aligned to each sequence's real tokens. */
interface Batch extends Omit<BatchShape, 'heads'> {
  attention: Omit<AttentionStep, 'bias'>;
}

export class ReformerEngine implements Engine {
  private readonly ops: SubLayers;
  private readonly top: TopRefs;
  private readonly layers: ReformerLayer[];
  private readonly reformer: ReformerSpec;
  private readonly history = new TokenHistory();
  /** Block-diagonal rotations of this rank's heads (LSH layers only). */
  private readonly rotations: DeviceTensor | undefined;
  /** [2·hidden, hidden] one-hot matrices placing A and X side by side: [A, X] = A·E1ᵀ + X·E2ᵀ, exactly. */
  private readonly concat: { first: DeviceTensor; second: DeviceTensor };
  private axial: AxialTables | undefined;

  constructor(
    private readonly rank: Rank,
    private readonly graph: ModelGraph,
    private readonly plan: TPPlan,
    private readonly shard: LoadedShard,
    private readonly spec: DecoderSpec,
    private readonly kvDtype: StorageDtype = 'f32',
  ) {
    if (spec.reformer === undefined) throw new UnsupportedModelError({ modelType: graph.modelType, reason: 'the Reformer engine needs a Reformer spec' });
    this.reformer = spec.reformer;
    this.ops = new SubLayers(rank, graph, plan, shard, spec);
    const refs = modelRefs(graph, plan);
    const stack = refs.stacks[0]!;
    this.top = refs.top;
    if (stack.layers.length !== this.reformer.layers.length) {
      throw new UnsupportedModelError({ modelType: graph.modelType, reason: `config.json's attn_layers lists ${this.reformer.layers.length} layers, but the checkpoint holds ${stack.layers.length}` });
    }
    this.layers = stack.layers.map((layer, i) => {
      const attention = layer.attention.get('self');
      const kind = this.reformer.layers[i]!;
      if (attention?.q === undefined || attention.v === undefined || attention.out === undefined || (kind === 'local' && attention.k === undefined)) {
        throw new UnsupportedModelError({ modelType: graph.modelType, reason: `layer ${i} (${kind}) lacks its ${kind === 'lsh' ? 'query_key, value' : 'query, key, value'} or output projection` });
      }
      if ((kind === 'lsh') !== (attention.k === undefined)) {
        throw new UnsupportedModelError({ modelType: graph.modelType, reason: `layer ${i} is ${kind} in attn_layers, but its weights are those of ${kind === 'lsh' ? 'local' : 'LSH'} attention` });
      }
      const spec = this.ops.attentionRuntime(attention, i, { mask: 'causal', positional: false }).spec;
      return { kind, refs: layer, attention, spec };
    });
    this.rotations = this.layers.some((l) => l.kind === 'lsh') ? this.uploadRotations() : undefined;
    const hidden = graph.geometry.hidden;
    const onehot = (offset: number) => {
      const m = new Float32Array(2 * hidden * hidden);
      for (let i = 0; i < hidden; i++) m[(offset + i) * hidden + i] = 1;
      return rank.upload(hostTensor(m, [2 * hidden, hidden]));
    };
    this.concat = { first: onehot(0), second: onehot(hidden) };
  }

  reset(batch: number): void {
    for (const layer of this.layers) {
      if (layer.cache) this.rank.freeKvCache(layer.cache);
      layer.cache = this.rank.createKvCache(batch, layer.spec.kvHeads, layer.spec.headDim, layer.spec.valueDim, this.kvDtype);
    }
    this.history.reset(batch);
  }

  get cachedSlots(): number {
    return this.history.length;
  }

  async forward(step: StepInput): Promise<StepResult | undefined> {
    if (step.order !== undefined) this.history.reorder(step.order);
    this.history.append(step);
    if (step.logits === 'none') return undefined; // nothing is cached, so a step without logits computes nothing
    return withinStep(this.rank, () => this.run(step));
  }

  private async run(step: StepInput): Promise<StepResult | undefined> {
    const { rank, ops } = this;
    const batch = this.batchOf();
    const { rows } = batch;
    const h = await this.embeddings(batch);
    // ReformerEncoder: hidden_states = cat([x, x]); _ReversibleFunction splits it into X and A.
    let a = h;
    let x = h;
    // Made before the layers: each half-layer runs in a nested step, which releases what it made.
    const local = this.layers.find((l) => l.kind === 'local');
    const localBias = local && rank.upload(hostTensor(localLayerBias(this.reformer, { ...batch, heads: local.spec.heads }), [batch.lengths.length, local.spec.heads, rows, rows]));
    for (const layer of this.layers) {
      const [x1, x2] = [a, x];
      a = await inLayerStep(rank, async () => {
        const normed = ops.norm(x2, this.norm(layer.refs, 'attn_norm'));
        const attention: SubLayerOutput = layer.kind === 'local' ? await this.localAttention(layer, normed, batch, localBias!) : await this.lshAttention(layer, normed, batch);
        return rank.addInPlace(await ops.finish(attention), x1); // Y1 = X1 + f(X2)
      });
      const y1 = a;
      x = await inLayerStep(rank, async () => {
        const fed = ops.norm(y1, this.norm(layer.refs, 'mlp_norm'));
        return rank.addInPlace(await ops.finish(await ops.mlp(layer.refs, fed)), x2); // Y2 = X2 + g(Y1)
      });
    }
    const picked = rank.upload(hostTensor(this.outputRows(step, rows)));
    const both = rank.addInPlace(rank.linear(rank.gatherRows(a, picked), this.concat.first), rank.linear(rank.gatherRows(x, picked), this.concat.second));
    const finalNorm = this.top.slots.get('final_norm');
    if (finalNorm === undefined) throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: 'the checkpoint has no final layer norm (reformer.encoder.layer_norm)' });
    return rankZeroOutput(rank, await lmHead(ops, this.plan, this.shard, this.top, ops.norm(both, finalNorm)), step);
  }

  /** Each sequence's real tokens, right-aligned in rows of the longest; the rest is hidden. */
  private batchOf(): Batch {
    const { history, rank, reformer } = this;
    const lengths = Array.from({ length: history.batch }, (_, b) => history.sequence(b).length);
    for (const length of lengths) {
      const padded = reformerPaddedLength(reformer, length);
      if (padded > reformer.maxPaddedLength) {
        throw new ArgumentError({
          argument: 'prompts',
          detail: `a sequence of ${length} tokens runs padded to ${padded} positions, but this Reformer takes at most ${reformer.maxPaddedLength} (max_position_embeddings and the axial position grid)`,
        });
      }
    }
    const rows = Math.max(...lengths);
    const mask = new Int32Array(lengths.length * rows);
    lengths.forEach((n, b) => mask.fill(1, b * rows, b * rows + n));
    const keyMask = rank.upload(hostTensor(mask, [lengths.length, rows]));
    return { lengths, rows, attention: { batch: lengths.length, rows, start: 0, keyMask } };
  }

  /** Word embeddings plus position embeddings of positions 0 … n − 1 (padding rows: the pad token at 0). */
  private async embeddings(batch: Batch): Promise<DeviceTensor> {
    const { rank, ops, top } = this;
    const { lengths, rows } = batch;
    const ids = new Int32Array(lengths.length * rows).fill(this.reformer.padTokenId);
    const positions = new Int32Array(lengths.length * rows);
    lengths.forEach((n, b) => {
      ids.set(this.history.sequence(b), b * rows);
      for (let t = 0; t < n; t++) positions[b * rows + t] = t;
    });
    if (top.embed === undefined) throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: 'the checkpoint has no word embeddings' });
    const h = await embed(rank, ops.tensor(top.embed.weight.name), top.embed.weight, rank.upload(hostTensor(ids)), 1);
    if (this.reformer.axial) {
      const axial = (this.axial ??= await this.axialTables(this.reformer.axial));
      return rank.addInPlace(h, rank.upload(hostTensor(axialRows(axial, positions), [positions.length, h.shape[1]!])));
    }
    if (top.posEmbed === undefined) throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: 'axial_pos_embds is false, but the checkpoint has no position embedding table' });
    return rank.addInPlace(h, rank.embedding(ops.tensor(top.posEmbed.weight.name), rank.upload(hostTensor(positions))));
  }

  /** The axial tables, read once from the device (replicated: small, and every rank has them). */
  private async axialTables(axial: NonNullable<ReformerSpec['axial']>): Promise<AxialTables> {
    const weights = this.graph.weights.filter((w) => w.role === 'pos_embed').sort((p, q) => Number(p.param) - Number(q.param));
    if (weights.length !== axial.shape.length) {
      throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: `axial_pos_shape has ${axial.shape.length} axes, but the checkpoint holds ${weights.length} axial position tables` });
    }
    const tables = await Promise.all(weights.map((w) => this.rank.download(this.ops.tensor(w.name)) as Promise<Float32Array>));
    tables.forEach((t, i) => {
      if (t.length !== axial.shape[i]! * axial.dims[i]!) {
        throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: `${weights[i]!.name} holds ${t.length} values, not axial_pos_shape[${i}] × axial_pos_embds_dim[${i}] = ${axial.shape[i]! * axial.dims[i]!}` });
      }
    });
    return { shape: axial.shape, dims: axial.dims, tables };
  }

  /** LocalSelfAttention: q, k, v projections; keys scaled by 1/√headDim (the spec's scale). */
  private async localAttention(layer: ReformerLayer, x: DeviceTensor, batch: Batch, bias: DeviceTensor): Promise<SubLayerOutput> {
    const { rank, ops } = this;
    const r = layer.attention;
    const q = await linear(rank, x, ops.weight(r.q!));
    const k = await linear(rank, x, ops.weight(r.k!));
    const v = await linear(rank, x, ops.weight(r.v!));
    const o = rank.attention(q, k, v, layer.cache!, { ...batch.attention, bias }, layer.spec);
    return ops.projection(o, ops.weight(r.out!));
  }

  /**
   * LSHSelfAttention: one query-key projection; the queries are it as it is, the keys it normalized
   * per head (_len_and_dim_norm: the 1/√headDim is the spec's scale). The rotations of the raw
   * query-key vectors come back to the host for the buckets.
   */
  private async lshAttention(layer: ReformerLayer, x: DeviceTensor, batch: Batch): Promise<SubLayerOutput> {
    const { rank, ops } = this;
    const r = layer.attention;
    const { heads, headDim } = layer.spec;
    const qk = await linear(rank, x, ops.weight(r.q!));
    const v = await linear(rank, x, ops.weight(r.v!));
    const keys = rank.groupNorm(qk, headDim, LSH_KEY_NORM);
    // A host round trip per LSH layer: the buckets (argmax, sort) and the bias are built here.
    const rotated = (await rank.download(rank.linear(qk, this.rotations!))) as Float32Array;
    const { bias, scaled } = lshLayerBias(this.reformer, { ...batch, heads }, rotated);
    const o = rank.attention(qk, keys, v, layer.cache!, { ...batch.attention, bias: rank.upload(hostTensor(bias, [batch.lengths.length, heads, batch.rows, batch.rows])) }, layer.spec);
    if (scaled.length > 0) await this.scaleSelfOnly(o, v, scaled, headDim);
    return ops.projection(o, ops.weight(r.out!));
  }

  /**
   * Rows whose query sees only its own key come out of attention as exactly its value; transformers
   * gives φ·value (window-bias.ts, selfOnlyScale). Add (φ − 1)·value to those rows and heads (one more
   * download, of the values, and only when some φ is not 1: several hashing rounds, or a window that
   * wraps onto its own chunk).
   */
  private async scaleSelfOnly(o: DeviceTensor, v: DeviceTensor, scaled: readonly ScaledRow[], headDim: number): Promise<void> {
    const { rank } = this;
    const values = (await rank.download(v)) as Float32Array;
    const width = v.shape[1]!;
    const rows = [...new Set(scaled.map((s) => s.row))];
    const correction = new Float32Array(rows.length * width);
    for (const s of scaled) {
      const i = rows.indexOf(s.row);
      for (let d = 0; d < headDim; d++) correction[i * width + s.head * headDim + d] = (s.scale - 1) * values[s.row * width + s.head * headDim + d]!;
    }
    const at = rank.upload(hostTensor(Int32Array.from(rows)));
    rank.scatterAddRows(o, rank.upload(hostTensor(correction, [rows.length, width])), at, rank.upload(hostTensor(new Float32Array(rows.length).fill(1))));
  }

  /**
   * The rows the step asks logits for: each sequence's last token, or every new slot of the step
   * (a padding slot takes its sequence's first row; the coordinator drops it).
   */
  private outputRows(step: StepInput, rows: number): Int32Array {
    const { history } = this;
    if (step.logits === 'last') return Int32Array.from({ length: step.batch }, (_, b) => b * rows + history.sequence(b).length - 1);
    const out = new Int32Array(step.batch * step.rows);
    for (let b = 0; b < step.batch; b++) {
      for (let t = 0; t < step.rows; t++) out[b * step.rows + t] = b * rows + Math.max(0, history.indexOf(b, step.start + t));
    }
    return out;
  }

  private norm(layer: LayerRefs, slot: string): WeightRef {
    const ref = layer.norms.get(slot);
    if (ref === undefined) throw new UnsupportedModelError({ modelType: this.graph.modelType, reason: `layer ${layer.index} has no ${slot === 'attn_norm' ? 'attention' : 'feed-forward'} layer norm` });
    return ref;
  }

  /** This rank's heads' rotations as one block-diagonal weight, uploaded once (every LSH layer shares them). */
  private uploadRotations(): DeviceTensor {
    const { lsh } = this.reformer;
    const geometry = this.plan.geometry.attention['self'];
    if (geometry === undefined) throw new TpError('internal', 'the plan has no self-attention geometry');
    const share = this.plan.attention.find((p) => p.group === 'self')?.ranks[this.rank.rank];
    const local: [number, number] = share ? [share.q[0], share.q[1]] : [0, geometry.heads];
    const headDim = this.layers.find((l) => l.kind === 'lsh')!.spec.headDim;
    const half = lsh.buckets.reduce((a, f) => a + f, 0) / 2;
    const w = rotationWeight({ heads: geometry.heads, local, headDim, hashes: lsh.hashes, half, seed: lsh.seed });
    return this.rank.upload(hostTensor(w, [(local[1] - local[0]) * lsh.hashes * half, (local[1] - local[0]) * headDim]));
  }
}
