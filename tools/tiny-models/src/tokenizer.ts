/**
 * A byte-level BPE tokenizer that exactly fills a model's vocabulary: the family's special tokens at
 * the ids config.json names, the 256 byte tokens (GPT-2's byte-to-unicode alphabet) on the next free
 * ids, then merges. The first merges are learned from a small built-in text; when the text runs out,
 * merges of common byte pairs fill the rest, so any vocabulary from 256 + specials upwards works.
 */
import { CORPUS } from './corpus.js';
import { TinyModelError } from './errors.js';
import type { Dims, FamilySpec } from './families/index.js';
import type { PyJson } from './json.js';

/** GPT-2's bijection from bytes to printable characters: printable Latin-1 maps to itself, the rest to U+0100 on. */
export function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}

/** GPT-2's pre-tokenizer split (contractions, letters, digits, other, whitespace). */
const PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

type Role = 'bos' | 'eos' | 'pad' | 'unk' | 'mask';

export interface SpecialToken {
  readonly id: number;
  readonly content: string;
  readonly roles: ReadonlyArray<Role>;
}

/** The family's special tokens at their config ids; `<unk>` (when the family has one) on the lowest free id. */
export function specialTokens(spec: FamilySpec, d: Dims): SpecialToken[] {
  const names = { bos: '<s>', eos: '</s>', pad: '<pad>', unk: '<unk>', mask: '<mask>', ...spec.tokenNames };
  const byId = new Map<number, { content: string; roles: Role[] }>();
  // eos first: when bos and eos share an id (opt) the token is the eos one, as in OPT's own tokenizer
  for (const role of ['eos', 'bos', 'pad', 'mask'] as const) {
    const id = d.special[role];
    const content = names[role];
    if (id === undefined || content === undefined) continue;
    const existing = byId.get(id);
    if (existing !== undefined) existing.roles.push(role);
    else byId.set(id, { content, roles: [role] });
  }
  if (names.unk !== null && names.unk !== undefined) {
    let id = 0;
    while (byId.has(id)) id++;
    byId.set(id, { content: names.unk, roles: ['unk'] });
  }
  return [...byId.entries()].map(([id, t]) => ({ id, ...t })).sort((a, b) => a.id - b.id);
}

/** Merges learned from the corpus, most frequent pair first (ties broken by the pair's text). */
export function learnMerges(text: string, limit: number, alphabet: readonly string[]): Array<[string, string]> {
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(PRETOKENIZE)) {
    const word = Array.from(encoder.encode(match[0]), (b) => alphabet[b]!).join('');
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const words = [...counts.entries()].map(([word, count]) => ({ symbols: [...word], count }));
  const merges: Array<[string, string]> = [];
  while (merges.length < limit) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 1; // a pair seen once teaches nothing
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push([a, b]);
    for (const word of words) {
      const out: string[] = [];
      const s = word.symbols;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(s[i]!);
      }
      word.symbols = out;
    }
  }
  return merges;
}

/** Byte symbols in the order synthetic merges use them: letters, the space marker, digits, punctuation, the rest. */
function preferredAlphabet(alphabet: readonly string[]): string[] {
  const rank = (b: number) => {
    const c = String.fromCharCode(b);
    if (/[a-z]/.test(c)) return 0;
    if (b === 0x20) return 1;
    if (/[A-Z]/.test(c)) return 2;
    if (/[0-9]/.test(c)) return 3;
    if (b > 0x20 && b < 0x7f) return 4;
    if (b === 0x0a) return 5;
    return 6;
  };
  return Array.from({ length: 256 }, (_, b) => b)
    .sort((x, y) => rank(x) - rank(y) || x - y)
    .map((b) => alphabet[b]!);
}

export interface TokenizerFiles {
  /** tokenizer.json as written by the Rust tokenizers library. */
  tokenizer: PyJson;
  tokenizerConfig: PyJson;
  specialTokensMap: PyJson;
  /** Number of merges learned from the text (the rest are synthetic). */
  learnedMerges: number;
}

const TOKEN_FLAGS = { lstrip: false, normalized: false, rstrip: false, single_word: false } as const;

