/**
 * What an encoder family adds to plain attention (`EncoderSpec.relative`, `.scoring`), set on each
 * layer's `AttentionSpec` and step:
 * - NEZHA: one sinusoidal distance table [2m + 1, headDim], uploaded once, shared by every head and
 *   layer, as both the keys and the values term.
 * - DeBERTa: per layer, the relative embeddings through the layer's position projections, computed by
 *   each rank with its own heads' rows of those weights (so it holds [2·span, local heads · headDim]),
 *   once per model; and the scale 1/sqrt(headDim · scaleFactor).
 * - YOSO: expectation scoring.
 * The (query, key) → table-row index is built on the host for each step's length and shared by every layer.
 */
import { hostTensor, type AttentionSpec, type DeviceTensor, type Rank } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { DisentangledRelative, EncoderSpec } from '../graph/index.js';
import type { TensorPlan } from '../plan/index.js';
import { linear } from './linear.js';
import { disentangledIndex, functionalIndex, functionalTable } from './relative-positions.js';
import type { LayerRefs, TopRefs, WeightRef } from './structure.js';
import type { AttentionRuntime, SubLayers } from './sublayers.js';

/** The attention group of DeBERTa's position projections (pos_proj, pos_q_proj, pos_key_proj, pos_query_proj). */
const POSITION_GROUP = 'rel';

export class EncoderAttention {
  /** The last step's index, kept for the next step of the same length (host side). */
  private index: { rows: number; values: Int32Array } | undefined;

  constructor(
    private readonly rank: Rank,
    private readonly ops: SubLayers,
    private readonly spec: EncoderSpec,
    /** The stack's own top-level weights (DeBERTa's rel_embeddings and their norm). */
    private readonly refs: TopRefs,
  ) {}

  /**
   * Each layer's attention with the family's additions. Called once, outside any step: the tables it
   * uploads live as long as the model. DeBERTa's projections run in a step of their own, are read
   * back and uploaded again, so nothing of that step is kept.
   */
  async prepare(layers: ReadonlyArray<{ refs: LayerRefs; self: AttentionRuntime }>): Promise<AttentionRuntime[]> {
    const { spec, rank } = this;
    const scoring: Partial<AttentionSpec> = spec.scoring ? { scoring: spec.scoring } : {};
    const relative = spec.relative;
    if (relative === undefined) return layers.map((l) => withSpec(l.self, scoring));
    if (relative.kind === 'functional') {
      // One table for every layer: the head width is the same everywhere.
      const headDim = layers[0]!.self.spec.headDim;
      const table = rank.upload(hostTensor(functionalTable(relative.maxDistance, headDim), [2 * relative.maxDistance + 1, headDim]));
      return layers.map((l) => withSpec(l.self, { ...scoring, relative: { keys: table, values: table } }));
    }
    const scaled = layers.map((l) => withSpec(l.self, { ...scoring, scale: 1 / Math.sqrt(l.self.spec.headDim * relative.scaleFactor) }));
    if (!relative.c2p && !relative.p2c) return scaled;
    const host = await this.disentangledTables(layers, relative);
    return scaled.map((a, i) => {
      const t = host[i]!;
      const upload = (x: Float32Array | undefined) => (x === undefined ? undefined : rank.upload(hostTensor(x, [2 * relative.span, x.length / (2 * relative.span)])));
      const keys = upload(t.keys);
      const queries = upload(t.queries);
      return withSpec(a, { relative: { ...(keys ? { keys } : {}), ...(queries ? { queries } : {}) } });
    });
  }

  /** The step's relative index (i32 [rows, rows]) on the device, or undefined without relative positions. */
  stepIndex(rows: number): DeviceTensor | undefined {
    const r = this.spec.relative;
    if (r === undefined || (r.kind === 'disentangled' && !r.c2p && !r.p2c)) return undefined;
    if (this.index?.rows !== rows) {
      const values =
        r.kind === 'functional'
          ? functionalIndex(rows, rows, r.maxDistance)
          : disentangledIndex({ rows, keys: rows, span: r.span, ...(r.buckets ? { buckets: r.buckets } : {}) });
      this.index = { rows, values };
    }
    return this.rank.upload(hostTensor(this.index.values, [rows, rows]));
  }

