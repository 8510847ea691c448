/**
 * writeTinyModel: a complete checkpoint folder for one family. Tensor values are produced one tensor
 * at a time while the file is written, so memory stays at the largest single tensor.
 */
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeSafetensors, type TensorToWrite } from '@tp/core';
import { buildConfig, buildGenerationConfig } from './config.js';
import { DTYPE_INFO, encodeF32, type TinyDtype } from './encode.js';
import type { TensorSpec } from './families/index.js';
import { toPythonJson, type JsonStyle, type PyJson } from './json.js';
import { familySpec, resolveDims, resolveWriteOptions, type TinyModelOptions } from './options.js';
import { fillNormal, tensorSeed } from './random.js';
import { INDEX_FILE, SINGLE_FILE, assignShards, shardFileName, shardIndex } from './shards.js';
import { buildTokenizer } from './tokenizer.js';

export interface TinyModelResult {
  /** The absolute folder written. */
  dir: string;
  /** File names written inside `dir`, sorted. */
  files: string[];
  /** config.json as written (parsed back). */
  config: Record<string, unknown>;
  tensorCount: number;
  /** Total size of the written files. */
  bytes: number;
  /** Stored parameters (tied weights counted once). */
  parameters: number;
  family: string;
  variant: string | undefined;
  dtype: TinyDtype;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$/;

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The values of one tensor, exactly as {@link writeTinyModel} stores them before dtype rounding. */
export function tensorValues(spec: TensorSpec, seed: number): Float32Array {
  return fillNormal(new Float32Array(numel(spec.shape)), tensorSeed(seed, spec.name), spec.mean, spec.std);
}

export async function writeTinyModel(dir: string, options: TinyModelOptions): Promise<TinyModelResult> {
  // Everything that can be wrong with the options fails here, before the folder is touched.
  const spec = familySpec(options.family);
  const dims = resolveDims(options);
  const { dtype, seed, shards, tokenizer } = resolveWriteOptions(options, dims.vocab);
  const tokenizerFiles = tokenizer ? buildTokenizer(spec, dims) : undefined;
  const config = buildConfig(spec, dims, dtype);
  const specs = spec.tensors(dims);
  const names = new Set(specs.map((t) => t.name));
  if (names.size !== specs.length) throw new Error(`${spec.modelType}: the family table lists a tensor twice`);

  const info = DTYPE_INFO[dtype];
  const tensors: TensorToWrite[] = specs.map((t) => ({
    name: t.name,
    dtype: info.safetensors,
    shape: t.shape,
    data: () => encodeF32(tensorValues(t, seed), dtype),
  }));
  const sizes = specs.map((t) => numel(t.shape) * info.bytes);
  const groups = assignShards(sizes, shards);

  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  await removeStale(root, tokenizerFiles !== undefined);

  const files: string[] = [];
  const json = async (file: string, value: PyJson, style?: JsonStyle) => {
    await writeFile(path.join(root, file), `${toPythonJson(value, style)}\n`);
    files.push(file);
  };
  if (shards === 1) {
    await writeSafetensors(path.join(root, SINGLE_FILE), [...tensors].sort(byName));
    files.push(SINGLE_FILE);
  } else {
    const weightMap = new Map<string, string>();
    for (let k = 0; k < shards; k++) {
      const file = shardFileName(k, shards);
      const part = tensors.filter((_, i) => groups[i] === k).sort(byName);
      await writeSafetensors(path.join(root, file), part);
      for (const t of part) weightMap.set(t.name, file);
      files.push(file);
    }
    const total = sizes.reduce((a, b) => a + b, 0);
    await json(INDEX_FILE, shardIndex(weightMap, total, specs.reduce((n, t) => n + numel(t.shape), 0)));
  }
  await json('config.json', config);
  await json('generation_config.json', buildGenerationConfig(config));
  if (tokenizerFiles !== undefined) {
    // the Rust tokenizers library keeps its own key order and writes UTF-8 as is
    await json('tokenizer.json', tokenizerFiles.tokenizer, { sortKeys: false, asciiOnly: false });
    await json('tokenizer_config.json', tokenizerFiles.tokenizerConfig, { asciiOnly: false });
    await json('special_tokens_map.json', tokenizerFiles.specialTokensMap, { asciiOnly: false });
  }

  let bytes = 0;
  for (const file of files) bytes += (await stat(path.join(root, file))).size;
  return {
    dir: root,
    files: files.sort(),
    config: JSON.parse(toPythonJson(config)) as Record<string, unknown>,
    tensorCount: specs.length,
    bytes,
    parameters: specs.reduce((n, t) => n + numel(t.shape), 0),
    family: spec.modelType,
    variant: dims.variant,
    dtype,
  };
}

/** Weight files and an index from an earlier write would be read instead of (or with) the new ones. */
async function removeStale(root: string, keepTokenizer: boolean): Promise<void> {
  for (const entry of await readdir(root)) {
    if (WEIGHT_FILE.test(entry) || entry === INDEX_FILE || (!keepTokenizer && TOKENIZER_FILES.includes(entry))) {
      await rm(path.join(root, entry), { force: true });
    }
  }
}
