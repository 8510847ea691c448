/**
 * config.json against the stored shapes. A config that disagrees with its weights (a wrong
 * `hidden_size` or other declared width, head count, head width, vocabulary size, layer count or MLP width) is refused at
 * analysis time with a ShapeError that names the config key, its value, the tensor and its shape, and
 * what to fix — before a plan is made or a byte is read.
 *
 * The checks are generic: they read roles, block lists and the descriptor's config keys, never a
 * family name. Head checks apply to every model; the width, vocabulary and depth checks apply to the
 * weights a family descriptor recognised (the generic name rules for unknown model types are a
 * best guess, and may pick up e.g. a vision tower of another width).
 */
import { ShapeError } from '../errors/index.js';
import type { GeometrySource, GeometrySources, Geometry } from './config.js';
import type { ConfigReader, FamilyDescriptor, KeySpec } from './descriptor.js';
import { sourceOf } from './config.js';
import type { Role } from './roles.js';
import type { BlockList } from './tree.js';

/** The parts of a WeightNode the checks read. */
export interface CheckedWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly role: Role;
  readonly param: string;
  readonly rule: string;
  readonly attention: string | undefined;
  readonly layout: string | undefined;
  readonly transposed: boolean;
  readonly headAxis: number | undefined;
  readonly block: { readonly list: string; readonly index: number } | undefined;
  readonly group: string;
  /** The width it reads or writes in place of the hidden size (`WeightRule.width`), and its source. */
  readonly width: { readonly size: number; readonly source: GeometrySource } | undefined;
}

export interface ConsistencyContext {
  readonly descriptor: FamilyDescriptor;
  readonly config: ConfigReader;
  /** config.json's path, for the errors. */
  readonly file: string;
  readonly geometry: Geometry;
  readonly sources: GeometrySources;
  /** Sorted by name. */
  readonly weights: readonly CheckedWeight[];
  readonly blocks: readonly BlockList[];
  /** True for model types without a descriptor (generic name rules). */
  readonly generic: boolean;
  /** The stored dimension that holds output (`out`) or input (`in`) features. */
  readonly featureAxis: (w: CheckedWeight, side: 'out' | 'in') => number;
}

export function checkConfigAgainstWeights(ctx: ConsistencyContext): void {
  if (!ctx.generic) {
    checkLayers(ctx);
    checkVocab(ctx);
    checkHidden(ctx);
  }
  checkHeads(ctx);
  if (!ctx.generic) checkIntermediate(ctx);
}

// ---- helpers --------------------------------------------------------------------------------------

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;
const valueText = (v: unknown) => (v === undefined ? 'not set' : JSON.stringify(v));
const ordinalAxis = (axis: number) => `dimension ${axis}`;

/** How the config's side of a mismatch reads: `"hidden_size" is 128` or, for a derived number, how it was made. */
function setting(src: GeometrySource, what: string, number: number | undefined): string {
  if (src.constant === true) return `the model class fixes the ${what} at ${valueText(src.value)} (config.json cannot change it)`;
  const base = `"${src.key}" is ${valueText(src.value)}`;
  if (src.note === undefined) return base;
  return `${base}${number !== undefined ? ` (the ${what} is ${number}: ${src.note})` : ` (${src.note})`}`;
}

interface Observation {
  w: CheckedWeight;
  axis: number;
  size: number;
}

/**
 * Every observation must equal `expected`. The first one that does not is the error: when all of them
 * agree with each other the config is wrong (set the key to what the weights say); otherwise this
 * tensor is the odd one out.
 */
