/**
 * Input checks that need no weights, done before any rank starts (a large model takes minutes to
 * load): the model is one the engine runs, a text prompt has a tokenizer, every token id is in the
 * vocabulary, the prompt plus the new tokens fit the model's positions. Reads config.json, the
 * safetensors headers and tokenizer.json only.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  analyzeRunnable,
  ArgumentError,
  createConfigReader,
  loadTokenizer,
  positionLimit,
  type DecoderSpec,
  type HfConfig,
  type ModelGraph,
  type TextTokenizer,
} from '@tp/core';

export interface Prechecked {
  graph: ModelGraph;
  /** Every prompt as token ids, in order (text prompts encoded with tokenizer.json). */
  encoded: number[][];
  tokenizer: TextTokenizer | undefined;
  /** The most positions a sequence may use, when the model has a limit. */
  positionLimit: number | undefined;
}

/** The decoder's spec (an encoder–decoder's decoder stack), for the position limit; undefined for encoders. */
function decoderSpec(graph: ModelGraph, config: Record<string, unknown>): DecoderSpec | undefined {
  const reader = createConfigReader(config as HfConfig);
  try {
    return graph.kind === 'causal' ? graph.descriptor.decoder?.(reader) : graph.kind === 'seq2seq' ? graph.descriptor.seq2seq?.(reader).decoder : undefined;
  } catch {
    return undefined; // the session reports a config it cannot read
  }
}

/**
 * Check everything about a request that needs no weights. `maxNewTokens` is for generation (causal
 * prompts must leave room for it); logits need only the prompt to fit.
 */
export async function precheck(dir: string, prompts: ReadonlyArray<string | readonly number[]>, request: { maxNewTokens?: number; flag?: string } = {}): Promise<Prechecked> {
  const ckpt = await analyzeRunnable(dir, 'tp run and tp logits run');
  const graph = ckpt.graph;
  const needsTokenizer = prompts.some((p) => typeof p === 'string');
  const tokenizer = needsTokenizer || existsSync(path.join(ckpt.dir, 'tokenizer.json')) ? await loadTokenizer(ckpt.dir) : undefined;
  if (needsTokenizer && tokenizer === undefined) {
    throw new ArgumentError({ argument: 'prompt', detail: `${dir} has no tokenizer.json, so a text prompt cannot be encoded; give the prompt as token ids (--tokens 1,2,3)` });
  }
  const encoded = prompts.map((p) => (typeof p === 'string' ? tokenizer!.encode(p) : [...p]));
  const { vocab, paddedVocab } = graph.geometry;
  const size = Math.max(vocab, paddedVocab);
  for (const ids of encoded) {
    if (ids.length === 0) throw new ArgumentError({ argument: 'tokens', detail: 'the prompt has no tokens' });
    const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= size);
    if (bad !== undefined) throw new ArgumentError({ argument: 'tokens', detail: `token id ${bad} is outside the vocabulary (0 to ${size - 1})` });
  }
  const limit = positionLimit(graph, decoderSpec(graph, ckpt.config as Record<string, unknown>));
  if (limit !== undefined) {
    const longest = Math.max(...encoded.map((e) => e.length));
    // An encoder–decoder's prompt is the encoder's input; the new tokens are the decoder's.
    const seq2seq = graph.kind === 'seq2seq';
    const needed = (seq2seq ? 1 : longest) + (graph.kind === 'encoder' ? 0 : (request.maxNewTokens ?? 0));
    if (!seq2seq && longest > limit) {
      throw new ArgumentError({ argument: 'tokens', detail: `the prompt has ${longest} tokens but ${graph.title} takes at most ${limit} positions; shorten it to ${limit} tokens or fewer` });
    }
    if (needed > limit && request.maxNewTokens !== undefined) {
      const fit = limit - (seq2seq ? 1 : longest);
      throw new ArgumentError({
        argument: 'maxNewTokens',
        detail: `${seq2seq ? 'the decoder' : `a prompt of ${longest} tokens`} plus ${request.maxNewTokens} new tokens needs ${needed} positions, but ${graph.title} takes at most ${limit}: ${fit} new token${fit === 1 ? '' : 's'} fit${fit === 1 ? 's' : ''} (${request.flag ?? '--max-new-tokens'} ${Math.max(fit, 1)})`,
      });
    }
  }
  return { graph, encoded, tokenizer, positionLimit: limit };
}
