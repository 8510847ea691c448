/**
 * A plan is runnable or refused: these checks run inside `planTensorParallel`, so a plan that comes
 * back can be loaded and run, and a policy the engine cannot run is refused at planning time, naming
 * the weight, the weight it depends on and what to change.
 *
 * The engine's dataflow (runtime/linear.ts): every sub-layer reads the hidden state whole on every
 * rank. Its producers (q/k/v, up/gate) multiply that whole input, so they are column-parallel (each
 * rank makes its own heads or features) or replicated (every rank makes all of them); a sub-layer's
 * producers agree with each other. Its consumer (o_proj, down_proj) writes the hidden state back:
 * row-parallel (partial sums, all-reduced) when its producers are split — taking exactly the features
 * they leave on each rank — and replicated when they are whole. Embeddings are whole or split by
 * vocabulary, the LM head by hidden or vocabulary; norms, routers and everything else stay whole.
 */
import { PlanError } from '../errors/index.js';
import { genericName, type ModelGraph, type Role, type WeightNode } from '../graph/index.js';
import type { SplitKind } from './policy.js';
import { mergeRanges, type Range } from './split.js';

/** A split the engine cannot run: `weight` is refused because of `producer`; `fix` says what to change. */
export class SplitMismatchError extends PlanError {
  /** The weight `weight` depends on (its producer, or the sibling it disagrees with); undefined when none is involved. */
  readonly producer: string | undefined;
  /** What to change, in policy terms. */
  readonly fix: string;

  constructor(fields: { weight: string; producer?: string; detail: string; fix: string }) {
    super('split-mismatch', { weight: fields.weight, detail: `${fields.detail}. Fix: ${fields.fix}` });
    this.name = 'SplitMismatchError';
    this.producer = fields.producer;
    this.fix = fields.fix;
  }
}

/** What the planner decided for a weight, as the checks read it. */
export interface SplitChoice {
  readonly split: SplitKind;
  readonly decidedBy: string;
  /** Kept whole for a cross-head norm, then sliced by head: counts as split by heads. */
  readonly sliceAfterNorm?: boolean;
  /** When a policy decided it: which form, and the entry (a block for DeepSpeed). */
  readonly policy?: { source: 'tp_plan' | 'deepspeed'; pattern: string };
}

