/**
 * planTensorParallel: from a ModelGraph to a TPPlan. Roles decide the split kind (a user policy may
 * override it), head assignments and width splits decide the ranges, fused layouts map heads to rows,
 * and every column split feeding a row-parallel weight is checked to equal that weight's input split.
 */
import type { StorageDtype } from '../backend/index.js';
import { bytesPerElement } from '../checkpoint/index.js';
import { ArgumentError, InternalError, PlanError, ShapeError } from '../errors/index.js';
import { featureAxis, genericName, isAttentionRole, type ModelGraph, type Role, type WeightNode } from '../graph/index.js';
import { codegenLocalBlocks, codegenProblem, fusedHeadWidth, fusedQkvRanges, gateUpRanges, qkvRowOrder, yuanProblem, yuanValueHeads } from './layouts.js';
import { applyPolicy, parsePolicy, type Policy, type PolicyDecision, type SplitKind } from './policy.js';
import { assignHeads, headSplitProblem, headsToFeatures, mergeRanges, rangeLength, splitWidth, type HeadAssignment, type Range } from './split.js';
import { checkPairs, checkRanges, checkSplits, type PairSide } from './validate.js';
import { isFloatWeightDtype, kvStorageDtype, parseStorageRequest, parseSupportedStorage, storageBytes, storageDtypeFor, type StorageRequest } from './storage.js';
import { PLAN_FORMAT_VERSION, type AttentionPlan, type LmHeadPlan, type RankSlice, type RankSummary, type TPPlan, type TensorPlan } from './types.js';

export interface PlanOptions {
  tpSize: number;
  /** A parsed policy, or the raw JSON of one (DeepSpeed injection policy or HF tp_plan). */
  policy?: Policy | unknown;
  /** Split embeddings and the LM head by vocabulary (logits all-gathered). Default: split the LM head by hidden. */
  vocabParallel?: boolean;
  /** Split MLP and vocabulary widths in multiples of this (shrunk when it would not fit). Default 64. */
  grain?: number;
  /**
   * What the matrices are stored as on the device (parameter memory): `auto` (default) keeps each
   * matrix's checkpoint dtype when `supportedStorage` has it (F64 → f32) and widens to f32 otherwise;
   * an explicit dtype converts every matrix, except bf16 → f16, which is refused. Vectors (norm
   * weights, biases) are held as f32 whatever is asked. See `storageDtypeFor`.
   */
  storageDtype?: StorageRequest;
  /** The KV cache's dtype (KV bytes per token). Default f32. */
  kvDtype?: StorageDtype;
  /** The storage dtypes the backend declares for weights (`Backend.storageDtypes`). Default: f32, f16 and bf16. */
  supportedStorage?: readonly StorageDtype[];
  /** What `auto` holds each stored dtype as, where the backend prefers another (Backend.autoStorage). */
  autoStorage?: Readonly<Partial<Record<StorageDtype, StorageDtype>>>;
  /** The dtypes the backend's KV cache takes (`Backend.kvDtypes`). Default: f32, f16 and bf16. */
  supportedKv?: readonly StorageDtype[];
  /**
   * Activations and accumulation are always f32; kept so older callers that pass `'F32'` still work.
   * Anything else is refused (ask for a storage dtype instead).
   */
  computeDtype?: 'f32' | 'F32';
}

