/**
 * Which weight does what: the engines ask for "layer 3's cross-attention query projection" or "the
 * encoder's final norm" and get the plan entry, from roles, attention groups and slots — never from
 * names. A model has one stack of layers per block list (a decoder; an encoder; an encoder and a
 * decoder) and top-level weights; a top-level weight under a stack's scope (`encoder.final_layer_norm`
 * for the stack `encoder.block`) also belongs to that stack.
 */
import type { ModelGraph, WeightNode } from '../graph/index.js';
import type { TPPlan, TensorPlan } from '../plan/index.js';
import { UnsupportedModelError } from '../errors/index.js';

export interface WeightRef {
  readonly weight: TensorPlan;
  readonly bias: TensorPlan | undefined;
}

export interface MlpRefs {
  up?: WeightRef;
  gate?: WeightRef;
  gateUp?: WeightRef;
  down?: WeightRef;
}

/** One attention sub-layer: a group of the descriptor (`self`, or BART's `enc`/`dec`/`cross`). */
export interface AttentionRefs {
  readonly group: string;
  q?: WeightRef;
  k?: WeightRef;
  v?: WeightRef;
  qkv?: WeightRef;
  out?: WeightRef;
  /** MPT qk_ln: norms over all heads' features, applied before slicing local heads. */
  qFullNorm?: WeightRef;
  kFullNorm?: WeightRef;
  /** T5's relative position bias table [buckets, local heads] (stored in a stack's first layer). */
  relBias?: WeightRef;
}

export interface LayerRefs {
  readonly index: number;
  /** Attention sub-layers by group, in the order their weights appear. */
  readonly attention: Map<string, AttentionRefs>;
  /** Per-layer norms by slot (attn_norm, cross_norm, mlp_norm, q_norm, k_norm). */
  norms: Map<string, WeightRef>;
  mlp: MlpRefs;
  router?: WeightRef;
  experts: Map<number, MlpRefs>;
  shared?: MlpRefs;
  sharedGate?: WeightRef;
}

/** Top-level weights, of the model or of one stack. */
export interface TopRefs {
  embed?: WeightRef;
  posEmbed?: WeightRef;
  typeEmbed?: WeightRef;
  /** A stored output projection (untied LM head); a tied head is the plan's `lmHead.weight`. */
  lmHead?: WeightRef;
  /** A vocabulary-sized bias added to the logits (final_logits_bias, cls.predictions.bias, lm_head.bias). */
  vocabBias?: TensorPlan;
  /** Norms and side projections by slot (final_norm, embed_norm, project_in, mlm_dense, pooler…). */
  slots: Map<string, WeightRef>;
}

export interface StackRefs {
  /** The block list, e.g. `model.encoder.layers`. */
  readonly blockList: string;
  /** The module holding it (`model.encoder`): top-level weights below it belong to this stack. */
  readonly scope: string;
  /** Stored layers in order (for shared layers: group-major, then the inner layers of each group). */
  readonly layers: LayerRefs[];
  readonly own: TopRefs;
}

export interface ModelRefs {
  readonly stacks: StackRefs[];
  readonly top: TopRefs;
}

export interface RefsOptions {
  /**
   * A segment inside each block whose numbered children are layers of their own (ALBERT's
   * `albert_layers` inside each layer group), rather than sub-modules of one layer (T5's `layer.0`).
   */
  innerSegment?: string;
}

const modulePath = (w: WeightNode) => (w.param === w.name ? w.name : w.name.slice(0, -(w.param.length + 1)));
const emptyTop = (): TopRefs => ({ slots: new Map() });

