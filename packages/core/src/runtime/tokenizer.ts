/**
 * Text ↔ token ids from the checkpoint's tokenizer.json (and tokenizer_config.json when present),
 * through @huggingface/tokenizers.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError } from '../errors/index.js';

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

export async function loadTokenizer(dir: string): Promise<TextTokenizer | undefined> {
  const file = path.join(dir, 'tokenizer.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CheckpointError('file-not-found', { file, detail: `cannot be read as JSON (${(cause as Error).message})` }, { cause });
  }
  let config: unknown = {};
  try {
    config = JSON.parse(await readFile(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  } catch {
    // optional
  }
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
