/**
 * Shared test helpers: temporary folders under os.tmpdir(), the location of ../shared (golden
 * checkpoints), and options that reproduce a golden checkpoint's dimensions.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Checkpoint } from '@tp/core';
import { afterAll } from 'vitest';
import type { TinyModelOptions } from '../src/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const SHARED_DIR = process.env.TP_SHARED_DIR ?? path.resolve(repoRoot, '../shared');
export const GOLDEN_DIR = path.join(SHARED_DIR, 'golden');
export const hasGolden = existsSync(GOLDEN_DIR);
if (!hasGolden && process.env.CI === 'true') {
  throw new Error(`CI=true but the golden checkpoints are missing at ${GOLDEN_DIR}; CI must provide ../shared beside the repository`);
}
/** Appended to the names of tests that need ../shared, so a skip says why. */
export const needsGolden = hasGolden ? '' : ` (skipped: ${GOLDEN_DIR} is absent)`;

/** A fresh folder under os.tmpdir(), removed when the file's tests end. */
export function useTempDirs(): () => Promise<string> {
  const made: string[] = [];
  afterAll(async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  });
  return async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tiny-models-'));
    made.push(dir);
    return dir;
  };
}

export async function withCheckpoint<T>(dir: string, use: (ckpt: Checkpoint) => T | Promise<T>): Promise<T> {
  const ckpt = await openCheckpoint(dir);
  try {
    return await use(ckpt);
  } finally {
    ckpt.close();
  }
}

const first = (config: Record<string, unknown>, ...keys: string[]): number | undefined => {
  for (const key of keys) {
    const v = config[key];
    if (typeof v === 'number') return v;
  }
  return undefined;
};

/** Options that give a golden config's dimensions (each family names them its own way). */
export function optionsFromGolden(config: Record<string, unknown>): TinyModelOptions {
  const family = config['model_type'] as string;
  const variant =
    family === 'falcon'
      ? config['new_decoder_architecture'] === true
        ? 'new_arch'
        : config['multi_query'] === true
          ? 'multi_query'
          : 'alibi_mha'
      : family === 'gpt_bigcode'
        ? config['multi_query'] === true
          ? 'mqa'
          : 'mha'
        : undefined;
  return {
    family,
    variant,
    hidden: first(config, 'hidden_size', 'n_embd', 'd_model'),
    layers: first(config, 'num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'),
    heads: first(config, 'num_attention_heads', 'n_head', 'num_heads', 'n_heads', 'attention_heads'),
    // falcon writes num_kv_heads always but reads it only in the new architecture
    kvHeads: family === 'falcon' ? (variant === 'new_arch' ? first(config, 'num_kv_heads') : undefined) : first(config, 'num_key_value_heads'),
    headDim: first(config, 'head_dim'),
    // mpt's expansion_ratio is ignored by HF (the MLP is always 4 × d_model)
    intermediate: family === 'mpt' ? undefined : first(config, 'intermediate_size', 'n_inner', 'ffn_dim', 'ffn_hidden_size'),
    vocab: first(config, 'vocab_size'),
    maxPositions: first(config, 'max_position_embeddings', 'n_positions', 'max_seq_len'),
    experts: first(config, 'num_local_experts', 'num_experts'),
    expertsPerToken: first(config, 'num_experts_per_tok'),
    tie: typeof config['tie_word_embeddings'] === 'boolean' ? config['tie_word_embeddings'] : undefined,
  };
}

/** Population mean and standard deviation. */
export function stats(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) ** 2;
  return { mean, std: Math.sqrt(sq / values.length) };
}
