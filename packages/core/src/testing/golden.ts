/**
 * Golden runs for any backend: the families of ../shared/golden (checkpoints written by HF
 * transformers, with the logits, hidden states and greedy tokens it computed) through the engine on
 * `backend`, as framework-agnostic cases like the conformance suite's:
 *
 *     for (const c of goldenCases(backend, { goldenDir, families, tpSizes: [1, 2] })) it(c.name, c.run);
 *
 * Per family and tp size, by the golden's kind: a causal LM's logits at every prompt position, an
 * encoder's masked-LM logits and last hidden state (Perceiver: its latents), an encoder–decoder's
 * decoder logits and encoder output; for generative models the 8 greedy tokens and the logits that
 * chose each of them (the KV-cache path; Reformer's cache-free one); for tp > 1 the logits also
 * against tp = 1 on the same backend. A family's session at each tp size runs once, for all of its cases.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backend/index.js';
import { initInference, type GenerateResult, type InferenceOptions } from '../runtime/index.js';
import type { ConformanceCase } from './conformance.js';

export interface GoldenOptions {
  /** The folder holding one folder per family (`../shared/golden`). */
  goldenDir: string;
  /** Golden folder names (any kind). */
  families: readonly string[];
  /** tp sizes to run; 1 is always run first when any other is given (the others compare with it). */
  tpSizes: readonly number[];
  /** Passed to initInference (dtype, backendOptions, …). */
  session?: Omit<InferenceOptions, 'tpSize' | 'backend'>;
  /** max |ours − golden| / spread of golden (default 1e-4: golden's floats have 6 digits). */
  goldenTolerance?: number;
  /** max |tp N − tp 1| / spread of tp 1 (default 1e-5). */
  tpTolerance?: number;
}

interface Golden {
  model_type: string;
  /** `causal`, `encoder` or `seq2seq` (../shared/golden/README.md). */
  kind: 'causal' | 'encoder' | 'seq2seq';
  input_ids: number[][];
  token_type_ids?: number[][];
  decoder_input_ids?: number[][];
  logits?: number[][][];
  /** Encoders: the base model's last hidden state (Perceiver: its latents). */
  last_hidden_state?: number[][][];
  /** Encoder–decoders: the encoder's output. */
  encoder_last_hidden_state?: number[][][];
  greedy?: { new_tokens: number[][]; step_logits: number[][][] };
}

interface Run {
  /** Per sequence: causal logits at every prompt position, an encoder's MLM logits, or the decoder logits. */
  logits: Float32Array[];
  /** Per sequence: an encoder's last hidden state or an encoder–decoder's encoder output. */
  hidden: Float32Array[];
  greedy: GenerateResult[];
}

// golden's greedy run ignores EOS and generation_config.json's processors (forced BOS/EOS, banned words).
const GREEDY = { maxNewTokens: 8, stopAtEos: false, returnLogits: true, forcedBosTokenId: null, forcedEosTokenId: null, badWordsIds: null } as const;

class GoldenMismatch extends Error {
  override name = 'GoldenMismatch';
}

/** max |ours − ref| / (max(ref) − min(ref)); NaN anywhere counts as a mismatch (returns Infinity). */
export function relativeToSpread(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) throw new GoldenMismatch(`${ours.length} values, the reference has ${ref.length}`);
  let max = -Infinity;
  let min = Infinity;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    max = Math.max(max, r);
    min = Math.min(min, r);
    const d = Math.abs(ours[i]! - r);
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
  }
  if (!(max > min)) throw new GoldenMismatch('the reference has no spread');
  return err / (max - min);
}

const flatten = (rows: ReadonlyArray<ArrayLike<number>>): Float32Array => {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(Array.from(r), at);
    at += r.length;
  }
  return out;
};