function expectAll(
  ctx: ConsistencyContext,
  observations: readonly Observation[],
  expected: number,
  src: GeometrySource,
  what: string,
  describe: (o: Observation) => string,
) {
  const bad = observations.find((o) => o.size !== expected);
  if (bad === undefined) return;
  const sizes = new Set(observations.map((o) => o.size));
  const shape = [...bad.w.shape];
  shape[bad.axis] = expected;
  throw new ShapeError({
    tensor: bad.w.name,
    expected: shape,
    actual: bad.w.shape,
    file: ctx.file,
    key: src.key,
    value: src.value,
    keys: src.keys,
    setting: setting(src, what, expected),
    detail: `tensor "${bad.w.name}" has shape ${shapeText(bad.w.shape)}: ${describe(bad)} is ${bad.size}, not ${expected}`,
    fix:
      sizes.size !== 1
        ? `The other weights agree with config.json and this one does not: the checkpoint is damaged or mixes two models`
        : src.constant === true
          ? `Every such weight says ${bad.size}: these weights are not of this model class`
          : `Every such weight says ${bad.size}: set "${src.key}" to ${bad.size}${src.derived ? ` (or the key it is derived from)` : ''} in config.json, or use the config.json that came with these weights`,
  });
}

const isWeight = (w: CheckedWeight) => w.param === 'weight' && w.headAxis === undefined && w.shape.length >= 2 && w.shape.length <= 3;
const known = (w: CheckedWeight) => !w.rule.startsWith('generic:');

/** seq2seq stacks: `encoder`, `decoder`, or undefined for a name in neither. */
function stackOf(ctx: ConsistencyContext, name: string): 'encoder' | 'decoder' | 'main' | undefined {
  if (ctx.descriptor.kind !== 'seq2seq') return 'main';
  const segments = name.split('.');
  if (segments.includes('decoder')) return 'decoder';
  if (segments.includes('encoder')) return 'encoder';
  return undefined;
}

/** The expected number and its source for a stack: the decoder (and other models) use `main`, the encoder its own key. */
function forStack(
  ctx: ConsistencyContext,
  stack: 'encoder' | 'decoder' | 'main' | undefined,
  main: { value: number | undefined; src: GeometrySource | undefined },
  encoderSpec: KeySpec | undefined,
): { value: number; src: GeometrySource } | undefined {
  if (stack === undefined) return undefined;
  if (stack === 'encoder') {
    const src = sourceOf(ctx.config, encoderSpec);
    return src === undefined ? undefined : { value: src.value as number, src };
  }
  return main.value === undefined || main.src === undefined ? undefined : { value: main.value, src: main.src };
}

// ---- layers ---------------------------------------------------------------------------------------

const HOLDS_LAYER = (role: Role) => role.startsWith('attn.') || role.startsWith('mlp.') || role.startsWith('moe.');

function checkLayers(ctx: ConsistencyContext) {
  if (ctx.descriptor.sharedLayers === true) return;
  const lists = new Set(ctx.weights.filter((w) => known(w) && HOLDS_LAYER(w.role) && w.block !== undefined).map((w) => w.block!.list));
  for (const list of ctx.blocks) {
    if (!lists.has(list.path)) continue;
    const stack = stackOf(ctx, list.path);
    const want = forStack(ctx, stack, { value: ctx.geometry.layers, src: ctx.sources.layers }, ctx.descriptor.config.encoderLayers);
    if (want === undefined) continue;
    const layers = want.value;
    const extra = list.indices.find((i) => i >= layers);
    const missing = Array.from({ length: layers }, (_, i) => i).find((i) => !list.indices.includes(i));
    if (extra === undefined && missing === undefined) continue;
    const stored = list.indices.length === 0 ? 'none' : list.indices.length === list.indices[list.indices.length - 1]! + 1 ? `0-${list.indices[list.indices.length - 1]}` : list.indices.join(', ');
    const base = { file: ctx.file, key: want.src.key, value: want.src.value, keys: want.src.keys, setting: setting(want.src, 'number of layers', layers) };
    if (extra !== undefined) {
      const w = ctx.weights.find((x) => x.block?.list === list.path && x.block.index === extra)!;
      throw new ShapeError({
        ...base,
        tensor: w.name,
        actual: w.shape,
        detail: `the checkpoint stores layers ${stored} under "${list.path}": tensor "${w.name}" (shape ${shapeText(w.shape)}) belongs to layer ${extra}`,
        fix: list.indices.length === list.indices[list.indices.length - 1]! + 1 ? `Set "${want.src.key}" to ${list.indices.length}, or use the config.json that came with these weights` : 'Use the config.json that came with these weights',
      });
    }
    throw new ShapeError({
      ...base,
      tensor: `${list.path}.${missing}`,
      actual: [],
      detail: `the checkpoint stores layers ${stored} under "${list.path}" and nothing for layer ${missing} ("${list.path}.${missing}.*")`,
      fix: `Set "${want.src.key}" to ${list.indices.length} if the model has ${list.indices.length} layers, or add the missing weights (a shard may be missing)`,
    });
  }
}

