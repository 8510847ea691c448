/**
 * The methods a model answers, by its kind — `logits`, `generate`, `encoderOutputs`, `seq2seqLogits` —
 * with the checks that belong to a kind (which method fits which model, token types, an encoder's
 * masked-LM head and pooler) and the slicing of each rank-0 result back into one output per input.
 * Node's InferenceSession (session.ts) and a page's WebModel (web-session.ts) both delegate here, so
 * the two answer alike; what reaches the ranks is model-requests.ts. Browser-safe: no Node module.
 */
import { ArgumentError } from '../errors/index.js';
import type { ConfigReader, DecoderSpec, EncoderSpec, ModelGraph, Seq2SeqSpec } from '../graph/index.js';
import type { TPPlan } from '../plan/index.js';
import { encoderBatch } from './batches.js';
import type { GenerateOptions, GenerateResult } from './decode-loop.js';
import { KIND_NAMES, type ModelRequests } from './model-requests.js';
import { withPositionTable } from './source-limit.js';

export interface LogitsOptions {
  /** Encoder–decoder models: each sequence's decoder input (default: the decoder start token alone). */
  decoderTokens?: ReadonlyArray<readonly number[]>;
  /** Encoder–decoder models: the decoder's first token (default: generation_config.json, then config.json). */
  decoderStartTokenId?: number;
}

/** One encoder input: token ids (or text) and, for families with segments, their token types. */
export interface EncoderInput {
  tokens: string | readonly number[];
  tokenTypes?: readonly number[];
}

export interface EncoderOutputOptions {
  /** Return the last hidden state (default true). */
  hidden?: boolean;
  /** Return the masked-LM logits (default: when the checkpoint has the head). */
  logits?: boolean;
  /** Return the pooler's output, tanh(dense(first token)) (default: false; the checkpoint needs `pooler.dense`). */
  pooled?: boolean;
}

export interface EncoderOutput {
  tokens: number[];
  /** [length × hidden], the encoder's last hidden state (Perceiver: its latents, [num_latents × d_latents]). */
  hidden?: Float32Array;
  /** [length × vocab], the masked-LM logits (Perceiver: at its decoder queries, [max_position_embeddings × vocab]). */
  logits?: Float32Array;
  /** [hidden], the pooler's output. */
  pooled?: Float32Array;
  /** Rows of `hidden` / `logits` when they are not one per input token (Perceiver: num_latents, and its decoder queries). */
  hiddenRows?: number;
  logitRows?: number;
}

/** An encoder–decoder's answer for one sequence (seq2seqLogits). */
export interface Seq2SeqOutput {
  decoderTokens: number[];
  /** [decoder length × vocab] */
  logits: Float32Array;
  /** [source length × hidden], the encoder's last hidden state, when asked. */
  hidden?: Float32Array;
}

/**
 * The specs a coordinator's requests run with: an encoder's spec, a causal model's decoder spec, or an
 * encoder–decoder's spec (its encoder limited to its position table) and its decoder stack's.
 */
export function modelSpecs(graph: ModelGraph, config: ConfigReader): { spec: DecoderSpec; seq2seq: Seq2SeqSpec | undefined } {
  const seq2seq = graph.kind === 'seq2seq' ? withPositionTable(graph.descriptor.seq2seq!(config), graph) : undefined;
  const spec = graph.kind === 'encoder' ? graph.descriptor.encoder!(config) : (seq2seq?.decoder ?? graph.descriptor.decoder!(config));
  return { spec, seq2seq };
}

const isEncoderInput = (x: unknown): x is EncoderInput => typeof x === 'object' && x !== null && !Array.isArray(x) && 'tokens' in x;

export class ModelMethods {
  private readonly graph: ModelGraph;

  constructor(
    private readonly requests: ModelRequests,
    private readonly plan: TPPlan,
  ) {
    this.graph = requests.graph;
  }

