/** A checkpoint folder's generation_config.json, read in Node (generation.ts parses it). */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../errors/index.js';
import { parseGenerationConfig, type GenerationDefaults } from './generation.js';

/** generation_config.json of a checkpoint folder, or {} when there is none. */
export async function readGenerationConfig(dir: string): Promise<GenerationDefaults> {
  const file = path.join(dir, 'generation_config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CheckpointError('config-invalid', { file, detail: `cannot be read as JSON (${(cause as Error).message})` }, { cause });
  }
  return parseGenerationConfig(text, file);
}