// ---- vocabulary -----------------------------------------------------------------------------------

function checkVocab(ctx: ConsistencyContext) {
  const { vocab, paddedVocab } = ctx.geometry;
  const expected = Math.max(vocab, paddedVocab);
  const observations: Observation[] = [];
  for (const w of ctx.weights) {
    if (!known(w) || w.param !== 'weight' || w.shape.length !== 2) continue;
    if (w.role !== 'embed' && w.role !== 'lm_head') continue;
    // An encoder's own embedding may have its own vocabulary (fsmt's source language).
    const stack = stackOf(ctx, w.name);
    if (stack === 'encoder') continue;
    observations.push({ w, axis: 0, size: w.shape[0]! });
  }
  expectAll(ctx, observations, expected, ctx.sources.vocab, 'vocabulary size', (o) => `its vocabulary (${ordinalAxis(o.axis)})`);
}

// ---- hidden width ---------------------------------------------------------------------------------

const HIDDEN_IN: ReadonlySet<Role> = new Set(['attn.q', 'attn.qk', 'attn.qkv', 'mlp.up', 'mlp.gate', 'mlp.gate_up', 'moe.expert.up', 'moe.expert.gate', 'moe.expert.gate_up']);
const HIDDEN_OUT: ReadonlySet<Role> = new Set(['attn.out', 'mlp.down', 'moe.expert.down']);

/**
 * Queries, outputs and MLPs read or write the hidden state, so their width there is the hidden size —
 * or, for a weight whose rule declares another width (`WeightRule.width`: Perceiver's decoder reads
 * d_model-wide rows), that width. Each width is checked against its own config key. Keys and values
 * may read another width (Perceiver's inputs) and are not checked.
 */
function checkHidden(ctx: ConsistencyContext) {
  const byWidth = new Map<string, { expected: number; src: GeometrySource; what: string; observations: Observation[] }>();
  byWidth.set('', { expected: ctx.geometry.hidden, src: ctx.sources.hidden, what: 'hidden size', observations: [] });
  for (const w of ctx.weights) {
    if (!known(w) || !isWeight(w)) continue;
    const side = HIDDEN_IN.has(w.role) ? 'in' : HIDDEN_OUT.has(w.role) ? 'out' : undefined;
    if (side === undefined) continue;
    if (w.shape.length === 3 && !w.role.startsWith('moe.expert.')) continue;
    const axis = ctx.featureAxis(w, side);
    const width = w.width;
    const key = width === undefined ? '' : `${width.source.key}=${width.size}`;
    let entry = byWidth.get(key);
    if (entry === undefined && width !== undefined) {
      const what = width.source.constant === true ? 'width the model class fixes' : `width set by "${width.source.key}"`;
      byWidth.set(key, (entry = { expected: width.size, src: width.source, what, observations: [] }));
    }
    entry!.observations.push({ w, axis, size: w.shape[axis]! });
  }
  for (const { expected, src, what, observations } of byWidth.values()) {
    expectAll(ctx, observations, expected, src, what, (o) => `its ${HIDDEN_IN.has(o.w.role) ? 'input' : 'output'} width (${ordinalAxis(o.axis)}), the ${what},`);
  }
}

// ---- MLP width ------------------------------------------------------------------------------------

