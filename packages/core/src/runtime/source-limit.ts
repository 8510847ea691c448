/**
 * The longest encoder input an encoder–decoder runs, where its spec sets one (BigBird-Pegasus with
 * block-sparse attention: transformers falls back to full attention only up to a length, and only
 * full attention is implemented). Checked by the coordinator before a request reaches a rank, and by
 * the engine before it encodes.
 */
import { ArgumentError } from '../errors/index.js';
import type { ModelGraph, Seq2SeqSpec } from '../graph/index.js';

/** Refuse an encoder input of `tokens` tokens longer than the spec's limit, naming the limit and why. */
export function checkSourceLength(spec: Pick<Seq2SeqSpec, 'encoderLimit'>, tokens: number): void {
  const limit = spec.encoderLimit;
  if (limit === undefined || tokens <= limit.tokens) return;
  throw new ArgumentError({ argument: 'prompts', detail: `an encoder input of ${tokens} tokens is longer than ${limit.tokens}: ${limit.reason}; shorten it to at most ${limit.tokens} tokens` });
}

/**
 * The spec with `encoderLimit` lowered to the rows of the encoder's learned position table (less its
 * offset) when that is shorter: without it, an input longer than the table would read positions that
 * do not exist (transformers fails with an index error there).
 */
export function withPositionTable(spec: Seq2SeqSpec, graph: ModelGraph): Seq2SeqSpec {
  if (spec.encoder.positions !== 'learned') return spec;
  const table = graph.weights.find((w) => w.role === 'pos_embed' && w.param === 'weight' && w.shape.length === 2 && w.name.split('.').includes(spec.stacks.encoder));
  if (table === undefined) return spec;
  const rows = table.shape[0]! - (spec.encoder.positionOffset ?? 0);
  if (spec.encoderLimit !== undefined && spec.encoderLimit.tokens <= rows) return spec;
  return { ...spec, encoderLimit: { tokens: rows, reason: `the encoder's learned position table (${table.name}) has ${rows} positions` } };
}
