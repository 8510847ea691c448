/** The model and its GGUF, written once into .cache and reused. */
import { existsSync, statSync } from 'node:fs';
import { rename, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ggufFile, modelDir, PRESET, rel, root, toolDir } from './common.mjs';

/** The synthetic benchmark llama, as `pnpm bench:cpu` writes it (same preset, same folder). */
export async function ensureModel({ log = () => {} } = {}) {
  if (existsSync(path.join(modelDir, 'config.json')) && existsSync(path.join(modelDir, 'model.safetensors'))) {
    log(`reusing ${rel(modelDir)}`);
    return { written: false };
  }
  const { PRESETS, writeTinyModel } = await import(path.join(root, 'tools', 'tiny-models', 'dist', 'index.js'));
  const preset = PRESETS[PRESET];
  log(`writing ${PRESET}: ${preset.description} to ${rel(modelDir)} (once; later runs reuse it)`);
  const temp = `${modelDir}.partial-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  await writeTinyModel(temp, preset.options);
  await rm(modelDir, { recursive: true, force: true });
  await rename(temp, modelDir);
  return { written: true };
}

/** The F32 GGUF of the model: converted again when missing or older than the checkpoint or the converter. */
export async function ensureGguf({ log = () => {} } = {}) {
  const sources = [path.join(modelDir, 'model.safetensors'), path.join(modelDir, 'config.json'), path.join(modelDir, 'tokenizer.json'), path.join(toolDir, 'convert.mjs'), path.join(toolDir, 'gguf.mjs')];
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (existsSync(ggufFile) && statSync(ggufFile).mtimeMs >= newest) {
    log(`reusing ${rel(ggufFile)}`);
    return { written: false };
  }
  await mkdir(path.dirname(ggufFile), { recursive: true });
  const { convertLlamaToGguf } = await import('./convert.mjs');
  const r = await convertLlamaToGguf(modelDir, ggufFile, { log });
  log(`wrote ${rel(ggufFile)}: ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s`);
  return { written: true, ...r };
}