  /**
   * Logits at every position of each sequence: one Float32Array of [length × vocab] per sequence —
   * next-token logits of a causal model, masked-LM logits of an encoder, the decoder's of an
   * encoder–decoder.
   */
  logits(sequences: readonly (readonly number[])[], options: LogitsOptions = {}): Promise<Float32Array[]> {
    if (this.graph.kind === 'encoder') return this.encoderOutputs(sequences, { hidden: false, logits: true }).then((out) => out.map((o) => o.logits!));
    if (this.graph.kind === 'seq2seq') return this.seq2seqLogits(sequences, options).then((out) => out.map((o) => o.logits));
    if (options.decoderTokens !== undefined) return Promise.reject(new ArgumentError({ argument: 'decoderTokens', detail: `${this.graph.title} is not an encoder–decoder model` }));
    return this.requests.causalLogits(sequences);
  }

  /** generate of a causal model or an encoder–decoder (model-requests.ts); an encoder is refused. */
  generate(prompts: ReadonlyArray<string | readonly number[]>, options: GenerateOptions = {}): Promise<GenerateResult[]> {
    try {
      this.requireKind(['causal', 'seq2seq'], 'generate');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.requests.generate(prompts, options);
  }

  /**
   * An encoder's outputs for each input: the last hidden state ([length × hidden]) and the masked-LM
   * logits ([length × vocab], when the checkpoint has the head). Inputs are token ids, text (with the
   * tokenizer) or `{ tokens, tokenTypes }`; a batch is right-padded and the padding masked. An
   * encoder–decoder gives its encoder's last hidden state.
   */
  encoderOutputs(inputs: ReadonlyArray<EncoderInput | string | readonly number[]>, options: EncoderOutputOptions = {}): Promise<EncoderOutput[]> {
    try {
      this.requireKind(['encoder', 'seq2seq'], 'encoderOutputs');
    } catch (error) {
      return Promise.reject(error);
    }
    const { graph, requests, plan } = this;
    if (graph.kind === 'seq2seq') {
      // The encoder of an encoder–decoder: its last hidden state (the decoder runs one start row beside it).
      if (options.logits === true) return Promise.reject(new ArgumentError({ argument: 'logits', detail: `${graph.title}'s encoder has no masked-LM head; logits() gives the decoder's` }));
      if (inputs.some((i) => isEncoderInput(i) && i.tokenTypes !== undefined)) return Promise.reject(new ArgumentError({ argument: 'tokenTypes', detail: `${graph.title} has no token types` }));
      const sequences = inputs.map((i) => (typeof i === 'string' ? i : isEncoderInput(i) ? i.tokens : i)).map((t) => (typeof t === 'string' ? requests.encode(t) : [...t]));
      return this.seq2seqLogits(sequences, { hidden: true }).then((out) => out.map((o, b) => ({ tokens: sequences[b]!, hidden: o.hidden! })));
    }
    return requests.ranks.serial(async () => {
      const items = inputs.map((input): { tokens: number[]; tokenTypes: readonly number[] | undefined } => {
        if (typeof input === 'string') return { tokens: requests.encode(input), tokenTypes: undefined };
        if (isEncoderInput(input)) return { tokens: typeof input.tokens === 'string' ? requests.encode(input.tokens) : [...input.tokens], tokenTypes: input.tokenTypes };
        return { tokens: [...input], tokenTypes: undefined };
      });
      const sequences = items.map((i) => i.tokens);
      requests.checkTokens(sequences);
      requests.checkLength(sequences, 0);
      items.forEach((item, i) => {
        if (item.tokenTypes !== undefined && item.tokenTypes.length !== item.tokens.length) {
          throw new ArgumentError({ argument: 'tokenTypes', detail: `input ${i} has ${item.tokens.length} tokens but ${item.tokenTypes.length} token types` });
        }
      });
      const hidden = options.hidden ?? true;
      const logits = options.logits ?? plan.lmHead !== null;
      if (logits && plan.lmHead === null) {
        throw new ArgumentError({ argument: 'logits', detail: `${graph.title} (${requests.source}) has no masked-LM head; ask for the hidden states only` });
      }
      const typeTable = graph.weights.find((w) => w.role === 'type_embed' && w.shape.length === 2);
      const step = encoderBatch(items, requests.spec as EncoderSpec, typeTable?.shape[0] ?? 1);
      const pooled = options.pooled === true;
      if (pooled && !graph.weights.some((w) => w.slot === 'pooler')) {
        throw new ArgumentError({ argument: 'pooled', detail: `${graph.title} (${requests.source}) has no pooler (pooler.dense); use the hidden states` });
      }
      const result = await requests.ranks.forward({ ...step, logits: logits ? 'all' : 'none', output: 'logits', hidden, pooled });
      const { rows } = step;
      return items.map((item, b) => {
        const n = item.tokens.length;
        // An output with rows of its own (Perceiver's latents and decoder queries) is whole per sequence.
        const rowsOf = (data: Float32Array, own: number | undefined) => {
          const width = data.length / (step.batch * (own ?? rows));
          return own === undefined ? data.slice(b * rows * width, (b * rows + n) * width) : data.slice(b * own * width, (b + 1) * own * width);
        };
        const width = graph.geometry.hidden;
        return {
          tokens: item.tokens,
          ...(result.hidden ? { hidden: rowsOf(result.hidden, result.hiddenRows) } : {}),
          ...(result.logits ? { logits: rowsOf(result.logits, result.logitRows) } : {}),
          ...(result.pooled ? { pooled: result.pooled.slice(b * width, (b + 1) * width) } : {}),
          ...(result.hidden && result.hiddenRows !== undefined ? { hiddenRows: result.hiddenRows } : {}),
          ...(result.logits && result.logitRows !== undefined ? { logitRows: result.logitRows } : {}),
        };
      });
    });
  }

  /**
   * An encoder–decoder's decoder logits for each decoder position ([decoder length × vocab] per
   * sequence; the decoder input defaults to the start token alone), and the encoder's last hidden
   * state ([source length × hidden]) when asked.
   */
  seq2seqLogits(sequences: ReadonlyArray<readonly number[]>, options: LogitsOptions & { hidden?: boolean } = {}): Promise<Seq2SeqOutput[]> {
    try {
      this.requireKind(['seq2seq'], 'seq2seqLogits');
    } catch (error) {
      return Promise.reject(error);
    }
    const { requests } = this;
    return requests.ranks.serial(async () => {
      requests.checkTokens(sequences);
      if (options.decoderTokens !== undefined && options.decoderTokens.length !== sequences.length) {
        throw new ArgumentError({ argument: 'decoderTokens', detail: `${options.decoderTokens.length} decoder inputs for ${sequences.length} sequences` });
      }
      const step = await requests.decoderStart(sequences, options, options.decoderTokens);
      const result = await requests.ranks.forward({ ...step, logits: 'all', output: 'logits', hidden: options.hidden === true });
      const logits = result.logits!;
      const vocab = logits.length / (step.batch * step.rows);
      const source = step.encoder!.rows;
      return sequences.map((seq, b) => {
        const decoderTokens = Array.from(step.ids.subarray(b * step.rows, b * step.rows + (options.decoderTokens?.[b]?.length ?? 1)));
        const out: Seq2SeqOutput = {
          decoderTokens,
          logits: logits.slice(b * step.rows * vocab, (b * step.rows + decoderTokens.length) * vocab),
        };
        if (result.hidden) {
          const width = result.hidden.length / (step.batch * source);
          out.hidden = result.hidden.slice(b * source * width, (b * source + seq.length) * width);
        }
        return out;
      });
    });
  }

  /** A method that does not fit the model's kind is refused, saying which do. */
  private requireKind(kinds: ReadonlyArray<ModelGraph['kind']>, method: string): void {
    if (kinds.includes(this.graph.kind)) return;
    const fits: Record<ModelGraph['kind'], string> = {
      causal: 'generate() and logits()',
      encoder: 'encoderOutputs() (hidden states and masked-LM logits) and logits()',
      seq2seq: 'generate(), logits() (the decoder logits, seq2seqLogits() with the encoder states) and encoderOutputs() (the encoder states)',
    };
    throw new ArgumentError({
      argument: 'method',
      detail: `${method}() does not fit ${this.graph.title}, ${KIND_NAMES[this.graph.kind]}; it has ${fits[this.graph.kind]}`,
    });
  }
}
