/**
 * The input side of a decoder stack (and of each stack of an encoder–decoder): token embeddings
 * times the family's scale, a projection to the hidden width (OPT-350m), learned positions (with
 * their offset) or sinusoidal ones in fairseq's or Marian's layout, then the embedding norm.
 */
import { hostTensor, type DeviceTensor } from '../backend/index.js';
import { TpError } from '../errors/index.js';
import type { DecoderSpec } from '../graph/index.js';
import { embed, linear } from './linear.js';
import type { TopRefs, WeightRef } from './structure.js';
import type { SubLayers } from './sublayers.js';

export interface EmbeddingInput {
  /** i32 [rows] token ids on the device. */
  ids: DeviceTensor;
  /** i32 [rows] position ids on the device, and the same on the host (to add an offset). */
  positions: DeviceTensor;
  hostPositions: Int32Array;
}

/** `refs` holds the stack's position table, norms and projection; `tokens` its token embedding. */
export async function embedTokens(ops: SubLayers, spec: DecoderSpec, tokens: WeightRef | undefined, refs: TopRefs, input: EmbeddingInput): Promise<DeviceTensor> {
  const { rank } = ops;
  if (tokens === undefined) throw new TpError('unsupported-model', 'the model has no token embedding');
  let h = await embed(rank, ops.tensor(tokens.weight.name), tokens.weight, input.ids, spec.embedScale ?? 1);
  const projectIn = refs.slots.get('project_in');
  if (projectIn) h = await linear(rank, h, ops.weight(projectIn));
  const offset = spec.positionOffset ?? 0;
  if (spec.positions === 'learned' && refs.posEmbed) {
    rank.addInPlace(h, rank.embedding(ops.tensor(refs.posEmbed.weight.name), input.positions, -offset));
  } else if (spec.positions === 'sinusoidal') {
    const positions = offset === 0 ? input.positions : rank.upload(hostTensor(input.hostPositions.map((p) => p + offset)));
    rank.addInPlace(h, rank.sinusoidal(positions, h.shape[1]!, spec.sinusoidal ?? 'fairseq'));
  }
  const norm = refs.slots.get('embed_norm');
  return norm ? ops.norm(h, norm) : h;
}
