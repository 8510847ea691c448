/** Paths, versions and small helpers shared by the compare-llamacpp scripts. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const toolDir = path.join(root, 'tools', 'compare-llamacpp');
export const PRESET = 'bench-llama-134m';
export const cacheDir = path.join(root, '.cache', 'llamacpp');
export const npmDir = path.join(cacheDir, 'npm');

/**
 * The weight types the benchmark model is written in. f32 is the preset as it is (the folder
 * `pnpm bench:cpu` uses); bf16 and f16 are the same random values rounded to nearest even by
 * tools/tiny-models, each in its own folder, so the three are one model.
 */
export const DTYPES = Object.freeze(['f32', 'bf16', 'f16']);
/** The checkpoint folder of a variant: .cache/models/bench-llama-134m[-bf16|-f16]. */
export const modelDirFor = (dtype = 'f32') => path.join(root, '.cache', 'models', dtype === 'f32' ? PRESET : `${PRESET}-${dtype}`);
/** The GGUF of a variant (2-D weights in `dtype`, norms in F32): .cache/llamacpp/models/bench-llama-134m-<dtype>.gguf. */
export const ggufFileFor = (dtype = 'f32') => path.join(cacheDir, 'models', `${PRESET}-${dtype}.gguf`);
export const modelDir = modelDirFor('f32');
export const ggufFile = ggufFileFor('f32');

/** Parse a --dtype value: one of DTYPES, or `all` (every one, in DTYPES order). */
export function parseDtypes(text, fallback = 'f32') {
  const value = (text ?? fallback).toLowerCase();
  if (value === 'all') return [...DTYPES];
  const list = value.split(',');
  for (const d of list) if (!DTYPES.includes(d)) throw new Error(`--dtype must be ${DTYPES.join(', ')} or all, got ${text}`);
  return [...new Set(list)];
}
export const tpBin = path.join(root, 'packages', 'cli', 'dist', 'bin.js');
export const coreDist = path.join(root, 'packages', 'core', 'dist', 'index.js');
export const cliDist = path.join(root, 'packages', 'cli', 'dist', 'index.js');
/**
 * node-llama-cpp 3.21.x: the issue names 3.21; the registry has no 3.21.0, so 3.21.1 (the only 3.21
 * release) is pinned exactly, with its prebuilt binary package of the same version.
 */
export const NODE_LLAMA_CPP_VERSION = '3.21.1';

export const rel = (p) => path.relative(root, p) || '.';

/** The prompt `tp bench` uses for run `run` (warm-up: run -1 → seed 999): the same ids for both engines. */
export function benchPrompt(seededRandom, vocab, length, run, seed = 0) {
  const random = seededRandom(run < 0 ? seed * 1000 + 999 : seed * 1000 + run);
  return Array.from({ length }, () => Math.min(vocab - 1, Math.floor(random() * vocab)));
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const round = (v, digits) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * Run `node args...` from the repository root; resolves with stdout. Its stderr is shown line by line
 * with `prefix` (or swallowed when `quiet`), and kept for the error message when it fails.
 */
export function runNode(args, { prefix = '', quiet = false, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (quiet) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) process.stderr.write(`${prefix}${line}\n`);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (!quiet && pending) process.stderr.write(`${prefix}${pending}\n`);
      if (code === 0) resolve(stdout);
      else reject(new Error(`node ${args.map((a) => (a.length > 80 ? `${a.slice(0, 77)}...` : a)).join(' ')} exited with code ${code}\n${stderr.slice(-2000)}`));
    });
  });
}