const PRODUCERS = new Set<Role>(['attn.q', 'attn.k', 'attn.v', 'attn.qk', 'attn.qkv', 'attn.head_param', 'rel_bias', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up']);
const CONSUMERS = new Set<Role>(['attn.out', 'mlp.down', 'moe.expert.down']);

const modulePathOf = (w: WeightNode) => (w.param === w.name ? w.name : w.name.slice(0, -(w.param.length + 1)));
const isBias = (w: WeightNode) => w.param !== 'weight' && w.param !== w.name && w.shape.length === 1;
/** `self_attn.o_proj` for `model.layers.3.self_attn.o_proj.weight`. */
const relativeModule = (w: WeightNode) => (w.block ? modulePathOf(w).slice(w.block.list.length + 1).replace(/^\d+\./, '') : modulePathOf(w));

/** How to make `w` take `want`, in the words of the policy form that decided it. */
function fixTo(w: WeightNode, d: SplitChoice, want: 'row' | 'column' | 'replicate' | 'vocab' | 'replicate or vocab'): string {
  const style = { row: '"rowwise"', column: '"colwise"', replicate: '"replicated"', vocab: '"embedding_rowwise"', 'replicate or vocab': '"replicated" or "embedding_rowwise"' }[want];
  const module = genericName(modulePathOf(w));
  if (d.policy?.source === 'deepspeed') {
    const rel = relativeModule(w);
    if (want === 'row') return `list "${rel}" among the row-parallel linears of "${d.policy.pattern}"`;
    if (want === 'column') return `remove "${rel}" from the row-parallel linears of "${d.policy.pattern}"`;
    return `leave "${rel}" out of the DeepSpeed policy's blocks, or give it the tp_plan style ${style}`;
  }
  if (d.policy?.source === 'tp_plan') return `give "${module}" the style ${style} instead (policy entry "${d.policy.pattern}")`;
  return `give "${module}" the style ${style} in the policy`;
}

const word = (split: SplitKind) => (split === 'replicate' ? 'replicated' : split === 'vocab' ? 'split by vocabulary' : `${split}-parallel`);

/**
 * Before any range is computed: every weight's split is one its role allows, producers of a sub-layer
 * agree, and every consumer matches its producers (row when they are split, replicated when whole).
 */
export function checkSplits(graph: ModelGraph, decisions: ReadonlyMap<string, SplitChoice>): void {
  const weights = graph.weights.filter((w) => !isBias(w) && w.role !== 'buffer');
  const headName = graph.lmHead?.tensor ?? graph.lmHead?.embed;
  const lmHead = weights.find((w) => w.name === headName);
  const lmHeadSplit = lmHead ? decisions.get(lmHead.name)!.split : undefined;

  // 1. Splits each role allows.
  for (const w of weights) {
    const d = decisions.get(w.name)!;
    const s = d.split;
    if (PRODUCERS.has(w.role)) {
      if (s === 'row' || s === 'vocab') {
        throw new SplitMismatchError({
          weight: w.name,
          detail: `it is ${word(s)} (${d.decidedBy}), but it multiplies the hidden state every rank holds whole, so only a column split (by ${w.role.startsWith('attn') || w.role === 'rel_bias' ? 'heads' : 'features'}) or none can run`,
          fix: fixTo(w, d, 'column'),
        });
      }
    } else if (CONSUMERS.has(w.role)) {
      if (s === 'column' || s === 'vocab') {
        throw new SplitMismatchError({
          weight: w.name,
          detail: `it is ${word(s)} (${d.decidedBy}), but it writes the hidden state back, which every rank needs whole: it must be row-parallel (partial sums, all-reduced) or replicated`,
          fix: fixTo(w, d, 'row'),
        });
      }
    } else if (w.role === 'embed') {
      if (s !== 'replicate' && s !== 'vocab') {
        throw new SplitMismatchError({ weight: w.name, detail: `it is ${word(s)} (${d.decidedBy}), but an embedding table is looked up whole or split by vocabulary`, fix: fixTo(w, d, 'replicate or vocab') });
      }
    } else if (w.role === 'lm_head') {
      if (s === 'column') throw new SplitMismatchError({ weight: w.name, detail: `it is column-parallel (${d.decidedBy}); an LM head is split by hidden (row), by vocabulary or not at all`, fix: fixTo(w, d, 'vocab') });
    } else if (w.role === 'vocab_bias') {
      if ((s === 'vocab') !== (lmHeadSplit === 'vocab')) {
        throw new SplitMismatchError({
          weight: w.name,
          ...(lmHead ? { producer: lmHead.name } : {}),
          detail: `it is ${word(s)} (${d.decidedBy}) but the LM head is ${lmHeadSplit === undefined ? 'not stored' : word(lmHeadSplit)}: a vocabulary bias is split by vocabulary exactly when the LM head is`,
          fix: fixTo(w, d, lmHeadSplit === 'vocab' ? 'vocab' : 'replicate'),
        });
      }
    } else if (s !== 'replicate') {
      throw new SplitMismatchError({
        weight: w.name,
        detail: `it is ${word(s)} (${d.decidedBy}), but a ${w.role} weight is applied to the whole hidden state on every rank`,
        fix: fixTo(w, d, 'replicate'),
      });
    }
  }

  // 2. Producers agree: the heads of one attention (in every layer: the engine keeps one head
  //    assignment per attention) and the features of one MLP.
  const isSplit = (w: WeightNode) => {
    const d = decisions.get(w.name)!;
    return d.split === 'column' || d.sliceAfterNorm === true;
  };
  const first = new Map<string, WeightNode>();
  const producerKey = (w: WeightNode) => (w.attention !== undefined ? `attention:${w.attention}` : `mlp:${w.group}`);
  for (const w of weights) {
    if (!PRODUCERS.has(w.role)) continue;
    const key = producerKey(w);
    const seen = first.get(key);
    if (seen === undefined) {
      first.set(key, w);
      continue;
    }
    if (isSplit(seen) !== isSplit(w)) {
      const [whole, split] = isSplit(seen) ? [w, seen] : [seen, w];
      const what = w.attention !== undefined ? `attention "${w.attention}" (in every layer: one head assignment serves them all)` : 'this MLP';
      throw new SplitMismatchError({
        weight: whole.name,
        producer: split.name,
        detail: `it is replicated (${decisions.get(whole.name)!.decidedBy}) but ${split.name} is split (${decisions.get(split.name)!.decidedBy}); the projections of ${what} must be split alike`,
        fix: `${fixTo(whole, decisions.get(whole.name)!, 'column')}, or replicate ${split.name} and the rest of its group too`,
      });
    }
  }

  // 3. Consumers match their producers.
  for (const w of weights) {
    if (!CONSUMERS.has(w.role)) continue;
    const producer = first.get(w.attention !== undefined ? `attention:${w.attention}` : `mlp:${w.group}`);
    if (producer === undefined) continue;
    const d = decisions.get(w.name)!;
    const split = isSplit(producer);
    if (split && d.split !== 'row') {
      throw new SplitMismatchError({
        weight: w.name,
        producer: producer.name,
        detail: `it is replicated (${d.decidedBy}), but ${producer.name} is split (${decisions.get(producer.name)!.decidedBy}), so each rank holds only its share of this weight's input: it must be row-parallel`,
        fix: `${fixTo(w, d, 'row')}, or replicate ${genericName(modulePathOf(producer))} and its siblings too`,
      });
    }
    if (!split && d.split === 'row') {
      throw new SplitMismatchError({
        weight: w.name,
        producer: producer.name,
        detail: `it is row-parallel (${d.decidedBy}), but ${producer.name} is replicated (${decisions.get(producer.name)!.decidedBy}), so every rank holds this weight's whole input: it must be replicated too`,
        fix: `${fixTo(w, d, 'replicate')}, or make ${genericName(modulePathOf(producer))} and its siblings column-parallel`,
      });
    }
  }
}

/** One side of a producer → consumer pair, in heads or features, per rank. */
export interface PairSide {
  group: string;
  side: 'producer' | 'consumer';
  unit: 'head' | 'feature';
  ranks: Range[][];
  tensor: string;
}

/** Every row-parallel consumer receives exactly the split its column-parallel producers leave, rank by rank. */
export function checkPairs(sides: readonly PairSide[]): void {
  const groups = new Map<string, PairSide[]>();
  for (const l of sides) {
    const list = groups.get(l.group) ?? [];
    list.push(l);
    groups.set(l.group, list);
  }
  for (const list of groups.values()) {
    const producers = list.filter((l) => l.side === 'producer');
    const consumers = list.filter((l) => l.side === 'consumer');
    for (const c of consumers) {
      for (const p of producers) {
        for (let r = 0; r < c.ranks.length; r++) {
          const a = JSON.stringify(mergeRanges(p.ranks[r]!));
          const b = JSON.stringify(mergeRanges(c.ranks[r]!));
          if (a !== b) {
            throw new SplitMismatchError({
              weight: c.tensor,
              producer: p.tensor,
              detail: `on rank ${r} it takes ${c.unit}s ${b} but ${p.tensor} leaves ${c.unit}s ${a}; a row-parallel weight must take exactly the split its producer leaves on each rank`,
              fix: 'split both by the same heads or features: give the consumer "rowwise" and its producers "colwise", or replicate all of them',
            });
          }
        }
      }
    }
  }
}

/** Every rank's ranges lie inside the split dimension, in order, and build the local shape it states. */
export function checkRanges(tensors: ReadonlyArray<{ name: string; shape: readonly number[]; dim: number; decidedBy: string; ranks: ReadonlyArray<{ ranges: readonly Range[]; shape: readonly number[] }> }>): void {
  for (const t of tensors) {
    if (t.shape.length === 0) continue;
    const size = t.shape[t.dim];
    t.ranks.forEach((slice, r) => {
      const bad = size === undefined ? slice.ranges[0] : slice.ranges.find(([s, e]) => !Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > size || s >= e);
      const length = slice.ranges.reduce((n, [s, e]) => n + (e - s), 0);
      if (bad !== undefined || slice.shape[t.dim] !== length) {
        throw new SplitMismatchError({
          weight: t.name,
          detail: `rank ${r} would read ${bad ? `[${bad[0]}, ${bad[1]})` : `${length} entries`} of dimension ${t.dim}, whose size is ${size ?? 'none'} (${t.decidedBy})`,
          fix: 'this weight cannot be split this way: replicate it, or split it as its role says (tp plan without a policy shows the automatic split)',
        });
      }
    });
  }
}