export function modelRefs(graph: ModelGraph, plan: TPPlan, options: RefsOptions = {}): ModelRefs {
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const biasOf = new Map<string, TensorPlan>();
  const hasWeight = new Set<string>();
  for (const w of graph.weights) {
    if (w.param === 'bias') biasOf.set(modulePath(w), byName.get(w.name)!);
    else hasWeight.add(modulePath(w));
  }
  const ref = (w: WeightNode): WeightRef => ({ weight: byName.get(w.name)!, bias: biasOf.get(modulePath(w)) });

  if (graph.blocks.length === 0) throw new UnsupportedModelError({ modelType: graph.modelType, reason: 'the checkpoint has no repeated layers' });
  const inner = options.innerSegment === undefined ? undefined : new RegExp(`(?:^|\\.)${options.innerSegment}\\.(\\d+)\\.`);
  const stacks = graph.blocks.map((list) => {
    const innerCount = inner === undefined ? 1 : innerLayers(graph, list.path, inner);
    const layers: LayerRefs[] = Array.from({ length: list.count * innerCount }, (_, index) => ({ index, attention: new Map(), norms: new Map(), mlp: {}, experts: new Map() }));
    const scope = list.path.includes('.') ? list.path.slice(0, list.path.lastIndexOf('.')) : '';
    return { stack: { blockList: list.path, scope, layers, own: emptyTop() } satisfies StackRefs, indices: list.indices, innerCount };
  });
  const top = emptyTop();

  for (const w of graph.weights) {
    const isBias = w.param === 'bias';
    if (isBias && w.role !== 'lm_head' && w.role !== 'vocab_bias') continue; // reached through its weight
    const found = w.block === undefined ? undefined : stacks.find((s) => s.stack.blockList === w.block!.list);
    if (found === undefined) {
      addTop(top, w, ref(w), isBias, hasWeight);
      // The longest scope that holds it: `model.decoder` rather than `model`.
      const owner = stacks.filter((s) => s.stack.scope !== '' && w.name.startsWith(`${s.stack.scope}.`)).sort((a, b) => b.stack.scope.length - a.stack.scope.length)[0];
      if (owner !== undefined) addTop(owner.stack.own, w, ref(w), isBias, hasWeight);
      continue;
    }
    const sub = inner === undefined ? 0 : Number(inner.exec(w.block!.relative)?.[1] ?? 0);
    const layer = found.stack.layers[found.indices.indexOf(w.block!.index) * found.innerCount + sub]!;
    addToLayer(layer, w, ref(w));
  }
  return { stacks: stacks.map((s) => s.stack), top };
}

/** How many numbered children `segment` has inside the blocks of `list`. */
function innerLayers(graph: ModelGraph, list: string, segment: RegExp): number {
  let max = 0;
  for (const w of graph.weights) {
    if (w.block?.list !== list) continue;
    const m = segment.exec(w.block.relative);
    if (m) max = Math.max(max, Number(m[1]) + 1);
  }
  return Math.max(max, 1);
}

function addTop(top: TopRefs, w: WeightNode, r: WeightRef, isBias: boolean, hasWeight: Set<string>): void {
  if (w.role === 'vocab_bias' || (w.role === 'lm_head' && isBias && !hasWeight.has(modulePath(w)))) top.vocabBias = r.weight;
  else if (isBias) return;
  else if (w.role === 'embed') top.embed ??= r;
  else if (w.role === 'pos_embed') top.posEmbed = r;
  else if (w.role === 'type_embed') top.typeEmbed ??= r;
  else if (w.role === 'lm_head') top.lmHead = r;
  else if (w.slot !== undefined) top.slots.set(w.slot, r);
}

function addToLayer(layer: LayerRefs, w: WeightNode, r: WeightRef): void {
  const attention = (): AttentionRefs => {
    const group = w.attention ?? 'self';
    let a = layer.attention.get(group);
    if (a === undefined) layer.attention.set(group, (a = { group }));
    return a;
  };
  const mlp = mlpOf(layer, w);
  switch (w.role) {
    case 'attn.q':
    case 'attn.qk':
      attention().q = r;
      break;
    case 'attn.k':
      attention().k = r;
      break;
    case 'attn.v':
      attention().v = r;
      break;
    case 'attn.qkv':
      attention().qkv = r;
      break;
    case 'attn.out':
      attention().out = r;
      break;
    case 'rel_bias':
      attention().relBias = r;
      break;
    case 'attn.cross_head_norm':
      if (w.slot === 'k_norm') attention().kFullNorm = r;
      else attention().qFullNorm = r;
      break;
    case 'mlp.up':
    case 'moe.expert.up':
      mlp.up = r;
      break;
    case 'mlp.gate':
    case 'moe.expert.gate':
      mlp.gate = r;
      break;
    case 'mlp.gate_up':
    case 'moe.expert.gate_up':
      mlp.gateUp = r;
      break;
    case 'mlp.down':
    case 'moe.expert.down':
      mlp.down = r;
      break;
    case 'moe.router':
      layer.router = r;
      break;
    case 'moe.shared_gate':
      layer.sharedGate = r;
      break;
    default:
      if (w.slot !== undefined) layer.norms.set(w.slot, r);
  }
}

/** The MLP a weight belongs to: the dense MLP, the shared expert, or routed expert e. */
function mlpOf(layer: LayerRefs, w: WeightNode): MlpRefs {
  if (w.group.endsWith(':shared')) return (layer.shared ??= {});
  if (w.expert === undefined) return layer.mlp;
  let m = layer.experts.get(w.expert);
  if (m === undefined) layer.experts.set(w.expert, (m = {}));
  return m;
}
