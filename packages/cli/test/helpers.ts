/** Running the CLI in-process with captured output, and tiny synthetic checkpoints. */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeTinyModel } from '@tp/tiny-models';
import { main, type CliIo } from '../src/index.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(argv: string[], options: { isTty?: boolean } = {}): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), isTty: options.isTty ?? false };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

/** A small llama with a tokenizer (vocab ≥ 300), 4 heads and 2 kv heads: splittable over 1 or 2 ranks. */
export async function tinyLlama(name = 'llama', dtype: 'f32' | 'f16' | 'bf16' = 'f32'): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'tp-cli-'));
  const dir = path.join(root, name);
  await writeTinyModel(dir, { family: 'llama', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 320, maxPositions: 128, seed: 3, dtype });
  return dir;
}