function checkIntermediate(ctx: ConsistencyContext) {
  const byStack = new Map<string, Observation[]>();
  for (const w of ctx.weights) {
    if (!known(w) || !isWeight(w) || w.shape.length !== 2) continue;
    // Dense MLPs only: experts and shared experts have widths of their own.
    if (!w.group.endsWith('/mlp')) continue;
    const producer = w.role === 'mlp.up' || w.role === 'mlp.gate' || w.role === 'mlp.gate_up';
    if (!producer && w.role !== 'mlp.down') continue;
    const axis = ctx.featureAxis(w, producer ? 'out' : 'in');
    const size = w.role === 'mlp.gate_up' ? w.shape[axis]! / 2 : w.shape[axis]!;
    const stack = stackOf(ctx, w.name) ?? 'none';
    const list = byStack.get(stack) ?? [];
    list.push({ w, axis, size });
    byStack.set(stack, list);
  }
  for (const [stack, observations] of byStack) {
    if (stack === 'none') continue;
    const want = forStack(ctx, stack as 'encoder' | 'decoder' | 'main', { value: ctx.geometry.intermediate, src: ctx.sources.intermediate }, ctx.descriptor.config.encoderIntermediate);
    if (want === undefined) continue;
    expectAll(ctx, observations, want.value, want.src, 'MLP width', (o) =>
      o.w.role === 'mlp.down' ? `its input width (${ordinalAxis(o.axis)}), the MLP width,` : o.w.role === 'mlp.gate_up' ? `half its output width (${ordinalAxis(o.axis)}), the MLP width,` : `its output width (${ordinalAxis(o.axis)}), the MLP width,`,
    );
  }
}

// ---- heads ----------------------------------------------------------------------------------------

const firstOf = (ctx: ConsistencyContext, roles: readonly Role[], group: string) =>
  ctx.weights.find((w) => roles.includes(w.role) && w.attention === group && w.param === 'weight' && w.headAxis === undefined);

/**
 * The split dimensions must agree with the config: heads × head width for queries and keys, whole
 * heads for values and outputs. When the head width comes from config.json, a mismatch can be told
 * apart: only queries wrong → the head count; only keys → the kv head count; both, by the same
 * factor → the head width.
 */
