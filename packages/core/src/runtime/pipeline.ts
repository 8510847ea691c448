/**
 * `pipeline(task, dir, options)`, shaped like transformers': an async factory returning a callable
 * with `dispose()`. Tasks: `text-generation` (causal models) → `[{ generated_text }]`, the prompt and
 * its continuation; `text2text-generation` (encoder–decoders) → `[{ generated_text }]`, the output
 * alone (both: one entry per returned sequence with `num_beams` and `num_return_sequences`); `fill-mask`
 * (encoders with a masked-LM head) → the top tokens for each mask, `[{ score, token, token_str,
 * sequence }]`; `feature-extraction` (encoders) → the last hidden state, `[1][tokens][hidden]` (and
 * `.pooled(text)`, the pooler's output, for models that have one).
 */
import { ArgumentError } from '../errors/index.js';
import { argmax } from './sampling.js';
import { initInference, type GenerateOptions, type GenerateResult, type InferenceOptions, type InferenceSession } from './session.js';
import type { TextTokenizer } from './tokenizer.js';

export interface TextGenerationOutput {
  generated_text: string;
}

/**
 * For a prompt given as token ids (a checkpoint without tokenizer.json): the ids — the prompt's and
 * the new ones, or only the new ones with return_full_text: false — and the text when there is a
 * tokenizer to decode it.
 */
export interface TokenGenerationOutput {
  generated_token_ids: number[];
  generated_text: string | undefined;
}

/** generate's options, or transformers' names for the common ones. */
type TextGenerationOptions = GenerateOptions & {
  max_new_tokens?: number;
  return_full_text?: boolean;
  num_beams?: number;
  num_return_sequences?: number;
  length_penalty?: number;
  early_stopping?: boolean | 'never';
};

/** transformers' option names mapped onto generate's (generate's own names win). */
function generateOptions(opts: TextGenerationOptions, maxNewTokens: number | undefined): GenerateOptions {
  const { max_new_tokens, return_full_text, num_beams, num_return_sequences, length_penalty, early_stopping, ...rest } = opts;
  void return_full_text;
  const pick = <T>(own: T | undefined, hf: T | undefined) => own ?? hf;
  const out: GenerateOptions = { ...rest };
  const set = <K extends keyof GenerateOptions>(key: K, value: GenerateOptions[K] | undefined) => {
    if (value !== undefined) out[key] = value;
  };
  set('maxNewTokens', pick(opts.maxNewTokens, max_new_tokens) ?? maxNewTokens);
  set('numBeams', pick(opts.numBeams, num_beams));
  set('numReturnSequences', pick(opts.numReturnSequences, num_return_sequences));
  set('lengthPenalty', pick(opts.lengthPenalty, length_penalty));
  set('earlyStopping', pick(opts.earlyStopping, early_stopping));
  return out;
}

/** Every returned sequence's tokens: the beam hypotheses asked for, or the one sequence. */
const returned = (r: GenerateResult): number[][] => r.sequences?.map((h) => h.tokens) ?? [r.tokens];

export interface TextGenerationPipeline {
  (prompt: string, options?: TextGenerationOptions): Promise<TextGenerationOutput[]>;
  /** A prompt as token ids (needs no tokenizer.json), or a batch of them. */
  (prompt: readonly number[], options?: TextGenerationOptions): Promise<TokenGenerationOutput[]>;
  (prompts: ReadonlyArray<readonly number[]>, options?: TextGenerationOptions): Promise<TokenGenerationOutput[][]>;
  (prompts: string[], options?: TextGenerationOptions): Promise<TextGenerationOutput[][]>;
  readonly session: InferenceSession;
  dispose(): Promise<void>;
}

/** One candidate for a masked position, as transformers' fill-mask pipeline gives it. */
export interface FillMaskOutput {
  /** Softmax probability of the token at that position. */
  score: number;
  token: number;
  /** The token decoded (transformers' `tokenizer.decode([token])`), or its vocabulary entry when that is empty (a special token). */
  token_str: string;
  /** The input with this token in place of the mask (special tokens skipped). */
  sequence: string;
}

export interface FillMaskPipeline {
  /** One mask: its candidates; several masks: one list per mask, in order. */
  (text: string, options?: { top_k?: number }): Promise<FillMaskOutput[] | FillMaskOutput[][]>;
  (texts: string[], options?: { top_k?: number }): Promise<Array<FillMaskOutput[] | FillMaskOutput[][]>>;
  readonly session: InferenceSession;
  /** The mask token the inputs must contain. */
  readonly maskToken: string;
  dispose(): Promise<void>;
}

