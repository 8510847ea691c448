/**
 * The llama.cpp reference of run.mjs: llama.cpp's own `llama-bench`, built offline from the llama.cpp
 * sources node-llama-cpp ships (node_modules/node-llama-cpp/llama/gitRelease.bundle, the same release
 * as its prebuilt binary), into .cache/llamacpp/src. Needs git, cmake and a C++ compiler; downloads
 * nothing. It reads F32, F16 and BF16 GGUFs alike (the weight type is in the file).
 *
 * Why: node-llama-cpp does not attach a persistent ggml threadpool to its contexts, so with 2+ threads
 * every decode step starts and joins its worker threads; llama-bench (like llama-cli) keeps a pool.
 * llama-bench times the model alone: no sampling, no JavaScript; tg = decode steps from an empty
 * context, pp = one batch over the prompt.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, median, npmDir, rel, round } from './common.mjs';

export const srcDir = path.join(cacheDir, 'src');
export const buildDir = path.join(srcDir, 'build');
export const llamaBenchBin = path.join(buildDir, 'bin', 'llama-bench');
export const CMAKE_FLAGS = ['-DCMAKE_BUILD_TYPE=Release', '-DLLAMA_CURL=OFF', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_SERVER=OFF', '-DBUILD_SHARED_LIBS=OFF'];

const has = (tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Build llama-bench once (a few minutes on 2 cores). Returns the commands it ran, or [] when reused. */
export function ensureLlamaBench({ log = () => {} } = {}) {
  if (existsSync(llamaBenchBin)) {
    log(`reusing ${rel(llamaBenchBin)}`);
    return [];
  }
  const bundle = path.join(npmDir, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');
  if (!existsSync(bundle)) throw new Error(`${rel(bundle)} is missing: install node-llama-cpp first`);
  for (const tool of ['git', 'cmake']) if (!has(tool)) throw new Error(`--llama-bench needs ${tool}`);
  const generator = has('ninja') ? ['-G', 'Ninja'] : [];
  const commands = [];
  const run = (cmd, args, cwd) => {
    const line = `${cmd} ${args.map((a) => (path.isAbsolute(a) ? rel(a) : a)).join(' ')}`;
    commands.push(line);
    log(line);
    execFileSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });
  };
  const started = performance.now();
  if (!existsSync(path.join(srcDir, 'CMakeLists.txt'))) run('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', bundle, srcDir]);
  run('cmake', ['-S', srcDir, '-B', buildDir, ...generator, ...CMAKE_FLAGS]);
  run('cmake', ['--build', buildDir, '--target', 'llama-bench', '-j', String(os.availableParallelism())]);
  log(`built ${rel(llamaBenchBin)} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return commands;
}

export function llamaBenchVersion() {
  try {
    const commit = execFileSync('git', ['-C', srcDir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const info = JSON.parse(readFileSync(path.join(npmDir, 'node_modules', 'node-llama-cpp', 'llama', 'llama.cpp.info.json'), 'utf8'));
    return { commit, release: info.tag, cmake_flags: CMAKE_FLAGS.join(' ') };
  } catch {
    return undefined;
  }
}

export function llamaBenchArgs(gguf, threads, promptTokens, newTokens, runs) {
  return ['-m', gguf, '-t', String(threads), '-p', String(promptTokens), '-n', String(newTokens), '-r', String(runs), '-o', 'jsonl'];
}

/** Run llama-bench (it does its own warm-up) and return a result shaped like the other engines'. */
export function runLlamaBench(gguf, threads, promptTokens, newTokens, runs) {
  const args = llamaBenchArgs(gguf, threads, promptTokens, newTokens, runs);
  const out = execFileSync(llamaBenchBin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const tests = out.split('\n').filter((l) => l.trim().startsWith('{')).map((l) => JSON.parse(l));
  const pp = tests.find((t) => t.n_prompt === promptTokens && t.n_gen === 0);
  const tg = tests.find((t) => t.n_gen === newTokens && t.n_prompt === 0);
  if (!pp || !tg) throw new Error(`llama-bench printed no pp${promptTokens}/tg${newTokens} results`);
  const decodeRuns = tg.samples_ns.map((ns) => ns / 1e6 / newTokens);
  const prefillRuns = pp.samples_ns.map((ns) => ns / 1e6);
  const decodeMs = median(decodeRuns);
  return {
    engine: 'llama-bench',
    threads: tg.n_threads,
    prompt_tokens: promptTokens,
    new_tokens: newTokens,
    runs,
    prefill_ms: round(median(prefillRuns), 2),
    decode_ms_per_token: round(decodeMs, 3),
    tokens_per_s: round(1000 / decodeMs, 2),
    prefill_ms_runs: prefillRuns.map((v) => round(v, 2)),
    decode_ms_per_token_runs: decodeRuns.map((v) => round(v, 3)),
    build_commit: tg.build_commit,
    build_number: tg.build_number,
    cpu_info: tg.cpu_info,
    backends: tg.backends,
    model_type: tg.model_type,
    model_size: tg.model_size,
    model_n_params: tg.model_n_params,
    // llama-bench prints -1 for "auto" (its default), 0 off, 1 on.
    flash_attn: tg.flash_attn === -1 ? 'auto' : tg.flash_attn === 0 || tg.flash_attn === false ? 'off' : tg.flash_attn === 1 || tg.flash_attn === true ? 'on' : tg.flash_attn,
    type_k: tg.type_k,
    type_v: tg.type_v,
    poll: tg.poll,
    n_batch: tg.n_batch,
    command: `${rel(llamaBenchBin)} ${args.join(' ')}`,
  };
}
