/**
 * node-llama-cpp, installed on demand into .cache/llamacpp/npm (never into the workspace: CI's
 * `pnpm install --frozen-lockfile` must not download llama.cpp).
 *
 * The install runs `npm install --ignore-scripts --omit=optional` with an exact-version package.json
 * naming node-llama-cpp and the prebuilt CPU binary package for this platform:
 * - --ignore-scripts: node-llama-cpp's postinstall (`node ./dist/cli/cli.js postinstall`) only checks
 *   whether a prebuilt binary works and otherwise downloads llama.cpp's sources and builds them with
 *   cmake. The prebuilt binary works without it (getLlama({ build: 'never' }) loads it directly), so
 *   nothing is built and nothing but the npm registry is contacted.
 * - --omit=optional: node-llama-cpp lists every platform's binaries as optional dependencies; on
 *   linux-x64 npm would also fetch the CUDA and Vulkan builds. Naming the CPU package as a regular
 *   dependency and omitting the optional ones fetches only the CPU build.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { NODE_LLAMA_CPP_VERSION, npmDir, rel } from './common.mjs';

/** The prebuilt-binary package node-llama-cpp uses for a CPU-only build on this machine. */
export function binaryPackage(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `@node-llama-cpp/linux-${arch}`;
  if (platform === 'darwin') return arch === 'arm64' ? '@node-llama-cpp/mac-arm64-metal' : '@node-llama-cpp/mac-x64';
  if (platform === 'win32') return `@node-llama-cpp/win-${arch}`;
  throw new Error(`no prebuilt node-llama-cpp binary package is known for ${platform}-${arch}`);
}

function installedVersion(name) {
  const file = path.join(npmDir, 'node_modules', ...name.split('/'), 'package.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

/** Install node-llama-cpp into the cache when it is missing or another version. Returns what happened. */
export function ensureNodeLlamaCpp({ log = () => {} } = {}) {
  const binary = binaryPackage();
  const want = { 'node-llama-cpp': NODE_LLAMA_CPP_VERSION, [binary]: NODE_LLAMA_CPP_VERSION };
  const have = Object.fromEntries(Object.keys(want).map((name) => [name, installedVersion(name)]));
  if (Object.entries(want).every(([name, version]) => have[name] === version)) {
    return { installed: false, command: undefined, packages: want };
  }
  mkdirSync(npmDir, { recursive: true });
  writeFileSync(
    path.join(npmDir, 'package.json'),
    `${JSON.stringify({ name: 'tp-compare-llamacpp-cache', private: true, description: 'written by tools/compare-llamacpp; not part of the workspace', dependencies: want }, null, 2)}\n`,
  );
  const args = ['install', '--prefix', npmDir, '--ignore-scripts', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error'];
  const command = `npm ${args.join(' ').replace(npmDir, rel(npmDir))}`;
  log(`installing node-llama-cpp ${NODE_LLAMA_CPP_VERSION} and ${binary} into ${rel(npmDir)} (once): ${command}`);
  const started = performance.now();
  execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, { stdio: ['ignore', 2, 'inherit'] }); // npm's stdout to our stderr: stdout is the table
  for (const [name, version] of Object.entries(want)) {
    const got = installedVersion(name);
    if (got !== version) throw new Error(`npm install finished but ${name} is ${got ?? 'missing'}, not ${version}`);
  }
  log(`installed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { installed: true, command, packages: want };
}

/** Import the cached node-llama-cpp (after ensureNodeLlamaCpp). */
export async function importNodeLlamaCpp() {
  const pkgDir = path.join(npmDir, 'node_modules', 'node-llama-cpp');
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const entry = pkg.exports?.['.']?.import ?? pkg.exports?.['.']?.default ?? pkg.main ?? 'dist/index.js';
  return import(pathToFileURL(path.join(pkgDir, typeof entry === 'string' ? entry : entry.default)).href);
}

/** Versions of the installed node-llama-cpp and of the llama.cpp its binary was built from. */
export function llamaCppVersions() {
  const pkgDir = path.join(npmDir, 'node_modules', 'node-llama-cpp');
  const read = (file) => {
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  };
  const binary = binaryPackage();
  const binDir = path.join(npmDir, 'node_modules', ...binary.split('/'), 'bins');
  let buildMetadata;
  if (existsSync(binDir)) for (const d of readdirSync(binDir)) buildMetadata ??= read(path.join(binDir, d, '_nlcBuildMetadata.json'));
  return {
    nodeLlamaCpp: read(path.join(pkgDir, 'package.json'))?.version,
    binaryPackage: binary,
    binaryPackageVersion: installedVersion(binary),
    llamaCpp: read(path.join(pkgDir, 'llama', 'llama.cpp.info.json')) ?? buildMetadata?.buildOptions?.llamaCpp,
  };
}
