/** A checkpoint folder's tokenizer, read from its files in Node (tokenizer.ts builds it). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors/index.js';
import { tokenizerFromJson, type TextTokenizer } from './tokenizer.js';

/** The tokenizer of a checkpoint folder, or undefined without tokenizer.json. */
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
  return tokenizerFromJson(json, config);
}