export function goldenCases(backend: Backend, options: GoldenOptions): ConformanceCase[] {
  const goldenTol = options.goldenTolerance ?? 1e-4;
  const tpTol = options.tpTolerance ?? 1e-5;
  const tpSizes = options.tpSizes.includes(1) || options.tpSizes.length === 0 ? [...options.tpSizes] : [1, ...options.tpSizes];
  const goldens = new Map<string, Golden>();
  const runs = new Map<string, Promise<Run>>();

  const golden = (family: string): Golden => {
    let g = goldens.get(family);
    if (g === undefined) {
      const file = path.join(options.goldenDir, family, 'golden.json');
      if (!existsSync(file)) throw new GoldenMismatch(`${file} is missing`);
      g = JSON.parse(readFileSync(file, 'utf8')) as Golden;
      goldens.set(family, g);
    }
    return g;
  };

  // One session per (family, tp): logits (and hidden states) of both inputs, then the greedy continuation.
  const run = (family: string, tp: number): Promise<Run> => {
    const key = `${family}@${tp}`;
    let r = runs.get(key);
    if (r === undefined) {
      r = (async () => {
        const g = golden(family);
        const session = await initInference(path.join(options.goldenDir, family), { ...options.session, backend, tpSize: tp });
        try {
          if (g.kind === 'encoder') {
            const inputs = g.input_ids.map((tokens, b) => ({ tokens, ...(g.token_type_ids ? { tokenTypes: g.token_type_ids[b]! } : {}) }));
            const out = await session.encoderOutputs(inputs, { hidden: true, logits: g.logits !== undefined });
            return { logits: out.flatMap((o) => (o.logits ? [o.logits] : [])), hidden: out.map((o) => o.hidden!), greedy: [] };
          }
          if (g.kind === 'seq2seq') {
            const out = await session.seq2seqLogits(g.input_ids, { decoderTokens: g.decoder_input_ids!, hidden: true });
            const greedy = await session.generate(g.input_ids, GREEDY);
            return { logits: out.map((o) => o.logits), hidden: out.map((o) => o.hidden!), greedy };
          }
          const logits = await session.logits(g.input_ids);
          const greedy = await session.generate(g.input_ids, GREEDY);
          return { logits, hidden: [], greedy };
        } finally {
          await session.dispose();
        }
      })();
      runs.set(key, r);
    }
    return r;
  };

  const check = (what: string, err: number, tol: number) => {
    if (!(err <= tol)) throw new GoldenMismatch(`${what}: max |Δ| is ${err.toPrecision(3)} of the reference's spread, above ${tol}`);
  };

  const cases: ConformanceCase[] = [];
  for (const family of options.families) {
    const g = golden(family);
    const hiddenRef = g.kind === 'encoder' ? g.last_hidden_state : g.kind === 'seq2seq' ? g.encoder_last_hidden_state : undefined;
    const what = g.kind === 'encoder' ? 'masked-LM logits' : g.kind === 'seq2seq' ? 'decoder logits' : 'logits at every position';
    for (const tp of tpSizes) {
      if (g.logits !== undefined) {
        cases.push({
          name: `${family} TP=${tp}: ${what} of both inputs within ${goldenTol} of golden's spread`,
          run: async () => {
            const ours = await run(family, tp);
            check(`${family} TP=${tp} ${what} vs golden`, relativeToSpread(flatten(ours.logits), Float32Array.from(g.logits!.flat(2))), goldenTol);
            if (tp !== 1) {
              const one = await run(family, 1);
              ours.logits.forEach((l, b) => check(`${family} TP=${tp} vs TP=1, sequence ${b}`, relativeToSpread(l, one.logits[b]!), tpTol));
            }
          },
        });
      }
      if (hiddenRef !== undefined) {
        const name = g.kind === 'encoder' ? 'last hidden state' : 'encoder output';
        cases.push({
          name: `${family} TP=${tp}: ${name} of both inputs within ${goldenTol} of golden's spread`,
          run: async () => {
            const ours = await run(family, tp);
            check(`${family} TP=${tp} ${name} vs golden`, relativeToSpread(flatten(ours.hidden), Float32Array.from(hiddenRef.flat(2))), goldenTol);
          },
        });
      }
      if (g.greedy !== undefined && g.kind !== 'encoder') {
        const greedy = g.greedy;
        cases.push({
          name: `${family} TP=${tp}: greedy decoding gives golden's 8 tokens, chosen by logits within ${goldenTol} of golden's`,
          run: async () => {
            const ours = await run(family, tp);
            const tokens = ours.greedy.map((r) => r.tokens);
            if (JSON.stringify(tokens) !== JSON.stringify(greedy.new_tokens)) {
              throw new GoldenMismatch(`${family} TP=${tp}: greedy tokens ${JSON.stringify(tokens)}, golden ${JSON.stringify(greedy.new_tokens)}`);
            }
            ours.greedy.forEach((r, b) => {
              const steps = r.stepLogits ?? [];
              if (steps.length !== 8) throw new GoldenMismatch(`${family} TP=${tp}: ${steps.length} step logits for sequence ${b}, expected 8`);
              check(`${family} TP=${tp} step logits of sequence ${b}`, relativeToSpread(flatten(steps), Float32Array.from(greedy.step_logits[b]!.flat())), goldenTol);
            });
          },
        });
      }
    }
  }
  return cases;
}
