/**
 * Golden runs for any backend: the decoder families of ../shared/golden (checkpoints written by HF
 * transformers, with the logits and greedy tokens it computed) through the engine on `backend`, as
 * framework-agnostic cases like the conformance suite's:
 *
 *     for (const c of goldenCases(backend, { goldenDir, families, tpSizes: [1, 2] })) it(c.name, c.run);
 *
 * Per family and tp size: the logits at every prompt position against golden's, the 8 greedy tokens,
 * and the logits that chose each of them (the KV-cache path); for tp > 1 also against tp = 1 on the
 * same backend. A family's session at each tp size runs once, for all of its cases.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backend/index.js';
import { initInference, type GenerateResult, type InferenceOptions } from '../runtime/index.js';
import type { ConformanceCase } from './conformance.js';

export interface GoldenOptions {
  /** The folder holding one folder per family (`../shared/golden`). */
  goldenDir: string;
  /** Golden folder names (causal decoder families). */
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
  input_ids: number[][];
  logits: number[][][];
  greedy: { new_tokens: number[][]; step_logits: number[][][] };
}

interface Run {
  logits: Float32Array[];
  greedy: GenerateResult[];
}

const GREEDY = { maxNewTokens: 8, stopAtEos: false, returnLogits: true } as const;

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

  // One session per (family, tp): logits of both prompts, then the greedy continuation.
  const run = (family: string, tp: number): Promise<Run> => {
    const key = `${family}@${tp}`;
    let r = runs.get(key);
    if (r === undefined) {
      r = (async () => {
        const g = golden(family);
        const session = await initInference(path.join(options.goldenDir, family), { ...options.session, backend, tpSize: tp });
        try {
          const logits = await session.logits(g.input_ids);
          const greedy = await session.generate(g.input_ids, GREEDY);
          return { logits, greedy };
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
    for (const tp of tpSizes) {
      cases.push({
        name: `${family} TP=${tp}: logits at every position of both prompts within ${goldenTol} of golden's spread`,
        run: async () => {
          const g = golden(family);
          const ours = await run(family, tp);
          check(`${family} TP=${tp} logits vs golden`, relativeToSpread(flatten(ours.logits), Float32Array.from(g.logits.flat(2))), goldenTol);
          if (tp !== 1) {
            const one = await run(family, 1);
            ours.logits.forEach((l, b) => check(`${family} TP=${tp} vs TP=1, sequence ${b}`, relativeToSpread(l, one.logits[b]!), tpTol));
          }
        },
      });
      cases.push({
        name: `${family} TP=${tp}: greedy decoding gives golden's 8 tokens, chosen by logits within ${goldenTol} of golden's (KV-cache path)`,
        run: async () => {
          const g = golden(family);
          const ours = await run(family, tp);
          const tokens = ours.greedy.map((r) => r.tokens);
          if (JSON.stringify(tokens) !== JSON.stringify(g.greedy.new_tokens)) {
            throw new GoldenMismatch(`${family} TP=${tp}: greedy tokens ${JSON.stringify(tokens)}, golden ${JSON.stringify(g.greedy.new_tokens)}`);
          }
          ours.greedy.forEach((r, b) => {
            const steps = r.stepLogits ?? [];
            if (steps.length !== 8) throw new GoldenMismatch(`${family} TP=${tp}: ${steps.length} step logits for sequence ${b}, expected 8`);
            check(`${family} TP=${tp} step logits of sequence ${b}`, relativeToSpread(flatten(steps), Float32Array.from(g.greedy.step_logits[b]!.flat())), goldenTol);
          });
        },
      });
    }
  }
  return cases;
}