export interface FeatureExtractionPipeline {
  /** The last hidden state: [1][tokens][hidden] for one text. */
  (text: string): Promise<number[][][]>;
  (texts: string[]): Promise<number[][][][]>;
  /** The pooler's output, tanh(dense(first token)), for models that have one: [1][hidden] per text. */
  pooled(text: string): Promise<number[][]>;
  pooled(texts: string[]): Promise<number[][][]>;
  readonly session: InferenceSession;
  dispose(): Promise<void>;
}

/** transformers' text2text-generation: the generated text alone (not the input). */
export interface Text2TextGenerationPipeline {
  (input: string, options?: TextGenerationOptions): Promise<TextGenerationOutput[]>;
  /** An input as token ids (needs no tokenizer.json), or a batch of them: the new ids. */
  (input: readonly number[], options?: TextGenerationOptions): Promise<TokenGenerationOutput[]>;
  (inputs: ReadonlyArray<readonly number[]>, options?: TextGenerationOptions): Promise<TokenGenerationOutput[][]>;
  (inputs: string[], options?: TextGenerationOptions): Promise<TextGenerationOutput[][]>;
  readonly session: InferenceSession;
  dispose(): Promise<void>;
}

export interface PipelineByTask {
  'text-generation': TextGenerationPipeline;
  'text2text-generation': Text2TextGenerationPipeline;
  'fill-mask': FillMaskPipeline;
  'feature-extraction': FeatureExtractionPipeline;
}

const TASKS = ['text-generation', 'text2text-generation', 'fill-mask', 'feature-extraction'] as const;
export type PipelineTask = (typeof TASKS)[number];

export async function pipeline<T extends PipelineTask>(task: T, dir: string, options: InferenceOptions = {}): Promise<PipelineByTask[T]> {
  if (!TASKS.includes(task)) throw new ArgumentError({ argument: 'task', detail: `unsupported task "${task}". Tasks: ${TASKS.join(', ')}` });
  const session = await initInference(dir, options);
  try {
    const make = { 'text-generation': textGeneration, 'text2text-generation': text2text, 'fill-mask': fillMask, 'feature-extraction': featureExtraction }[task];
    return make(session, dir) as PipelineByTask[T];
  } catch (error) {
    await session.dispose();
    throw error;
  }
}

function needTokenizer(session: InferenceSession, dir: string, task: string): TextTokenizer {
  if (session.tokenizer === undefined) throw new ArgumentError({ argument: 'dir', detail: `${dir} has no tokenizer.json, which a text input to the ${task} pipeline needs; give the input as token ids instead` });
  return session.tokenizer;
}

function needKind(session: InferenceSession, task: string, kinds: string[], what: string): void {
  if (!kinds.includes(session.graph.kind)) {
    throw new ArgumentError({ argument: 'task', detail: `the ${task} pipeline needs ${what}; ${session.graph.title} is a ${session.graph.kind} model` });
  }
}

type GenerationInput = string | string[] | readonly number[] | ReadonlyArray<readonly number[]>;

/** One prompt or a batch, text or token ids: the prompts and whether the input was a single one. */
function prompts(session: InferenceSession, dir: string, task: string, input: GenerationInput): { list: Array<string | readonly number[]>; single: boolean } {
  const single = typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'number') && input.length > 0);
  const list = (single ? [input] : [...(input as ReadonlyArray<string | readonly number[]>)]) as Array<string | readonly number[]>;
  if (list.some((p) => typeof p === 'string')) needTokenizer(session, dir, task);
  return { list, single };
}

function textGeneration(session: InferenceSession, dir: string): TextGenerationPipeline {
  needKind(session, 'text-generation', ['causal'], 'a causal language model');
  const tokenizer = session.tokenizer;
  const run = async (input: GenerationInput, opts: TextGenerationOptions = {}) => {
    const { list, single } = prompts(session, dir, 'text-generation', input);
    const results = await session.generate(list, generateOptions(opts, 32));
    const full = opts.return_full_text ?? true;
    const outputs = results.map((r, i) =>
      returned(r).map((tokens) => {
        const prompt = list[i]!;
        if (typeof prompt === 'string') return { generated_text: (full ? prompt : '') + tokenizer!.decode(tokens) };
        const ids = full ? [...prompt, ...tokens] : tokens;
        return { generated_token_ids: ids, generated_text: tokenizer?.decode(ids) };
      }),
    );
    return single ? outputs[0]! : outputs;
  };
  return Object.assign(run, { session, dispose: () => session.dispose() }) as TextGenerationPipeline;
}

