/**
 * What a checkpoint is built from once its bytes are in hand, wherever they came from (a folder,
 * checkpoint.ts; byte sources such as HTTP, source-checkpoint.ts): the config's JSON and the table of
 * tensors by name across every safetensors file.
 */
import { CheckpointError, ConfigError } from '../errors/index.js';
import type { HfConfig } from './checkpoint.js';
import type { SafetensorsHeader, TensorInfo } from './safetensors.js';

/** config.json's text as an object, or a ConfigError naming `configPath`. */
export function parseConfig(text: string, configPath: string): HfConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError('config-invalid', { file: configPath, detail: `is not valid JSON (${(cause as Error).message})` });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError('config-invalid', { file: configPath, detail: 'must hold a JSON object' });
  }
  return json as HfConfig;
}

/** Every tensor of every file by name; a name in two files is refused (`duplicate-tensor`). */
export function tensorsByName(files: readonly SafetensorsHeader[]): Map<string, TensorInfo> {
  const tensors = new Map<string, TensorInfo>();
  for (const header of files) {
    for (const t of header.tensors) {
      const existing = tensors.get(t.name);
      if (existing !== undefined) {
        throw new CheckpointError('duplicate-tensor', {
          file: header.file,
          tensor: t.name,
          detail: `also stored in ${existing.file}`,
          hint: 'Each tensor must live in exactly one shard',
        });
      }
      tensors.set(t.name, t);
    }
  }
  return tensors;
}

/**
 * An index's weight_map (tensor → shard file, as the shards are named: a path or a URL) against what
 * the shards hold: a tensor it places in another shard, or in none, is refused (`index-mismatch`);
 * shard tensors it does not list are used anyway, and returned as a warning.
 */
export function checkWeightMap(tensors: ReadonlyMap<string, TensorInfo>, weightMap: ReadonlyMap<string, string>, indexFile: string): string[] {
  const base = (file: string) => file.split(/[/\\]/).pop() ?? file;
  for (const [name, file] of weightMap) {
    const t = tensors.get(name);
    if (t === undefined || t.file !== file) {
      throw new CheckpointError('index-mismatch', {
        file: indexFile,
        tensor: name,
        detail: `weight_map places this tensor in ${base(file)} but ${t === undefined ? 'no shard holds it' : `it is in ${base(t.file)}`}`,
        hint: 'The index and the shards disagree; re-download or re-save the checkpoint',
      });
    }
  }
  const unlisted = [...tensors.keys()].filter((name) => !weightMap.has(name));
  const indexName = base(indexFile);
  return unlisted.length === 0 ? [] : [`${indexName} does not list ${unlisted.length} tensor(s) found in the shards (e.g. ${unlisted[0]}); they are used anyway`];
}

/** `Checkpoint.tensor`: the tensor, or a CheckpointError naming it and the checkpoint (`where`). */
export function tensorLookup(tensors: ReadonlyMap<string, TensorInfo>, where: string): (name: string) => TensorInfo {
  return (name) => {
    const t = tensors.get(name);
    if (t === undefined) throw new CheckpointError('tensor-not-found', { file: where, tensor: name, detail: 'no such tensor in the checkpoint' });
    return t;
  };
}