  /**
   * Kr (c2p) and Qr (p2c) of every layer, for this rank's heads: the first 2·span rows of the relative
   * embeddings (layer-normed for v2's norm_rel_ebd) through the position projections, or with shared
   * keys through the layer's own key and query projections, biases included.
   */
  private async disentangledTables(
    layers: ReadonlyArray<{ refs: LayerRefs; self: AttentionRuntime }>,
    r: DisentangledRelative,
  ): Promise<Array<{ keys?: Float32Array; queries?: Float32Array }>> {
    const { rank, ops } = this;
    const table = this.refs.slots.get('rel_embed');
    if (table === undefined) throw new TpError('unsupported-model', `${ops.graph.title}: the config asks for relative attention but the checkpoint has no rel_embeddings`);
    const rows = 2 * r.span;
    if (table.weight.shape[0]! < rows) {
      throw new TpError('unsupported-model', `${table.weight.name} has ${table.weight.shape[0]} rows, but the config's relative span needs ${rows}`);
    }
    const out: Array<{ keys?: Float32Array; queries?: Float32Array }> = [];
    rank.beginStep();
    try {
      // Rows gathered as f32 activations whatever the table's storage dtype.
      let e = rank.embedding(ops.tensor(table.weight.name), rank.upload(hostTensor(Int32Array.from({ length: rows }, (_, i) => i))));
      if (r.normEmbeddings) {
        const norm = this.refs.slots.get('rel_norm');
        if (norm === undefined) throw new TpError('unsupported-model', `${ops.graph.title}: norm_rel_ebd asks for a LayerNorm of the relative embeddings, but the checkpoint has no encoder.LayerNorm`);
        e = ops.norm(e, norm);
      }
      for (const { refs, self } of layers) {
        const position = refs.attention.get(POSITION_GROUP);
        const source = (shared: WeightRef | undefined, own: WeightRef | undefined, what: string) => {
          const ref = r.sharedKeys ? shared : own;
          if (ref === undefined) throw new TpError('unsupported-model', `layer ${refs.index} of ${ops.graph.title} has no ${what} projection for its relative attention`);
          return ref;
        };
        const project = async (ref: WeightRef) => this.ownHeads(await linear(rank, e, ops.weight(ref)), ref.weight, self);
        const entry: { keys?: Float32Array; queries?: Float32Array } = {};
        if (r.c2p) entry.keys = (await rank.download(await project(source(self.refs.k, position?.k, 'position key')))) as Float32Array;
        if (r.p2c) entry.queries = (await rank.download(await project(source(self.refs.q, position?.q, 'position query')))) as Float32Array;
        out.push(entry);
      }
    } finally {
      await rank.endStep();
    }
    return out;
  }

  /**
   * The columns of a projected table that belong to the heads this rank's attention computes. The
   * position projections are split by heads like the attention itself (their own group, same head
   * count), so this is normally every column; a policy that replicates one of them is sliced here.
   */
  private ownHeads(projected: DeviceTensor, weight: TensorPlan, a: AttentionRuntime): DeviceTensor {
    const { headDim, heads } = a.spec;
    const [lo, hi] = outputRows(weight, this.rank.rank);
    const share = this.ops.plan.attention.find((x) => x.group === a.refs.group)?.ranks[this.rank.rank];
    const first = share ? share.q[0] : 0;
    const start = first * headDim - lo;
    const end = start + heads * headDim;
    if (start < 0 || end > hi - lo) {
      throw new TpError('unsupported-model', `${weight.name} holds output rows [${lo}, ${hi}) on rank ${this.rank.rank}, which do not cover that rank's attention heads [${first}, ${first + heads}); split it with the attention heads`);
    }
    return start === 0 && end === hi - lo ? projected : this.rank.sliceColumns(projected, start, end);
  }
}

/** The rows of a [out, in] weight (its output features) one rank holds, as one range. */
function outputRows(w: TensorPlan, rank: number): [number, number] {
  if (w.split === 'replicate') return [0, w.shape[0]!];
  const ranges = w.ranks[rank]?.ranges ?? [];
  if (w.split !== 'column' || w.dim !== 0 || ranges.length !== 1) {
    throw new TpError('unsupported-model', `${w.name} is split ${w.split} on dim ${w.dim} in ${ranges.length} pieces; a position projection runs replicated or column-split by whole heads only`);
  }
  return [ranges[0]![0], ranges[0]![1]];
}

const withSpec = (a: AttentionRuntime, extra: Partial<AttentionSpec>): AttentionRuntime => ({ ...a, spec: { ...a.spec, ...extra } });
