/** The model (in each weight type) and its GGUFs, written once into .cache and reused. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ggufFileFor, modelDirFor, PRESET, rel, root, toolDir } from './common.mjs';

/** The torch dtype name tools/tiny-models writes into config.json for each weight type. */
const TORCH_NAMES = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

/** The weight type a written benchmark checkpoint declares in its config.json, or undefined. */
export function storedDtype(dir) {
  try {
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const torch = config.dtype ?? config.torch_dtype;
    return Object.keys(TORCH_NAMES).find((d) => TORCH_NAMES[d] === torch);
  } catch {
    return undefined;
  }
}

/**
 * The synthetic benchmark llama in `dtype`: f32 as `pnpm bench:cpu` writes it (same preset, same
 * folder), bf16 and f16 the same preset with `dtype` set, which tools/tiny-models rounds to nearest even
 * from the same f32 values. Written beside its folder and renamed, so a half-written model is never reused.
 */
export async function ensureModel({ dtype = 'f32', log = () => {} } = {}) {
  const dir = modelDirFor(dtype);
  if (existsSync(path.join(dir, 'model.safetensors')) && storedDtype(dir) === dtype) {
    log(`reusing ${rel(dir)}`);
    return { written: false, dir };
  }
  const { PRESETS, writeTinyModel } = await import(path.join(root, 'tools', 'tiny-models', 'dist', 'index.js'));
  const preset = PRESETS[PRESET];
  log(`writing ${PRESET} (${dtype === 'f32' ? preset.description : `the same preset with dtype ${dtype}: the f32 values rounded to nearest even`}) to ${rel(dir)} (once; later runs reuse it)`);
  const temp = `${dir}.partial-${process.pid}`;
  await rm(temp, { recursive: true, force: true });
  await writeTinyModel(temp, { ...preset.options, dtype });
  await rm(dir, { recursive: true, force: true });
  await rename(temp, dir);
  return { written: true, dir };
}

/** The GGUF of the `dtype` checkpoint with 2-D weights in `outtype`: ggufFileFor(dtype) when they agree. */
export const ggufFileOf = (dtype, outtype = dtype) => (outtype === dtype ? ggufFileFor(dtype) : ggufFileFor(dtype).replace(/\.gguf$/, `-as-${outtype}.gguf`));

/**
 * The GGUF of the `dtype` checkpoint, 2-D weights in `outtype` (default: `dtype`, copied as stored), norms
 * in F32: converted again when missing or older than the checkpoint or the converter. Returns the file
 * and the convert command. (verify.mjs also writes each half-precision checkpoint as an F32 GGUF,
 * `-as-f32`, to check the rounded weights alone.)
 */
export async function ensureGguf({ dtype = 'f32', outtype = dtype, log = () => {} } = {}) {
  const dir = modelDirFor(dtype);
  const file = ggufFileOf(dtype, outtype);
  const command = `node tools/compare-llamacpp/convert.mjs ${rel(dir)} ${rel(file)} --outtype ${outtype}`;
  const sources = [path.join(dir, 'model.safetensors'), path.join(dir, 'config.json'), path.join(dir, 'tokenizer.json'), path.join(toolDir, 'convert.mjs'), path.join(toolDir, 'gguf.mjs')];
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  if (existsSync(file) && statSync(file).mtimeMs >= newest) {
    log(`reusing ${rel(file)}`);
    return { written: false, file, command };
  }
  await mkdir(path.dirname(file), { recursive: true });
  const { convertLlamaToGguf } = await import('./convert.mjs');
  log(command);
  const r = await convertLlamaToGguf(dir, file, { outtype, log });
  log(`wrote ${rel(file)}: ${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s`);
  return { written: true, file, command, ...r };
}

/**
 * Everything run.mjs needs, without measuring (for a machine that is to be quiet later):
 *   node tools/compare-llamacpp/prepare.mjs [--dtype f32|bf16|f16|all]   (default all)
 * node-llama-cpp (npm), llama-bench (built from its bundled sources), the checkpoints and their GGUFs.
 */
if (process.argv[1] && path.resolve(process.argv[1]) === path.join(toolDir, 'prepare.mjs')) {
  const { parseArgs } = await import('node:util');
  const { parseDtypes } = await import('./common.mjs');
  const { ensureNodeLlamaCpp } = await import('./llamacpp.mjs');
  const { ensureLlamaBench } = await import('./llama-bench.mjs');
  const { values } = parseArgs({ options: { dtype: { type: 'string' } } });
  const say = (t) => console.error(`prepare: ${t}`);
  ensureNodeLlamaCpp({ log: say });
  for (const dtype of parseDtypes(values.dtype, 'all')) {
    await ensureModel({ dtype, log: say });
    await ensureGguf({ dtype, log: say });
  }
  ensureLlamaBench({ log: say });
  say('ready');
}
