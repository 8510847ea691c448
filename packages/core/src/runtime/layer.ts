/**
 * One transformer layer, assembled from sub-layers: where the norms sit and how the residual adds,
 * for every stack (decoder, encoder, the two stacks of an encoder–decoder). The sub-layers are
 * passed in as functions returning outputs not yet reduced, so a parallel residual block reduces its
 * attention and MLP together, and nothing here knows which family it runs.
 */
import type { DeviceTensor } from '../backend/index.js';
import type { DecoderSpec } from '../graph/index.js';
import { combineSubLayers, type SubLayerOutput } from './linear.js';
import type { WeightRef } from './structure.js';
import type { SubLayers } from './sublayers.js';

export type SubLayer = (x: DeviceTensor) => Promise<SubLayerOutput>;

export interface LayerParts {
  /** Per-layer norms by slot: attn_norm, cross_norm, mlp_norm. */
  norms: ReadonlyMap<string, WeightRef>;
  attention: SubLayer;
  /** Cross-attention to the encoder output, between self-attention and the MLP (decoders of seq2seq models). */
  cross?: SubLayer;
  mlp: SubLayer;
}

type Placement = Pick<DecoderSpec, 'normPlacement' | 'residual'>;

/**
 * - pre-norm (most):  x += attn(n1(x)); x += cross(n2(x)); x += mlp(n3(x))
 * - post-norm (BERT, BART, OpenAI GPT): x = n1(x + attn(x)); x = n2(x + cross(x)); x = n3(x + mlp(x))
 * - parallel (GPT-J, Falcon…): x + attn(n1(x)) + mlp(n2(x) or n1(x)), reduced together
 */
export async function runLayer(ops: SubLayers, placement: Placement, parts: LayerParts, h: DeviceTensor): Promise<DeviceTensor> {
  const { rank } = ops;
  const norm = (x: DeviceTensor, slot: string) => {
    const ref = parts.norms.get(slot);
    return ref ? ops.norm(x, ref) : x;
  };
  const whole = async (sub: SubLayer, x: DeviceTensor) => ops.finish(await sub(x));
  if (placement.normPlacement === 'post') {
    let x = norm(rank.add(h, await whole(parts.attention, h)), 'attn_norm');
    if (parts.cross) x = norm(rank.add(x, await whole(parts.cross, x)), 'cross_norm');
    return norm(rank.add(x, await whole(parts.mlp, x)), 'mlp_norm');
  }
  if (placement.residual === 'parallel') {
    const a = norm(h, 'attn_norm');
    const m = parts.norms.has('mlp_norm') ? norm(h, 'mlp_norm') : a;
    const out = combineSubLayers(rank, await parts.attention(a), await parts.mlp(m));
    return rank.addInPlace(await ops.finish(out), h);
  }
  let x = rank.addInPlace(await whole(parts.attention, norm(h, 'attn_norm')), h);
  if (parts.cross) x = rank.addInPlace(await whole(parts.cross, norm(x, 'cross_norm')), x);
  return rank.addInPlace(await whole(parts.mlp, norm(x, 'mlp_norm')), x);
}
