/**
 * Which weight does what, per layer: the decoder forward asks for "layer 3's query projection" and
 * gets the plan entry, from roles and slots — never from names.
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

export interface LayerRefs {
  readonly index: number;
  q?: WeightRef;
  k?: WeightRef;
  v?: WeightRef;
  qkv?: WeightRef;
  out?: WeightRef;
  /** MPT qk_ln: norms over all heads' features, applied before slicing local heads. */
  qFullNorm?: WeightRef;
  kFullNorm?: WeightRef;
  norms: Map<string, WeightRef>;
  mlp: MlpRefs;
  router?: WeightRef;
  experts: Map<number, MlpRefs>;
  shared?: MlpRefs;
  sharedGate?: WeightRef;
}

export interface ModelRefs {
  readonly blockList: string;
  readonly layers: LayerRefs[];
  embed?: WeightRef;
  posEmbed?: WeightRef;
  lmHead?: WeightRef;
  norms: Map<string, WeightRef>;
  projectIn?: WeightRef;
  projectOut?: WeightRef;
}

const modulePath = (w: WeightNode) => (w.param === w.name ? w.name : w.name.slice(0, -(w.param.length + 1)));

export function modelRefs(graph: ModelGraph, plan: TPPlan): ModelRefs {
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const biasOf = new Map<string, TensorPlan>();
  for (const w of graph.weights) if (w.param === 'bias') biasOf.set(modulePath(w), byName.get(w.name)!);
  const ref = (w: WeightNode): WeightRef => ({ weight: byName.get(w.name)!, bias: biasOf.get(modulePath(w)) });

  const main = graph.blocks[0];
  if (main === undefined) throw new UnsupportedModelError({ modelType: graph.modelType, reason: 'the checkpoint has no repeated layers' });
  const layers: LayerRefs[] = Array.from({ length: main.count }, (_, index) => ({ index, norms: new Map(), mlp: {}, experts: new Map() }));
  const refs: ModelRefs = { blockList: main.path, layers, norms: new Map() };

  for (const w of graph.weights) {
    if (w.param === 'bias' && w.role !== 'lm_head' && w.role !== 'vocab_bias') continue; // reached through its weight
    const r = ref(w);
    if (w.block === undefined || w.block.list !== main.path) {
      if (w.role === 'embed') refs.embed ??= r;
      else if (w.role === 'pos_embed') refs.posEmbed = r;
      else if (w.role === 'lm_head' && w.param !== 'bias') refs.lmHead = r;
      else if (w.slot === 'project_in') refs.projectIn = r;
      else if (w.slot === 'project_out') refs.projectOut = r;
      else if (w.slot !== undefined) refs.norms.set(w.slot, r);
      continue;
    }
    const layer: LayerRefs = layers[main.indices.indexOf(w.block.index)]!;
    const mlp = mlpOf(layer, w);
    switch (w.role) {
      case 'attn.q':
      case 'attn.qk':
        layer.q = r;
        break;
      case 'attn.k':
        layer.k = r;
        break;
      case 'attn.v':
        layer.v = r;
        break;
      case 'attn.qkv':
        layer.qkv = r;
        break;
      case 'attn.out':
        layer.out = r;
        break;
      case 'attn.cross_head_norm':
        if (w.slot === 'k_norm') layer.kFullNorm = r;
        else layer.qFullNorm = r;
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
  return refs;
}

/** The MLP a weight belongs to: the dense MLP, the shared expert, or routed expert e. */
function mlpOf(layer: LayerRefs, w: WeightNode): MlpRefs {
  if (w.group.endsWith(':shared')) return (layer.shared ??= {});
  if (w.expert === undefined) return layer.mlp;
  let m = layer.experts.get(w.expert);
  if (m === undefined) layer.experts.set(w.expert, (m = {}));
  return m;
}
