/**
 * A golden checkpoint changed for one test — config keys replaced, tensors renamed or dropped — written
 * under os.tmpdir() and removed after the file (configurations the golden folders do not cover:
 * LongT5's local attention, BigBird-Pegasus's block-sparse setting, Marian's separate vocabularies).
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { writeSafetensors, type Dtype } from '@tp/core';
import { goldenDir } from './shared.js';

export interface VariantChange {
  /** Keys of config.json to set. */
  config?: Record<string, unknown>;
  /** Each tensor's new name, or null to drop it (absent: tensors are kept as they are). */
  tensors?: (name: string) => string | null;
}

/**
 * Call once at the top of a test file: returns `variant(name, golden, change)`, which writes the
 * changed copy of golden folder `golden` once per name and returns its folder.
 */
export function useGoldenVariants(): (name: string, golden: string, change: VariantChange) => Promise<string> {
  let root: Promise<string> | undefined;
  const made = new Map<string, Promise<string>>();
  afterAll(async () => {
    if (root !== undefined) await rm(await root, { recursive: true, force: true });
  });
  return (name, golden, change) => {
    root ??= mkdtemp(path.join(os.tmpdir(), 'tp-golden-variant-'));
    let dir = made.get(name);
    if (dir === undefined) {
      dir = root.then((r) => writeVariant(path.join(r, name), goldenDir(golden), change));
      made.set(name, dir);
    }
    return dir;
  };
}

async function writeVariant(dir: string, from: string, change: VariantChange): Promise<string> {
  await mkdir(dir, { recursive: true });
  const config = JSON.parse(await readFile(path.join(from, 'config.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, ...change.config }, null, 2));
  if (existsSync(path.join(from, 'generation_config.json'))) await copyFile(path.join(from, 'generation_config.json'), path.join(dir, 'generation_config.json'));
  const weights = path.join(from, 'model.safetensors');
  if (change.tensors === undefined) {
    await copyFile(weights, path.join(dir, 'model.safetensors'));
    return dir;
  }
  const bytes = new Uint8Array(await readFile(weights));
  const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, { dtype: Dtype; shape: number[]; data_offsets: [number, number] }>;
  const body = 8 + headerLength;
  const tensors = Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .flatMap(([name, t]) => {
      const renamed = change.tensors!(name);
      return renamed === null ? [] : [{ name: renamed, dtype: t.dtype, shape: t.shape, data: bytes.subarray(body + t.data_offsets[0], body + t.data_offsets[1]) }];
    });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}
