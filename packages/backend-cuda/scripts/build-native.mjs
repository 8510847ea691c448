#!/usr/bin/env node
/**
 * Builds the two native parts of @tp/backend-cuda into dist/, after tsup:
 *
 * 1. The addon (native/ → dist/tp_cuda.node) with node-gyp, offline: Node's own headers through
 *    --nodedir (the prefix of the running node; pnpm passes no .npmrc nodedir), a C++ compiler, no
 *    CUDA toolkit (the addon declares the few CUDA types it uses and dlopens every library).
 * 2. The kernels (kernels/kernels.cu → dist/kernels.fatbin) with nvcc: SASS for sm_80 and sm_90 and
 *    PTX for compute_90, uncompressed (so the tests can list its contents without cuobjdump).
 *
 * Either part is skipped, with the reason printed and recorded in dist/build-info.json, when its
 * tool is absent (no C++ compiler or Node headers; no nvcc); a part built before is then kept. A tool
 * that is present but fails fails the build. Both steps are incremental (make; a stamp of the nvcc
 * command and the sources' times).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const build = path.join(root, 'build');
mkdirSync(dist, { recursive: true });
mkdirSync(build, { recursive: true });
const say = (text) => console.log(`backend-cuda: ${text}`);
const info = {};

function which(command) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, command);
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      // next
    }
  }
  return undefined;
}

function run(command, args, options = {}) {
  const r = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`backend-cuda: ${path.basename(command)} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

// ───────────────────────────── the addon ─────────────────────────────

function buildAddon() {
  const target = path.join(dist, 'tp_cuda.node');
  const built = path.join(root, 'native/build/Release/tp_cuda.node');
  const nodedir = path.dirname(path.dirname(process.execPath));
  const compiler = process.env.CXX ? which(process.env.CXX) ?? process.env.CXX : which('c++') ?? which('g++') ?? which('clang++');
  const python = which('python3') ?? which('python');
  const headers = path.join(nodedir, 'include/node/node_api.h');
  const missing = [!compiler && 'a C++ compiler (c++, g++ or clang++)', !python && 'python3 (node-gyp runs gyp with it)', !existsSync(headers) && `Node's headers (${headers})`].filter(Boolean);
  if (missing.length > 0) {
    const reason = `no ${missing.join(', no ')}`;
    if (existsSync(built)) {
      copyFileSync(built, target);
      say(`addon: ${reason}; kept the one built before (${path.relative(root, built)})`);
      return { built: true, kept: true, reason };
    }
    say(`addon: skipped: ${reason}. The package imports, and probe() reports the addon as missing.`);
    return { built: false, reason };
  }
  let gyp;
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const reason = 'the node-gyp package is not installed (a devDependency: run pnpm install)';
    say(`addon: skipped: ${reason}`);
    return { built: false, reason };
  }
  const makefile = path.join(root, 'native/build/Makefile');
  const gypFile = path.join(root, 'native/binding.gyp');
  const nodeArgs = [`--nodedir=${nodedir}`, '-C', path.join(root, 'native')];
  if (!existsSync(makefile) || statSync(gypFile).mtimeMs > statSync(makefile).mtimeMs) run(process.execPath, [gyp, 'configure', ...nodeArgs, '--loglevel=warn']);
  run(process.execPath, [gyp, 'build', ...nodeArgs, '--loglevel=warn', `--jobs=${process.env.TP_BUILD_JOBS ?? '2'}`]);
  copyFileSync(built, target);
  say(`addon: ${path.relative(root, target)} (${(statSync(target).size / 1024).toFixed(0)} KiB)`);
  return { built: true, node: process.versions.node, napi: 8 };
}

// ───────────────────────────── the kernels ─────────────────────────────

const ARCHS = ['-gencode', 'arch=compute_80,code=sm_80', '-gencode', 'arch=compute_90,code=sm_90', '-gencode', 'arch=compute_90,code=compute_90'];

function findNvcc() {
  const candidates = [process.env.NVCC, which('nvcc'), process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin/nvcc'), '/usr/local/cuda/bin/nvcc'];
  return candidates.find((c) => c && existsSync(c));
}

function buildKernels() {
  const target = path.join(dist, 'kernels.fatbin');
  const fatbin = path.join(build, 'kernels.fatbin');
  const stamp = path.join(build, 'kernels.stamp');
  const sources = readdirSync(path.join(root, 'kernels')).map((f) => path.join(root, 'kernels', f));
  const nvcc = findNvcc();
  if (!nvcc) {
    const reason = 'nvcc was not found (PATH, NVCC, CUDA_HOME/bin, /usr/local/cuda/bin)';
    if (existsSync(fatbin)) {
      copyFileSync(fatbin, target);
      say(`kernels: ${reason}; kept the fatbin built before`);
      return { built: true, kept: true, reason };
    }
    say(`kernels: skipped: ${reason}. probe() reports the kernels as missing.`);
    return { built: false, reason };
  }
  const args = ['-fatbin', '--no-compress', '-O3', '-std=c++17', ...ARCHS, `-I${path.join(root, 'kernels')}`, path.join(root, 'kernels/kernels.cu'), '-o', fatbin];
  const version = spawnSync(nvcc, ['--version'], { encoding: 'utf8' }).stdout?.match(/release ([\d.]+)/)?.[1] ?? 'unknown';
  const key = JSON.stringify({ nvcc, version, args, sources: sources.map((s) => [path.basename(s), statSync(s).mtimeMs]) });
  const upToDate = existsSync(fatbin) && existsSync(stamp) && readFileSync(stamp, 'utf8') === key;
  if (!upToDate) {
    const started = Date.now();
    run(nvcc, args);
    writeFileSync(stamp, key);
    say(`kernels: nvcc ${version} → ${path.relative(root, target)} (sm_80, sm_90, compute_90; ${(statSync(fatbin).size / 1024).toFixed(0)} KiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } else {
    say('kernels: up to date');
  }
  copyFileSync(fatbin, target);
  return { built: true, nvcc: version, archs: ['sm_80', 'sm_90', 'compute_90'] };
}

info.addon = buildAddon();
info.kernels = buildKernels();
writeFileSync(path.join(dist, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
