/**
 * Sharding as save_pretrained does it: tensors in module order are cut into N contiguous runs of
 * about equal bytes, written as model-0000k-of-0000N.safetensors, with an index naming each tensor's file.
 */
import { TinyModelError } from './errors.js';
import type { PyJson } from './json.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export function shardFileName(index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Split `sizes` (in order) into exactly `count` non-empty contiguous groups; group k ends where the
 * running total passes (k + 1)/count of the whole, measured at each tensor's midpoint. Returns the
 * group of each item.
 */
export function assignShards(sizes: readonly number[], count: number): number[] {
  if (count > sizes.length) {
    throw new TinyModelError(`cannot write ${count} shards: the model has only ${sizes.length} tensors`);
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  let shard = 0;
  let inShard = 0;
  let before = 0;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]!;
    const laterShards = count - 1 - shard;
    // every later shard still needs one of the items left (this one included)
    const mustAdvance = inShard > 0 && sizes.length - i <= laterShards;
    const pastTarget = inShard > 0 && laterShards > 0 && (before + size / 2) * count > (shard + 1) * total;
    if (mustAdvance || pastTarget) {
      shard++;
      inShard = 0;
    }
    out.push(shard);
    inShard++;
    before += size;
  }
  return out;
}

/** The index json: `metadata` (total parameters and bytes) and the sorted `weight_map`. */
export function shardIndex(weightMap: ReadonlyMap<string, string>, totalSize: number, totalParameters: number): PyJson {
  return {
    metadata: { total_parameters: totalParameters, total_size: totalSize },
    weight_map: Object.fromEntries(weightMap),
  };
}
