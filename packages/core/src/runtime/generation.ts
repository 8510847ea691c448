/**
 * What `generation_config.json` says about generating (transformers' GenerationConfig), and the
 * per-step token rules it implies: the decoder's start token, the end-of-sequence ids (one or a
 * list), a token forced first (M2M100's target language, `forced_bos_token_id`) or last
 * (`forced_eos_token_id`, when the length limit is reached), and tokens never to choose
 * (`bad_words_ids` of one token: Marian's pad). Options given to `generate` override the file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors/index.js';

export interface GenerationDefaults {
  decoderStartTokenId?: number;
  eosTokenIds?: number[];
  forcedBosTokenId?: number;
  forcedEosTokenId?: number;
  /** Each entry a token sequence never to produce; only single tokens are enforced. */
  badWordsIds?: number[][];
  maxNewTokens?: number;
  numBeams?: number;
}

const ids = (v: unknown): number[] | undefined => (typeof v === 'number' ? [v] : Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** generation_config.json of a checkpoint folder, or {} when there is none. */
export async function readGenerationConfig(dir: string): Promise<GenerationDefaults> {
  const file = path.join(dir, 'generation_config.json');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CheckpointError('config-invalid', { file, detail: `cannot be read as JSON (${(cause as Error).message})` }, { cause });
  }
  const out: GenerationDefaults = {};
  const set = <K extends keyof GenerationDefaults>(key: K, value: GenerationDefaults[K] | undefined) => {
    if (value !== undefined) out[key] = value;
  };
  set('decoderStartTokenId', num(raw['decoder_start_token_id']));
  set('eosTokenIds', ids(raw['eos_token_id']));
  set('forcedBosTokenId', num(raw['forced_bos_token_id']));
  set('forcedEosTokenId', num(raw['forced_eos_token_id']));
  const bad = raw['bad_words_ids'];
  if (Array.isArray(bad)) set('badWordsIds', bad.filter((w): w is number[] => Array.isArray(w) && w.every((x) => typeof x === 'number')));
  set('maxNewTokens', num(raw['max_new_tokens']));
  set('numBeams', num(raw['num_beams']));
  return out;
}

/** The rules one generation follows, after options override the file. */
export interface TokenRules {
  eos: ReadonlySet<number>;
  forcedFirst: number | undefined;
  forcedLast: number | undefined;
  /** Single tokens never chosen. */
  banned: ReadonlySet<number>;
}

/** The token step i must be, when a rule forces one (the first new token, or the last one allowed). */
export function forcedToken(rules: TokenRules, step: number, maxNew: number): number | undefined {
  if (step === 0 && rules.forcedFirst !== undefined) return rules.forcedFirst;
  if (step === maxNew - 1 && rules.forcedLast !== undefined) return rules.forcedLast;
  return undefined;
}
