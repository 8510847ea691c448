/** The parts of a golden folder's golden.json that the engine tests read. */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { GOLDEN_DIR } from './shared.js';

export interface Golden {
  name: string;
  model_type: string;
  kind: 'causal' | 'seq2seq' | 'encoder';
  input_ids: number[][];
  /** causal: [B][T][V] next-token logits; encoder: [B][T][V] masked-LM logits (absent without a head); seq2seq: [B][D][V] decoder logits. */
  logits: number[][][];
  greedy?: { new_tokens: number[][]; step_logits: number[][][]; sequences?: number[][] };
  /** encoder: [B][T] segment ids, where the family has two or more segment types. */
  token_type_ids?: number[][];
  /** encoder: [B][T][H] the base model's last hidden state. */
  last_hidden_state?: number[][][];
  /** seq2seq: [B][D] decoder inputs (the first is the decoder start token). */
  decoder_input_ids?: number[][];
  /** seq2seq: [B][T][H]. */
  encoder_last_hidden_state?: number[][][];
}

const cache = new Map<string, Golden>();

export function readGolden(name: string): Golden {
  let g = cache.get(name);
  if (g === undefined) {
    g = JSON.parse(readFileSync(path.join(GOLDEN_DIR, name, 'golden.json'), 'utf8')) as Golden;
    cache.set(name, g);
  }
  return g;
}

/** Every golden folder (those holding a golden.json). */
export function goldenFolders(): string[] {
  return readdirSync(GOLDEN_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(path.join(GOLDEN_DIR, e.name, 'golden.json')))
    .map((e) => e.name)
    .sort();
}

/** [T][V] rows of one sequence, flattened the way session.logits returns them ([T × V]). */
export const flat = (rows: number[][]): Float32Array => Float32Array.from(rows.flat());
