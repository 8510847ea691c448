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
  };
}