function text2text(session: InferenceSession, dir: string): Text2TextGenerationPipeline {
  needKind(session, 'text2text-generation', ['seq2seq'], 'an encoder–decoder model (T5, BART, Marian…)');
  const tokenizer = session.tokenizer;
  const run = async (input: GenerationInput, opts: TextGenerationOptions = {}) => {
    const { list, single } = prompts(session, dir, 'text2text-generation', input);
    const results = await session.generate(list, generateOptions(opts, session.generation.maxNewTokens ?? 32));
    const outputs = results.map((r, i) =>
      returned(r).map((tokens) => (typeof list[i] === 'string' ? { generated_text: tokenizer!.decode(tokens) } : { generated_token_ids: tokens, generated_text: tokenizer?.decode(tokens) })),
    );
    return single ? outputs[0]! : outputs;
  };
  return Object.assign(run, { session, dispose: () => session.dispose() }) as Text2TextGenerationPipeline;
}

function fillMask(session: InferenceSession, dir: string): FillMaskPipeline {
  needKind(session, 'fill-mask', ['encoder'], 'an encoder with a masked-LM head');
  if (session.plan.lmHead === null) throw new ArgumentError({ argument: 'task', detail: `the fill-mask pipeline needs a masked-LM head; ${dir} has none (try feature-extraction)` });
  const tokenizer = needTokenizer(session, dir, 'fill-mask');
  const mask = tokenizer.maskToken;
  if (mask === undefined) throw new ArgumentError({ argument: 'dir', detail: `the tokenizer of ${dir} has no mask token ([MASK] or <mask>)` });
  const run = async (input: string | string[], opts: { top_k?: number } = {}) => {
    const texts = typeof input === 'string' ? [input] : input;
    const topK = opts.top_k ?? 5;
    if (!Number.isInteger(topK) || topK < 1) throw new ArgumentError({ argument: 'top_k', detail: `must be a positive integer, got ${topK}` });
    const sequences = texts.map((t) => tokenizer.encode(t));
    sequences.forEach((ids, i) => {
      if (!ids.includes(mask.id)) throw new ArgumentError({ argument: 'text', detail: `input ${i} ("${texts[i]}") has no ${mask.text} to fill` });
    });
    const outputs = await session.encoderOutputs(sequences, { hidden: false, logits: true });
    const results = sequences.map((ids, i) => {
      const logits = outputs[i]!.logits!;
      const vocab = logits.length / ids.length;
      const perMask = ids.flatMap((id, t) => (id === mask.id ? [fillOne(tokenizer, ids, t, logits.subarray(t * vocab, (t + 1) * vocab), topK)] : []));
      return perMask.length === 1 ? perMask[0]! : perMask;
    });
    return typeof input === 'string' ? results[0]! : results;
  };
  return Object.assign(run, { session, maskToken: mask.text, dispose: () => session.dispose() }) as FillMaskPipeline;
}

/** The top-k tokens at position t by softmax probability, each with the filled-in sequence. */
export function fillOne(tokenizer: TextTokenizer, ids: readonly number[], t: number, logits: Float32Array, topK: number): FillMaskOutput[] {
  const max = logits[argmax(logits)]!;
  let total = 0;
  for (const l of logits) total += Math.exp(l - max);
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  return order.slice(0, Math.min(topK, logits.length)).map((token) => {
    const filled = [...ids];
    filled[t] = token;
    return { score: Math.exp(logits[token]! - max) / total, token, token_str: tokenizer.decode([token]) || (tokenizer.idToToken?.(token) ?? ''), sequence: tokenizer.decode(filled) };
  });
}

function featureExtraction(session: InferenceSession, dir: string): FeatureExtractionPipeline {
  needKind(session, 'feature-extraction', ['encoder'], 'an encoder');
  const tokenizer = needTokenizer(session, dir, 'feature-extraction');
  const run = async (input: string | string[]) => {
    const texts = typeof input === 'string' ? [input] : input;
    const outputs = await session.encoderOutputs(texts.map((t) => tokenizer.encode(t)), { hidden: true, logits: false });
    const results = outputs.map((o) => {
      const h = o.hidden!;
      const width = h.length / o.tokens.length;
      return [Array.from({ length: o.tokens.length }, (_, t) => Array.from(h.subarray(t * width, (t + 1) * width)))];
    });
    return typeof input === 'string' ? results[0]! : results;
  };
  const pooled = async (input: string | string[]) => {
    const texts = typeof input === 'string' ? [input] : input;
    const outputs = await session.encoderOutputs(texts.map((t) => tokenizer.encode(t)), { hidden: false, logits: false, pooled: true });
    const results = outputs.map((o) => [Array.from(o.pooled!)]);
    return typeof input === 'string' ? results[0]! : results;
  };
  return Object.assign(run, { session, pooled, dispose: () => session.dispose() }) as FeatureExtractionPipeline;
}
