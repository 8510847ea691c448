/**
 * What a rank runs, whatever the model kind: the step the coordinator sends, what rank 0 returns,
 * and the engine interface the worker drives. The graph's kind chooses the engine.
 */
import type { DeviceTensor, Rank } from '../backend/index.js';
import type { ModelGraph } from '../graph/index.js';
import { UnsupportedModelError } from '../errors/index.js';

/** What rank 0 sends back from a step: the logits, or only what the sampler needs of them. */
export type StepOutput = 'logits' | 'argmax' | { topk: number };

/**
 * One forward pass, as the coordinator sends it: only the new rows. The rank keeps the key mask and
 * key positions of the timeline so far itself, so a message's size follows the new tokens.
 */
export interface StepInput {
  /** Token ids, [batch × rows]. */
  ids: Int32Array;
  /** Position ids, [batch × rows] (rotary, learned and sinusoidal positions). */
  positions: Int32Array;
  batch: number;
  rows: number;
  /** Timeline slot of the first row (the KV cache index). */
  start: number;
  /** [batch × rows]: 1 where the new slot holds a real token (0: padding). */
  keyMask: Int32Array;
  /** [batch × rows]: the position each new slot has for ALiBi. */
  keyPositions: Int32Array;
  /** Which rows need logits. */
  logits: 'last' | 'all' | 'none';
  /** What rank 0 returns (default: the logits). */
  output?: StepOutput;
  /** Encoders: token type (segment) ids, [batch × rows]; zeros when absent. */
  tokenTypes?: Int32Array;
  /** Encoders: also return the last hidden state of every row (encoder–decoders: the encoder's). */
  hidden?: boolean;
  /** Encoders with a pooler: also return tanh(dense(first row)) of each sequence. */
  pooled?: boolean;
  /**
   * Encoder–decoder models, on a batch's first step: the encoder input ([sources × rows], right-padded
   * with `keyMask` 0), run once; the decoder rows of this and later steps attend to its output. With
   * `repeat` (beam search), each source serves that many consecutive decoder sequences (`batch` =
   * sources × repeat): the encoder runs once per source and its output is expanded.
   */
  encoder?: { ids: Int32Array; positions: Int32Array; keyMask: Int32Array; rows: number; repeat?: number };
  /**
   * Beam search, before this step: sequence b continues what sequence order[b] held (i32 [batch]):
   * every KV cache, the key timeline and an encoder–decoder's source follow.
   */
  order?: Int32Array;
}

/** What rank 0 returns from a step. */
export interface StepResult {
  logits?: Float32Array;
  ids?: Int32Array;
  topk?: { values: Float32Array; indices: Int32Array };
  /** [batch × rows × hidden]: the encoder's last hidden state, when asked (encoder–decoders: of the source rows). */
  hidden?: Float32Array;
  /** [batch × hidden]: the pooler's output, when asked. */
  pooled?: Float32Array;
  /**
   * Rows per sequence of `hidden` / `logits` when they are not the step's input rows (Perceiver: its
   * latents, and the positions of its decoder queries).
   */
  hiddenRows?: number;
  logitRows?: number;
}

export interface Engine {
  /** Fresh state (KV caches, timeline) for `batch` sequences. */
  reset(batch: number): void;
  forward(step: StepInput): Promise<StepResult | undefined>;
  /** Timeline slots the rank holds now (for tests and reports). */
  readonly cachedSlots: number;
}

/** Why the engine cannot run this graph, or undefined when it can (checked by the coordinator before any rank starts). */
export function engineGap(graph: ModelGraph): string | undefined {
  const d = graph.descriptor;
  if (d.engineGap !== undefined) return d.engineGap;
  if (graph.kind === 'causal' && d.decoder === undefined) return `tp plans ${graph.title} models but its engine does not run them yet`;
  if (graph.kind === 'encoder' && d.encoder === undefined) return `tp plans ${graph.title} encoders but its engine does not run them yet`;
  if (graph.kind === 'seq2seq' && d.seq2seq === undefined) return `tp plans ${graph.title} encoder–decoder models but its engine does not run them yet`;
  return undefined;
}

export function refuseGap(graph: ModelGraph): void {
  const gap = engineGap(graph);
  if (gap !== undefined) throw new UnsupportedModelError({ modelType: graph.modelType, reason: gap, hint: 'tp plan still works for it' });
}

/**
 * One layer of a forward pass in a step of its own inside the forward's (interface 4's nested steps):
 * its temporaries are released when it ends, and the tensor it returns goes on to the enclosing step.
 * A forward pass then holds one layer's activations at a time, not every layer's. Anything a layer
 * makes for later layers must be made before the layers (or live outside the step).
 */
export async function inLayerStep(rank: Pick<Rank, 'beginStep' | 'endStep'>, fn: () => Promise<DeviceTensor>): Promise<DeviceTensor> {
  rank.beginStep();
  let out: DeviceTensor;
  try {
    out = await fn();
  } catch (error) {
    await rank.endStep().catch(() => undefined);
    throw error;
  }
  await rank.endStep(out);
  return out;
}

/** `fn` between `beginStep` and `endStep`: the step's temporaries are released once the device is done with them, even when `fn` throws. */
export async function withinStep<T>(rank: Pick<Rank, 'beginStep' | 'endStep'>, fn: () => Promise<T>): Promise<T> {
  rank.beginStep();
  try {
    return await fn();
  } finally {
    await rank.endStep();
  }
}