export function buildTokenizer(spec: FamilySpec, d: Dims): TokenizerFiles {
  const specials = specialTokens(spec, d);
  const mergeCount = d.vocab - 256 - specials.length;
  if (mergeCount < 0) {
    throw new TinyModelError(
      `${d.family}: a byte-level tokenizer needs vocab >= ${256 + specials.length} (256 bytes + ${specials.length} special tokens), got ${d.vocab}; pass tokenizer: false (--no-tokenizer)`,
    );
  }
  const alphabet = byteToUnicode();
  const known = new Set<string>([...alphabet, ...specials.map((t) => t.content)]);
  const merges = learnMerges(CORPUS, mergeCount, alphabet).filter(([a, b]) => {
    if (known.has(a + b)) return false;
    known.add(a + b);
    return true;
  });
  const learned = merges.length;
  // Synthetic merges: every existing token followed by every byte, in preference order, until full.
  const preferred = preferredAlphabet(alphabet);
  const pool = [...preferred];
  for (let i = 0; merges.length < mergeCount && i < pool.length; i++) {
    for (const b of preferred) {
      const merged = pool[i]! + b;
      if (known.has(merged)) continue;
      known.add(merged);
      merges.push([pool[i]!, b]);
      pool.push(merged);
      if (merges.length === mergeCount) break;
    }
  }

  // Ids: specials where the config says, then bytes in byte order, then merges in rank order.
  const byId: string[] = new Array(d.vocab);
  for (const t of specials) byId[t.id] = t.content;
  let next = 0;
  const place = (token: string) => {
    while (byId[next] !== undefined) next++;
    byId[next] = token;
  };
  for (const symbol of alphabet) place(symbol);
  for (const [a, b] of merges) place(a + b);
  const vocab = new Map<string, PyJson>(byId.map((token, id) => [token, id]));

  const bos = specials.find((t) => t.roles.includes('bos'));
  const addBos = spec.addBos === true && bos !== undefined;
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = new Map<string, PyJson>([
    ['version', '1.0'],
    ['truncation', null],
    ['padding', null],
    [
      'added_tokens',
      specials.map((t) => new Map<string, PyJson>([['id', t.id], ['content', t.content], ['single_word', false], ['lstrip', false], ['rstrip', false], ['normalized', false], ['special', true]])),
    ],
    ['normalizer', null],
    ['pre_tokenizer', { type: 'ByteLevel', ...byteLevel }],
    [
      'post_processor',
      addBos
        ? {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bos.content, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bos.content, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: bos.content, type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bos.content]: { id: bos.content, ids: [bos.id], tokens: [bos.content] } },
          }
        : { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    ],
    ['decoder', { type: 'ByteLevel', ...byteLevel }],
    [
      'model',
      new Map<string, PyJson>([
        ['type', 'BPE'],
        ['dropout', null],
        ['unk_token', null],
        ['continuing_subword_prefix', null],
        ['end_of_word_suffix', null],
        ['fuse_unk', false],
        ['byte_fallback', false],
        ['ignore_merges', false],
        ['vocab', vocab],
        ['merges', merges],
      ]),
    ],
  ]);

  const tokenFor = (role: Role) => specials.find((t) => t.roles.includes(role))?.content;
  const roles = { bos_token: tokenFor('bos'), eos_token: tokenFor('eos'), pad_token: tokenFor('pad'), unk_token: tokenFor('unk'), mask_token: tokenFor('mask') };
  const tokenizerConfig: PyJson = {
    ...(spec.addBos === true ? { add_bos_token: addBos, add_eos_token: false } : {}),
    added_tokens_decoder: Object.fromEntries(specials.map((t) => [String(t.id), { content: t.content, ...TOKEN_FLAGS, special: true }])),
    ...roles,
    clean_up_tokenization_spaces: false,
    extra_special_tokens: {},
    model_max_length: d.maxPositions,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const specialTokensMap: PyJson = Object.fromEntries(
    Object.entries(roles)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([key, content]) => [key, { content, ...TOKEN_FLAGS }]),
  );
  return { tokenizer, tokenizerConfig, specialTokensMap, learnedMerges: learned };
}