const COLUMN_ROLES = new Set<Role>(['attn.q', 'attn.k', 'attn.v', 'attn.qk', 'attn.qkv', 'attn.head_param', 'rel_bias', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up']);
const ROW_ROLES = new Set<Role>(['attn.out', 'mlp.down', 'moe.expert.down']);
const Q_ROLES = new Set<Role>(['attn.q', 'attn.qk', 'attn.qkv']);
const MLP_PRODUCERS = new Set<Role>(['mlp.up', 'mlp.gate', 'mlp.gate_up', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up']);
const MAX_TP = 1024;

interface Decision {
  split: SplitKind;
  decidedBy: string;
  /** Producers kept whole so a cross-head norm can run, then sliced by head. */
  sliceAfterNorm?: boolean;
  /** The policy entry that decided it, if any. */
  policy?: { source: 'tp_plan' | 'deepspeed'; pattern: string };
}

/** What a split tensor means in model terms, for checking producers against consumers. */
type Logical = PairSide;

export function planTensorParallel(graph: ModelGraph, options: PlanOptions): TPPlan {
  const tp = options.tpSize;
  if (!Number.isInteger(tp) || tp < 1 || tp > MAX_TP) {
    throw new ArgumentError({ argument: 'tpSize', detail: `must be an integer from 1 to ${MAX_TP}, got ${tp}` });
  }
  const grain = options.grain ?? 64;
  if (!Number.isInteger(grain) || grain < 1) throw new ArgumentError({ argument: 'grain', detail: `must be a positive integer, got ${grain}` });
  const vocabParallel = options.vocabParallel ?? false;
  if (options.computeDtype !== undefined && String(options.computeDtype).toLowerCase() !== 'f32') {
    throw new ArgumentError({
      argument: 'computeDtype',
      detail: `activations and accumulation are always f32, got ${JSON.stringify(options.computeDtype)}; to hold the weights as f16 or bf16, set storageDtype`,
    });
  }
  const storageDtype = parseStorageRequest(options.storageDtype ?? 'auto');
  const supportedStorage = parseSupportedStorage(options.supportedStorage);
  const kvDtype = kvStorageDtype(options.kvDtype ?? 'f32', options.supportedKv);
  const warnings = [...graph.warnings];

  const policy = options.policy === undefined ? undefined : isPolicy(options.policy) ? options.policy : parsePolicy(options.policy);
  const overrides = policy ? applyPolicy(graph, policy, warnings) : new Map<string, PolicyDecision>();

  // 1. The split kind of every weight (biases follow their weight).
  const decisions = decideSplits(graph, overrides, vocabParallel);
  // Refuse, before any range exists, a split the engine cannot run (validate.ts).
  checkSplits(graph, decisions);

  // 2. Head constraints for every attention group that is split, and the tp values that pass them.
  const constraints = headConstraints(graph, decisions);
  const validTp = () => Array.from({ length: 64 }, (_, i) => i + 1).filter((t) => constraints.every((c) => c.problem(t) === undefined));
  for (const c of constraints) {
    const problem = c.problem(tp);
    if (problem !== undefined) throw new PlanError('indivisible', { weight: c.what, detail: `${problem}.`, validTp: validTp() });
  }
  const heads = new Map<string, HeadAssignment>();
  const headsOf = (group: string): HeadAssignment => {
    let a = heads.get(group);
    if (a === undefined) {
      const g = graph.geometry.attention[group];
      if (g === undefined) throw new InternalError(`attention group ${group} has no geometry`);
      a = assignHeads(g.heads, g.kvHeads, tp, `attention (${group})`, validTp);
      heads.set(group, a);
    }
    return a;
  };

  // 3. Ranges.
  const widths = mlpWidths(graph);
  const vocabCache = new Map<number, Range[]>();
  const vocabRanges = (width: number, what: string) => {
    let r = vocabCache.get(width);
    if (r === undefined) vocabCache.set(width, (r = splitWidth(width, tp, grain, what)));
    return r;
  };
  const logical: Logical[] = [];
  const tensors: TensorPlan[] = [];
  for (const w of graph.weights) {
    const d = decisions.get(w.name)!;
    const { dim, ranges } = rangesFor(w, d, { tp, grain, graph, headsOf, widths, vocabRanges, logical });
    const read = w.role !== 'buffer';
    const storage = read && isFloatWeightDtype(w.dtype) ? storageDtypeFor(w, storageDtype, supportedStorage, options.autoStorage) : undefined;
    const ranks: RankSlice[] = ranges.map((r) => {
      const shape = w.shape.length === 0 ? [] : [...w.shape];
      if (shape.length > 0) shape[dim] = rangeLength(r);
      const elements = shape.reduce((a, b) => a * b, 1);
      return { ranges: r, shape, bytes: read ? elements * bytesPerElement(w.dtype) : 0 };
    });
    tensors.push({
      name: w.name,
      shape: w.shape,
      dtype: w.dtype,
      ...(storage !== undefined ? { storage } : {}),
      role: w.role,
      split: d.split,
      dim,
      ranks,
      rule: w.rule,
      decidedBy: d.decidedBy,
      ...(w.layout ? { layout: w.layout } : {}),
      ...(w.transposed ? { transposed: true as const } : {}),
      after: collectiveAfter(w, d.split),
      read,
      ...(w.note ? { note: w.note } : d.sliceAfterNorm ? { note: 'computed whole, sliced by head after the cross-head norm' } : {}),
    });
  }
  checkPairs(logical);
  checkRanges(tensors);

  const attention = attentionPlans(graph, decisions, headsOf);
  addQkvRowOrders(graph, tensors, attention, tp);
  const lmHead = lmHeadPlan(graph, tensors, vocabParallel, tp, grain);
  const rankSummaries = summarizeRanks(graph, tensors, tp, kvDtype, headsOf, decisions);
  const unshardedKv = kvCachedModules(graph).reduce((n, m) => n + graph.geometry.attention[m.attention]!.kvHeads * m.widthPerKvHead * storageBytes(kvDtype), 0);
  const byteLength = new Map(graph.weights.map((w) => [w.name, w.byteLength]));
  const readTensors = tensors.filter((t) => t.read);
  const unshardedBytes = readTensors.reduce((n, t) => n + byteLength.get(t.name)!, 0);
  // storageDtypes names what the matrices are held as; vectors are f32 (see storageDtypeFor) and
  // listing them would make every BF16 checkpoint read as "bf16, f32".
  const storageTotals = new Map<StorageDtype, number>();
  let unshardedParams = 0;
  for (const t of readTensors) {
    const bytes = paramBytesOf(t, t.shape, byteLength.get(t.name)!);
    unshardedParams += bytes;
    if (t.storage !== undefined && t.shape.length >= 2) storageTotals.set(t.storage, (storageTotals.get(t.storage) ?? 0) + bytes);
  }
  const storageDtypes = [...storageTotals].sort((a, b) => b[1] - a[1]).map(([d]) => d);

  return {
    formatVersion: PLAN_FORMAT_VERSION,
    tpSize: tp,
    options: { vocabParallel, grain, computeDtype: 'f32', storageDtype, supportedStorage, kvDtype, policy: policy !== undefined },
    model: {
      modelType: graph.modelType,
      family: graph.family,
      title: graph.title,
      kind: graph.kind,
      architectures: graph.architectures,
      dtype: graph.dtype,
    },
    storageDtypes,
    geometry: graph.geometry,
    attention,
    lmHead,
    tensors: tensors.sort((a, b) => naturalCompare(a.name, b.name)),
    allReduces: allReducePoints(graph, tensors),
    ranks: rankSummaries,
    totals: { bytes: unshardedBytes, paramBytes: unshardedParams, kvCacheBytesPerToken: unshardedKv },
    warnings,
    notes: [...graph.notes, ...(codegenNote(graph, tp) ?? [])],
  };
}

/**
 * Fused q/k/v weights: each rank's row permutation to [Q; K; V] (`RankSlice.rowOrder`), from the heads
 * its slice holds — computed here so the loader applies it without re-deriving head counts.
 */
function addQkvRowOrders(graph: ModelGraph, tensors: TensorPlan[], attention: readonly AttentionPlan[], tp: number): void {
  const byName = new Map(graph.weights.map((w) => [w.name, w]));
  tensors.forEach((t, i) => {
    const w = byName.get(t.name)!;
    if (w.role !== 'attn.qkv' || w.layout === undefined || !t.read) return;
    const group = w.attention ?? 'self';
    const plan = attention.find((a) => a.group === group);
    const geometry = graph.geometry.attention[group]!;
    const all = plan ?? { heads: geometry.heads, kvHeads: geometry.kvHeads };
    tensors[i] = {
      ...t,
      ranks: t.ranks.map((slice, r) => {
        const share = plan === undefined || t.split === 'replicate' ? undefined : plan.ranks[r]!;
        // The fused rows: dim 0 of the loaded tensor (a Conv1D matrix is transposed first; a bias is 1-D).
        const rows = slice.shape.length === 2 && w.transposed ? slice.shape[1]! : slice.shape[0]!;
        return { ...slice, rowOrder: qkvRowOrder(w.layout!, rows, share, all, tp) };
      }),
    };
  });
}

const word = (split: SplitKind) => (split === 'vocab' ? 'split by vocabulary' : split === 'row' ? 'split by hidden' : split);

function isPolicy(p: unknown): p is Policy {
  return typeof p === 'object' && p !== null && Array.isArray((p as Policy).tpPlan) && Array.isArray((p as Policy).deepspeed);
}

const modulePathOf = (w: WeightNode) => (w.param === w.name ? w.name : w.name.slice(0, -(w.param.length + 1)));
const isBias = (w: WeightNode) => w.param !== 'weight' && w.param !== w.name && w.shape.length === 1;

function decideSplits(graph: ModelGraph, overrides: Map<string, PolicyDecision>, vocabParallel: boolean): Map<string, Decision> {
  const decisions = new Map<string, Decision>();
  const crossNormGroups = new Set(graph.weights.filter((w) => w.role === 'attn.cross_head_norm').map((w) => w.group));
  const tiedShared = graph.lmHead?.tied === true ? graph.lmHead.embed : undefined;
  const byModule = new Map<string, Decision>();

  const roleDefault = (w: WeightNode): Decision => {
    if (crossNormGroups.has(w.group) && (Q_ROLES.has(w.role) || w.role === 'attn.k')) {
      return { split: 'replicate', decidedBy: 'attention heads (kept whole for the cross-head norm)', sliceAfterNorm: true };
    }
    if (COLUMN_ROLES.has(w.role)) return { split: 'column', decidedBy: isAttentionRole(w.role) ? 'attention heads' : 'mlp width' };
    if (ROW_ROLES.has(w.role)) return { split: 'row', decidedBy: isAttentionRole(w.role) ? 'attention heads' : 'mlp width' };
    if (w.role === 'embed' || (w.role === 'lm_head' && w.name === tiedShared)) {
      return vocabParallel ? { split: 'vocab', decidedBy: 'vocab-parallel embedding' } : { split: 'replicate', decidedBy: 'embedding (whole on every rank)' };
    }
    if (w.role === 'lm_head') {
      if (vocabParallel) return { split: 'vocab', decidedBy: 'vocab-parallel LM head (logits all-gathered)' };
      return w.shape.length === 2 ? { split: 'row', decidedBy: 'LM head split by hidden (logits all-reduced)' } : { split: 'replicate', decidedBy: 'LM head bias (added after the reduce)' };
    }
    if (w.role === 'vocab_bias') {
      return vocabParallel ? { split: 'vocab', decidedBy: 'vocabulary bias follows the LM head' } : { split: 'replicate', decidedBy: 'vocabulary bias (added after the reduce)' };
    }
    return { split: 'replicate', decidedBy: w.role === 'buffer' ? 'buffer (recomputed, not read)' : `${w.role} (replicated)` };
  };

  // Weights first, so biases can follow their module's weight.
  const ordered = [...graph.weights].sort((a, b) => Number(isBias(a)) - Number(isBias(b)));
  for (const w of ordered) {
    const module = modulePathOf(w);
    const parent = isBias(w) ? byModule.get(module) : undefined;
    let d: Decision;
    if (parent !== undefined) {
      // column: bias split like the output features; row: the full bias is added once after the reduce
      d = parent.split === 'row' ? { split: 'replicate', decidedBy: 'bias of a row-parallel weight (added once after the all-reduce)' } : { ...parent };
    } else {
      const o = overrides.get(w.name);
      d = o !== undefined && w.role !== 'buffer' ? { split: o.split, decidedBy: o.reason, policy: { source: o.source, pattern: o.pattern } } : roleDefault(w);
      // Hugging Face's colwise on lm_head (its own plans say "colwise_rep") splits the vocabulary.
      if (o !== undefined && w.role === 'lm_head' && o.split === 'column' && w.shape.length === 2) d = { ...d, split: 'vocab', decidedBy: `${o.reason} (an LM head split by output rows is vocab-parallel)` };
      if (o !== undefined && w.role === 'attn.cross_head_norm' && o.split !== 'replicate') {
        throw new PlanError('split-mismatch', { weight: w.name, detail: 'a norm over all heads must stay whole (replicate)' });
      }
    }
    if (!isBias(w)) byModule.set(module, d);
    decisions.set(w.name, d);
  }
  // A vocabulary bias follows the LM head a policy split, unless the policy decided it too.
  const headName = graph.lmHead?.tensor ?? graph.lmHead?.embed;
  const headSplit = headName !== undefined ? decisions.get(headName)?.split : undefined;
  for (const w of graph.weights) {
    if (w.role !== 'vocab_bias' || overrides.has(w.name) || headSplit === undefined) continue;
    const split: SplitKind = headSplit === 'vocab' ? 'vocab' : 'replicate';
    if (decisions.get(w.name)!.split !== split) decisions.set(w.name, { split, decidedBy: `vocabulary bias follows the LM head (${word(headSplit)})` });
  }
  return decisions;
}

interface Constraint {
  what: string;
  problem: (tp: number) => string | undefined;
}

function headConstraints(graph: ModelGraph, decisions: Map<string, Decision>): Constraint[] {
  const out: Constraint[] = [];
  const splitGroups = new Set<string>();
  const layouts = new Map<string, Set<string>>();
  for (const w of graph.weights) {
    if (w.attention === undefined) continue;
    const d = decisions.get(w.name)!;
    if (d.split !== 'replicate' || d.sliceAfterNorm) splitGroups.add(w.attention);
    if (w.layout) {
      const set = layouts.get(w.attention) ?? new Set();
      set.add(w.layout);
      layouts.set(w.attention, set);
    }
  }
  for (const group of splitGroups) {
    const g = graph.geometry.attention[group]!;
    const what = `attention${group === 'self' ? '' : ` (${group})`}`;
    out.push({ what, problem: (tp) => headSplitProblem(g.heads, g.kvHeads, tp) });
    if (layouts.get(group)?.has('qkv-codegen')) out.push({ what: `${what} qkv_proj`, problem: (tp) => codegenProblem(g.heads, tp) });
    if (layouts.get(group)?.has('yuan-v')) out.push({ what: `${what} v_proj/o_proj`, problem: (tp) => yuanProblem(g.heads, tp) });
  }
  return out;
}

/** MLP widths per group: the producers' output width (each half, for [gate; up]). */
function mlpWidths(graph: ModelGraph): Map<string, number> {
  const widths = new Map<string, { width: number; from: WeightNode }>();
  for (const w of graph.weights) {
    if (!MLP_PRODUCERS.has(w.role) || isBias(w) || w.shape.length < 2) continue;
    const size = w.shape[featureAxis(w, 'out')]!;
    const width = w.role.endsWith('gate_up') ? size / 2 : size;
    const seen = widths.get(w.group);
    if (seen === undefined) widths.set(w.group, { width, from: w });
    else if (seen.width !== width) {
      const expected = [...w.shape];
      expected[featureAxis(w, 'out')] = w.role.endsWith('gate_up') ? 2 * seen.width : seen.width;
      throw new ShapeError({ tensor: w.name, expected, actual: w.shape, why: `its sibling ${seen.from.name} (MLP width ${seen.width})` });
    }
  }
  for (const w of graph.weights) {
    if ((w.role === 'mlp.down' || w.role === 'moe.expert.down') && !isBias(w) && w.shape.length >= 2) {
      const size = w.shape[featureAxis(w, 'in')]!;
      const seen = widths.get(w.group);
      if (seen === undefined) widths.set(w.group, { width: size, from: w });
      else if (seen.width !== size) {
        const expected = [...w.shape];
        expected[featureAxis(w, 'in')] = seen.width;
        throw new ShapeError({ tensor: w.name, expected, actual: w.shape, why: `the MLP width of ${seen.from.name} (${seen.width})` });
      }
    }
  }
  return new Map([...widths].map(([k, v]) => [k, v.width]));
}

interface RangeContext {
  tp: number;
  grain: number;
  graph: ModelGraph;
  headsOf: (group: string) => HeadAssignment;
  widths: Map<string, number>;
  vocabRanges: (width: number, what: string) => Range[];
  logical: Logical[];
}

const whole = (size: number, tp: number): Range[][] => Array.from({ length: tp }, () => [[0, size]]);

function rangesFor(w: WeightNode, d: Decision, ctx: RangeContext): { dim: number; ranges: Range[][] } {
  const { tp } = ctx;
  const bias = isBias(w);
  const outAxis = bias ? 0 : (w.headAxis ?? featureAxis(w, 'out'));
  const inAxis = w.headAxis ?? featureAxis(w, 'in');

  if (d.split === 'replicate') {
    if (!bias && w.attention !== undefined && (Q_ROLES.has(w.role) || ROW_ROLES.has(w.role))) {
      const a = ctx.headsOf(w.attention);
      const side = ROW_ROLES.has(w.role) ? 'consumer' : 'producer';
      ctx.logical.push({
        group: w.group,
        side,
        unit: 'head',
        ranks: d.sliceAfterNorm ? a.ranks.map((r) => [r.q]) : whole(a.heads, tp),
        tensor: w.name,
      });
    } else if (!bias && (MLP_PRODUCERS.has(w.role) || ROW_ROLES.has(w.role)) && ctx.widths.has(w.group)) {
      const width = ctx.widths.get(w.group)!;
      ctx.logical.push({ group: w.group, side: ROW_ROLES.has(w.role) ? 'consumer' : 'producer', unit: 'feature', ranks: whole(width, tp), tensor: w.name });
    }
    return { dim: 0, ranges: whole(w.shape[0] ?? 1, tp) };
  }

  if (d.split === 'vocab') {
    const dim = w.shape.length === 2 && w.shape[0] === 1 ? 1 : 0; // final_logits_bias is [1, V]
    return { dim, ranges: ctx.vocabRanges(w.shape[dim]!, w.name).map((r) => [r]) };
  }

  const isRow = d.split === 'row';
  const axis = isRow ? inAxis : outAxis;
  const size = w.shape[axis]!;

  // Attention weights follow heads.
  if (w.attention !== undefined && (isRow ? w.role === 'attn.out' : COLUMN_ROLES.has(w.role))) {
    const a = ctx.headsOf(w.attention);
    const headUnits = w.headAxis !== undefined && !bias;
    const perHead = (n: number) => {
      if (headUnits) return 1;
      if (size % n !== 0) throw new PlanError('indivisible', { weight: w.name, detail: `dimension ${axis} (${size}) is not a whole number of heads (${n})` });
      return size / n;
    };
    let ranges: Range[][];
    if (w.role === 'attn.qkv') {
      ranges = a.ranks.map((share, r) => fusedQkvRanges(w.layout ?? 'qkv-concat', { size, heads: a, name: w.name }, share, r, tp));
    } else if (w.layout === 'yuan-v') {
      const width = perHead(a.heads);
      ranges = a.ranks.map((_, r) => mergeRanges(yuanValueHeads(a.heads, tp, r).map((h) => headsToFeatures(h, width))));
    } else if (w.role === 'attn.k' || w.role === 'attn.v') {
      const width = perHead(a.kvHeads);
      ranges = a.ranks.map((s) => [headsToFeatures(s.kv, width)]);
    } else {
      const width = perHead(a.heads);
      ranges = a.ranks.map((s) => [headsToFeatures(s.q, width)]);
    }
    // What the attention output's consumer sees, in heads: the query heads — except in Yuan's
    // shared-QK attention, where the output heads are the rank's value heads (v pairs with o_proj,
    // and q/k are matched to them at run time).
    const yuan = w.layout === 'yuan-v' || w.layout === 'yuan-qk';
    const pairs = yuan ? w.layout === 'yuan-v' : Q_ROLES.has(w.role) || w.role === 'attn.out';
    if (!bias && pairs) {
      const heads = w.layout === 'yuan-v' ? a.ranks.map((_, r) => yuanValueHeads(a.heads, tp, r)) : a.ranks.map((s) => [s.q]);
      ctx.logical.push({
        group: w.group,
        side: w.role === 'attn.out' ? 'consumer' : 'producer',
        unit: 'head',
        ranks: w.role === 'attn.out' ? ranges.map((rs) => rs.map(([s0, e0]) => [s0 / perHead(a.heads), e0 / perHead(a.heads)] as Range)) : heads,
        tensor: w.name,
      });
    }
    return { dim: axis, ranges };
  }

  // MLP widths (dense, shared and routed experts).
  const width = ctx.widths.get(w.group);
  if (width !== undefined && (MLP_PRODUCERS.has(w.role) || w.role === 'mlp.down' || w.role === 'moe.expert.down')) {
    const split = splitWidth(width, tp, ctx.grain, w.name).map((r) => [r]);
    const ranges = w.role.endsWith('gate_up') ? split.map((half) => gateUpRanges(half, width)) : split;
    if (!bias) ctx.logical.push({ group: w.group, side: isRow ? 'consumer' : 'producer', unit: 'feature', ranks: split, tensor: w.name });
    return { dim: axis, ranges };
  }

  // Anything else a policy asked to split: near-even along the relevant axis.
  if (w.shape.length === 0) throw new PlanError('split-mismatch', { weight: w.name, detail: 'a scalar cannot be split' });
  return { dim: axis, ranges: splitWidth(size, tp, ctx.grain, w.name).map((r) => [r]) };
}

function collectiveAfter(w: WeightNode, split: SplitKind): TensorPlan['after'] {
  if (isBias(w) || w.role === 'vocab_bias') return null;
  if (split === 'row') return 'all-reduce';
  if (split === 'vocab') return w.role === 'lm_head' ? 'all-gather' : 'all-reduce';
  return null;
}

function attentionPlans(graph: ModelGraph, decisions: Map<string, Decision>, headsOf: (g: string) => HeadAssignment): AttentionPlan[] {
  const used = new Map<string, boolean>();
  for (const w of graph.weights) {
    if (w.attention === undefined) continue;
    const d = decisions.get(w.name)!;
    used.set(w.attention, (used.get(w.attention) ?? false) || d.split !== 'replicate' || d.sliceAfterNorm === true);
  }
  const out: AttentionPlan[] = [];
  for (const [group, split] of used) {
    const g = graph.geometry.attention[group];
    if (g === undefined || !split) continue;
    const a = headsOf(group);
    const { headDim, valueDim } = headWidths(graph, group);
    out.push({
      group,
      heads: g.heads,
      kvHeads: g.kvHeads,
      headDim: g.headDim,
      kvReplicated: a.kvReplicated,
      sliceAfterNorm: graph.weights.some((w) => w.attention === group && decisions.get(w.name)?.sliceAfterNorm === true),
      ranks: a.ranks.map((s) => ({ q: s.q, kv: s.kv, heads: s.q[1] - s.q[0], kvHeads: s.kv[1] - s.kv[0], headDim, valueDim })),
    });
  }
  return out;
}

/**
 * Widths of one query/key head and one value head of an attention group, from the unsharded
 * projections (heads are never cut, so every rank's heads have these widths): the query (or shared
 * query-key) projection's output features over the heads, the value projection's over the kv heads;
 * a fused q/k/v splits its rows into heads + 2 × kv heads (CodeGen's into 3 × heads).
 */
export function headWidths(graph: ModelGraph, group: string): { headDim: number; valueDim: number } {
  const g = graph.geometry.attention[group]!;
  const first = (roles: readonly Role[]) => graph.weights.find((w) => w.attention === group && roles.includes(w.role) && w.param === 'weight' && w.headAxis === undefined);
  const out = (w: WeightNode) => w.shape[featureAxis(w, 'out')]!;
  const q = first(['attn.q', 'attn.qk']);
  if (q !== undefined) {
    const headDim = out(q) / g.heads;
    const v = first(['attn.v']);
    return { headDim, valueDim: v !== undefined ? out(v) / g.kvHeads : headDim };
  }
  const qkv = first(['attn.qkv']);
  if (qkv !== undefined) {
    const headDim = out(qkv) / (qkv.layout === 'qkv-codegen' ? 3 * g.heads : g.heads + 2 * g.kvHeads);
    return { headDim, valueDim: headDim };
  }
  const width = g.headDim ?? graph.geometry.hidden / g.heads;
  return { headDim: width, valueDim: width };
}

function lmHeadPlan(graph: ModelGraph, tensors: TensorPlan[], vocabParallel: boolean, tp: number, grain: number): LmHeadPlan | null {
  const info = graph.lmHead;
  if (info === undefined) return null;
  const weightName = info.tensor ?? info.embed;
  const t = tensors.find((x) => x.name === weightName);
  if (t === undefined) return null;
  if (t.split === 'vocab') return { weight: t.name, tied: info.tied, split: 'vocab', ranks: t.ranks.map((r) => ({ ranges: r.ranges })), after: 'all-gather' };
  if (t.split === 'row') return { weight: t.name, tied: info.tied, split: 'row', ranks: t.ranks.map((r) => ({ ranges: r.ranges })), after: 'all-reduce' };
  // Untied and replicated (a policy asked for it): every rank computes all the logits.
  if (vocabParallel || t.shape.length !== 2 || !info.tied) return { weight: t.name, tied: info.tied, split: 'replicate', ranks: t.ranks.map((r) => ({ ranges: r.ranges })), after: null };
  // Tied and kept whole for the embedding lookup: each rank multiplies by its own hidden slice.
  const hidden = splitWidth(t.shape[1]!, tp, grain, `${t.name} (as LM head)`);
  return { weight: t.name, tied: info.tied, split: 'row', ranks: hidden.map((r) => ({ ranges: [r] })), after: 'all-reduce' };
}

function summarizeRanks(
  graph: ModelGraph,
  tensors: readonly TensorPlan[],
  tp: number,
  kvDtype: StorageDtype,
  headsOf: (g: string) => HeadAssignment,
  decisions: Map<string, Decision>,
): RankSummary[] {
  const kvBytes = storageBytes(kvDtype);
  const cached = kvCachedModules(graph);
  return Array.from({ length: tp }, (_, rank) => {
    let bytesToRead = 0;
    let paramBytes = 0;
    for (const t of tensors) {
      const slice = t.ranks[rank]!;
      bytesToRead += slice.bytes;
      if (t.read) paramBytes += paramBytesOf(t, slice.shape, slice.bytes);
    }
    let kv = 0;
    for (const m of cached) {
      const d = decisions.get(m.tensor)!;
      const a = headsOf(m.attention);
      const local = d.split === 'replicate' && !d.sliceAfterNorm ? a.kvHeads : a.ranks[rank]!.kv[1] - a.ranks[rank]!.kv[0];
      kv += local * m.widthPerKvHead * kvBytes;
    }
    return { rank, bytesToRead, paramBytes, kvCacheBytesPerToken: kv };
  });
}

/** Device bytes of a weight (or one rank's slice of it): elements × its storage dtype, or as stored when it has none. */
function paramBytesOf(t: TensorPlan, shape: readonly number[], storedBytes: number): number {
  if (t.storage === undefined) return storedBytes;
  return shape.reduce((a, b) => a * b, 1) * storageBytes(t.storage);
}

/** Attention modules that keep a KV cache during generation: (k + v) width per kv head, per module. */
function kvCachedModules(graph: ModelGraph): Array<{ tensor: string; attention: string; widthPerKvHead: number }> {
  if (graph.kind === 'encoder') return [];
  const out: Array<{ tensor: string; attention: string; widthPerKvHead: number }> = [];
  const perGroup = new Map<string, { tensor: string; attention: string; width: number }>();
  for (const w of graph.weights) {
    if (w.attention === undefined || isBias(w) || w.headAxis !== undefined || w.param !== 'weight') continue;
    if (w.attention === 'cross' || w.attention === 'enc' || (graph.kind === 'seq2seq' && w.block?.list.includes('encoder'))) continue;
    const g = graph.geometry.attention[w.attention]!;
    const size = w.shape[featureAxis(w, 'out')]!;
    let width = 0;
    if (w.role === 'attn.k' || w.role === 'attn.v' || w.role === 'attn.qk') width = size / (w.role === 'attn.qk' ? g.heads : g.kvHeads);
    else if (w.role === 'attn.qkv') width = 2 * fusedHeadWidth(w.layout ?? 'qkv-concat', size, g.heads, g.kvHeads);
    else continue;
    const entry = perGroup.get(w.group) ?? { tensor: w.name, attention: w.attention, width: 0 };
    entry.width += width;
    perGroup.set(w.group, entry);
  }
  for (const e of perGroup.values()) out.push({ tensor: e.tensor, attention: e.attention, widthPerKvHead: e.width });
  return out;
}

function allReducePoints(graph: ModelGraph, tensors: readonly TensorPlan[]): Array<{ block: string; after: string[] }> {
  const byBlock = new Map<string, Set<string>>();
  for (const t of tensors) {
    if (t.after === null) continue;
    const w = graph.weights.find((x) => x.name === t.name)!;
    const block = w.block ? `${w.block.list}.*` : '(top level)';
    const set = byBlock.get(block) ?? new Set<string>();
    set.add(`${genericName(w.block ? w.block.relative : t.name).replace(/\.(weight|bias)$/, '')} (${t.after})`);
    byBlock.set(block, set);
  }
  return [...byBlock].map(([block, after]) => ({ block, after: [...after] }));
}

function codegenNote(graph: ModelGraph, tp: number): string[] | undefined {
  const qkv = graph.weights.find((w) => w.layout === 'qkv-codegen');
  if (qkv === undefined || tp === 1) return undefined;
  return [`qkv_proj is assembled as ${codegenLocalBlocks(graph.geometry.attention[qkv.attention ?? 'self']!.heads, tp)} local [q; v; k] blocks per rank`];
}

/** Compare names with numbers as numbers: layers.2 < layers.10. */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
