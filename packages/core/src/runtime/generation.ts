/**
 * What `generation_config.json` says about generating (transformers' GenerationConfig), and the
 * per-step token rules it implies: the decoder's start token, the end-of-sequence ids (one or a
 * list), a token forced first (M2M100's target language, `forced_bos_token_id`) or last
 * (`forced_eos_token_id`, when the length limit is reached), and token sequences never to produce
 * (`bad_words_ids`: Marian's pad, or a multi-token word whose last token is banned once the tokens
 * before it were produced); and the beam search settings (`num_beams`, `length_penalty`,
 * `early_stopping`, `num_return_sequences`). Options given to `generate` override the file. Browser-safe:
 * Node's session reads the file with generation-file.ts, a page fetches it (web-session.ts).
 */
import { CheckpointError } from '../errors/index.js';

export interface GenerationDefaults {
  decoderStartTokenId?: number;
  eosTokenIds?: number[];
  forcedBosTokenId?: number;
  forcedEosTokenId?: number;
  /** Each entry a token sequence never to produce. */
  badWordsIds?: number[][];
  maxNewTokens?: number;
  numBeams?: number;
  lengthPenalty?: number;
  earlyStopping?: boolean | 'never';
  numReturnSequences?: number;
}

const ids = (v: unknown): number[] | undefined => (typeof v === 'number' ? [v] : Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** What generation_config.json's text says (`file` names it in errors). */
export function parseGenerationConfig(text: string, file: string): GenerationDefaults {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
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
  set('lengthPenalty', num(raw['length_penalty']));
  const early = raw['early_stopping'];
  set('earlyStopping', typeof early === 'boolean' || early === 'never' ? early : undefined);
  set('numReturnSequences', num(raw['num_return_sequences']));
  return out;
}

/** The rules one generation follows, after options override the file. */
export interface TokenRules {
  eos: ReadonlySet<number>;
  forcedFirst: number | undefined;
  forcedLast: number | undefined;
  /** Single tokens never chosen. */
  banned: ReadonlySet<number>;
  /** Token sequences of two or more: the last is never chosen right after the others. */
  bannedSequences: ReadonlyArray<readonly number[]>;
}

/**
 * The rules from `bad_words_ids`, as transformers' NoBadWordsLogitsProcessor reads them: an entry that
 * is a lone end-of-sequence id is dropped (stopping is never banned), single tokens are always banned,
 * longer ones ban their last token after their prefix.
 */
export function badWordRules(badWordsIds: ReadonlyArray<readonly number[]>, eos: ReadonlySet<number>): Pick<TokenRules, 'banned' | 'bannedSequences'> {
  const words = badWordsIds.filter((w) => w.length > 0 && !(w.length === 1 && eos.has(w[0]!)));
  return { banned: new Set(words.filter((w) => w.length === 1).map((w) => w[0]!)), bannedSequences: words.filter((w) => w.length > 1) };
}

/**
 * The tokens banned after `context` (what the model has seen of the sequence: a causal model's prompt
 * and new tokens, an encoder–decoder's decoder start and new tokens): every single banned token, and
 * the last token of each banned sequence whose other tokens end the context.
 */
export function bannedAfter(rules: Pick<TokenRules, 'banned' | 'bannedSequences'>, context: readonly number[]): ReadonlySet<number> {
  if (rules.bannedSequences.length === 0) return rules.banned;
  let out: Set<number> | undefined;
  for (const word of rules.bannedSequences) {
    const prefix = word.length - 1;
    if (prefix > context.length) continue;
    let match = true;
    for (let i = 0; i < prefix && match; i++) match = context[context.length - prefix + i] === word[i];
    if (!match) continue;
    out ??= new Set(rules.banned);
    out.add(word[prefix]!);
  }
  return out ?? rules.banned;
}

/** The most tokens `bannedAfter` can ban at one step (to size a device top-k). */
export function mostBanned(rules: Pick<TokenRules, 'banned' | 'bannedSequences'>): number {
  return new Set([...rules.banned, ...rules.bannedSequences.map((w) => w[w.length - 1]!)]).size;
}

/** The token step i must be, when a rule forces one (the first new token, or the last one allowed). */
export function forcedToken(rules: TokenRules, step: number, maxNew: number): number | undefined {
  if (step === 0 && rules.forcedFirst !== undefined) return rules.forcedFirst;
  if (step === maxNew - 1 && rules.forcedLast !== undefined) return rules.forcedLast;
  return undefined;
}
