/**
 * Text ↔ token ids from the checkpoint's tokenizer.json (and tokenizer_config.json when present),
 * through @huggingface/tokenizers (plain JavaScript: browser-safe). Node reads the files with
 * tokenizer-file.ts (loadTokenizer); a page fetches them (web-session.ts).
 */
import { Tokenizer } from '@huggingface/tokenizers';

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** The id of one token of the vocabulary (`[MASK]`), or undefined. */
  tokenToId?(token: string): number | undefined;
  /** The text of one token, special tokens included (fill-mask's `token_str`). */
  idToToken?(id: number): string | undefined;
  /** The mask token a masked-LM fills (tokenizer_config.json's mask_token, or `[MASK]` / `<mask>`), when there is one. */
  readonly maskToken?: { text: string; id: number };
}

/** A tokenizer from tokenizer.json's and tokenizer_config.json's parsed contents ({} without the latter). */
export function tokenizerFromJson(json: unknown, config: unknown = {}): TextTokenizer {
  const tokenizer = new Tokenizer(json as object, config as object);
  return {
    encode: (text) => tokenizer.encode(text).ids,
    decode: (ids) => tokenizer.decode([...ids], { skip_special_tokens: true }),
    tokenToId: (token) => tokenizer.token_to_id(token),
    idToToken: (id) => tokenizer.id_to_token(id),
    ...maskTokenOf(tokenizer, config),
  };
}

/** tokenizer_config.json's mask_token (a string, or an AddedToken object with `content`), else the usual names. */
function maskTokenOf(tokenizer: Tokenizer, config: unknown): { maskToken?: { text: string; id: number } } {
  const configured = (config as Record<string, unknown>)['mask_token'];
  const named = typeof configured === 'string' ? configured : typeof (configured as { content?: unknown })?.content === 'string' ? (configured as { content: string }).content : undefined;
  for (const text of [named, '[MASK]', '<mask>'].filter((t): t is string => t !== undefined)) {
    const id = tokenizer.token_to_id(text);
    if (id !== undefined) return { maskToken: { text, id } };
  }
  return {};
}
