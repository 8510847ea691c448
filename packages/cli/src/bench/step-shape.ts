/**
 * What one timed step of `tp bench` goes through, by the model's kind: a causal LM's decode step
 * reads every weight and its KV cache over prompt + new/2 positions; an encoder–decoder's decode step
 * reads only the decoder (and the shared head), its self-attention cache over 1 + new/2 positions and
 * its cross-attention cache over the source; an encoder has no decode step — its step is one forward
 * of the whole batch (every weight once, no KV cache).
 */
import { storageBytes, type InferenceSession } from '@tp/core';
import { meanDecodeContext, seq2seqDecodeContext } from './metrics.js';

export interface StepShape {
  /** `generate`: decode steps are timed; `encode`: one forward of the batch is the step. */
  readonly mode: 'generate' | 'encode';
  /** Whether a step multiplies by this tensor (the plan's name). */
  readonly uses: (name: string) => boolean;
  /** Mean self-attention context of a decode step (0 for an encoder). */
  readonly context: number;
  /** Per rank: cross-attention KV bytes per source token (encoder–decoders; 0 otherwise). */
  readonly crossKvBytesPerSourceToken: number[];
}

type Session = Pick<InferenceSession, 'graph' | 'plan' | 'seq2seq'>;

export function stepShape(session: Session, promptTokens: number, newTokens: number): StepShape {
  const { graph, plan } = session;
  const ranks = plan.ranks.length;
  if (graph.kind === 'encoder') return { mode: 'encode', uses: () => true, context: 0, crossKvBytesPerSourceToken: new Array<number>(ranks).fill(0) };
  if (graph.kind !== 'seq2seq' || session.seq2seq === undefined) {
    return { mode: 'generate', uses: () => true, context: meanDecodeContext(promptTokens, newTokens), crossKvBytesPerSourceToken: new Array<number>(ranks).fill(0) };
  }
  // The encoder's scope: its block list's path up to the segment the family names (`encoder` in
  // `encoder.block`, `model.encoder` in `model.encoder.layers`) — the same rule the engine uses.
  const segment = session.seq2seq.stacks.encoder;
  const list = graph.blocks.find((b) => b.path.split('.').includes(segment));
  const parts = list?.path.split('.') ?? [];
  const scope = list === undefined ? undefined : `${parts.slice(0, parts.indexOf(segment) + 1).join('.')}.`;
  const uses = (name: string) => scope === undefined || !name.startsWith(scope);
  const kvBytes = storageBytes(plan.options.kvDtype);
  const byName = new Map(plan.tensors.map((t) => [t.name, t]));
  const cross = new Array<number>(ranks).fill(0);
  for (const w of graph.weights) {
    if (w.attention !== 'cross' || w.param !== 'weight' || (w.role !== 'attn.k' && w.role !== 'attn.v')) continue;
    const t = byName.get(w.name);
    if (t === undefined) continue;
    t.ranks.forEach((slice, r) => {
      cross[r]! += (slice.shape[w.transposed ? 1 : 0] ?? 0) * kvBytes;
    });
  }
  return { mode: 'generate', uses, context: seq2seqDecodeContext(newTokens), crossKvBytesPerSourceToken: cross };
}