function checkHeads(ctx: ConsistencyContext) {
  for (const [group, g] of Object.entries(ctx.geometry.attention)) {
    const src = ctx.sources.attention[group];
    if (src === undefined) continue;
    const hdFromConfig = src.headDim !== undefined && g.headDim !== undefined;
    const keysOf = (...list: Array<GeometrySource | undefined>) => [...new Set(list.filter((s): s is GeometrySource => s !== undefined && s.constant !== true).map((s) => s.key))];
    const allKeys = keysOf(src.heads, src.kvHeads, src.headDim);

    // Queries and keys both off by the same head width: the head width is wrong.
    if (hdFromConfig && src.kvHeads !== src.heads) {
      const q = firstOf(ctx, ['attn.q', 'attn.qk'], group);
      const k = firstOf(ctx, ['attn.k'], group);
      if (q !== undefined && k !== undefined && q.shape.length >= 2 && k.shape.length >= 2) {
        const qAxis = ctx.featureAxis(q, 'out');
        const kAxis = ctx.featureAxis(k, 'out');
        const Q = q.shape[qAxis]!;
        const K = k.shape[kAxis]!;
        if (Q !== g.heads * g.headDim! && K !== g.kvHeads * g.headDim! && Q % g.heads === 0 && K % g.kvHeads === 0 && Q / g.heads === K / g.kvHeads) {
          const expected = [...q.shape];
          expected[qAxis] = g.heads * g.headDim!;
          throw new ShapeError({
            tensor: q.name,
            expected,
            actual: q.shape,
            file: ctx.file,
            key: src.headDim!.key,
            value: src.headDim!.value,
            keys: allKeys,
            setting: setting(src.headDim!, 'head width', g.headDim),
            detail: `tensor "${q.name}" has shape ${shapeText(q.shape)} and "${k.name}" ${shapeText(k.shape)}: ${g.heads} heads and ${g.kvHeads} key/value heads of width ${Q / g.heads}`,
            fix: `Set "${src.headDim!.key}" to ${Q / g.heads} in config.json, or use the config.json that came with these weights`,
          });
        }
      }
    }

    for (const w of ctx.weights) {
      if (w.attention !== group || w.param !== 'weight' || w.headAxis !== undefined) continue;
      const axis = ctx.featureAxis(w, w.role === 'attn.out' ? 'in' : 'out');
      const size = w.shape[axis];
      if (size === undefined) continue;
      let units: number;
      let what: string;
      let unitSrc: GeometrySource;
      switch (w.role) {
        case 'attn.q':
        case 'attn.qk':
        case 'attn.out':
          units = g.heads;
          what = `${g.heads} attention heads`;
          unitSrc = src.heads;
          break;
        case 'attn.k':
        case 'attn.v':
          units = g.kvHeads;
          what = src.kvHeads === src.heads ? `${g.kvHeads} heads` : `${g.kvHeads} key/value heads`;
          unitSrc = src.kvHeads;
          break;
        case 'attn.qkv':
          units = w.layout === 'qkv-codegen' ? 3 * g.heads : g.heads + 2 * g.kvHeads;
          what = w.layout === 'qkv-codegen' ? `q, v and k for ${g.heads} heads` : `${g.heads} query and 2 × ${g.kvHeads} key/value heads`;
          unitSrc = src.heads;
          break;
        default:
          continue;
      }
      // Values and outputs may have their own head width; a fused qkv's is checked when config.json gives it.
      const widthChecked = g.headDim !== undefined && w.role !== 'attn.v' && w.role !== 'attn.out' && (w.role !== 'attn.qkv' || hdFromConfig);
      const expectedWidth = widthChecked ? units * g.headDim! : undefined;
      if (size % units === 0 && (expectedWidth === undefined || size === expectedWidth)) continue;

      // Which key to name: the head width when the size is whole heads of another width but not whole heads of this one.
      let blame = unitSrc;
      if (hdFromConfig && w.role !== 'attn.v' && w.role !== 'attn.out' && size % g.headDim! !== 0 && size % units === 0) blame = src.headDim!;
      const blameNumber = blame === src.headDim ? g.headDim : blame === src.kvHeads ? g.kvHeads : g.heads;
      const blameWhat = blame === src.headDim ? 'head width' : blame === src.kvHeads && blame !== src.heads ? 'number of key/value heads' : 'number of attention heads';

      const expected = [...w.shape];
      expected[axis] = expectedWidth ?? Math.ceil(size / units) * units;
      const siblings = ctx.weights.filter((x) => x.role === w.role && x.attention === group && x.param === 'weight' && x.headAxis === undefined && x.shape.length === w.shape.length);
      const consistent = siblings.every((x) => x.shape[axis] === size);
      let suggestion: string | undefined;
      if (consistent) {
        if (blame === src.headDim) suggestion = size % units === 0 ? `${size / units}` : undefined;
        else if (g.headDim !== undefined && w.role !== 'attn.qkv' && size % g.headDim === 0 && (w.role === 'attn.q' || w.role === 'attn.qk' || w.role === 'attn.k')) suggestion = `${size / g.headDim}`;
      }
      throw new ShapeError({
        tensor: w.name,
        expected,
        actual: w.shape,
        file: ctx.file,
        key: blame.key,
        value: blame.value,
        keys: allKeys,
        setting: setting(blame, blameWhat, blameNumber),
        detail:
          `tensor "${w.name}" has shape ${shapeText(w.shape)}, and ${ordinalAxis(axis)} (${size}) must hold ${what}` +
          `${expectedWidth !== undefined ? ` of width ${g.headDim} (${expectedWidth})` : ' (a whole number of heads)'}`,
        fix: blame.constant === true
          ? `No config key changes it: these weights are not of this class, or the checkpoint is damaged`
          : consistent
          ? suggestion !== undefined
            ? `Set "${blame.key}" to ${suggestion} in config.json, or use the config.json that came with these weights`
            : `Check ${allKeys.map((k) => `"${k}"`).join(', ')} in config.json against the weights, or use the config.json that came with them`
          : `The same tensors of other layers agree with config.json and this one does not: the checkpoint is damaged or mixes two models`,
      });
    }
  }
}
