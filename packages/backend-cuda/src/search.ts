/**
 * Where the CUDA libraries are looked for, in order, and what was found at each place. The addon
 * dlopens the candidates this returns (libs.cc); `probe()` prints every step, so a user whose
 * libraries are missing sees each folder that was tried and why it did not do.
 *
 * Order, per library: its environment override (a file or a folder), LD_LIBRARY_PATH, the system
 * loader (the bare soname: ld.so.cache and the default folders; for the driver also the folders
 * drivers are installed in, DRIVER_FOLDERS), CUDA_HOME / CUDA_PATH and the
 * toolkit's default prefix (/usr/local/cuda), then pip wheel folders: site-packages/nvidia/cu13/lib
 * (CUDA 13 wheels), nvidia/nccl/lib, and CUDA 12's nvidia/<package>/lib, in every site-packages folder
 * found (VIRTUAL_ENV, CONDA_PREFIX, /opt/*\/.venv, the user's and the system's, and python3's own).
 * A file that exists but is not an ELF shared object (a linker script, a text stub) is skipped.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type LibraryName = 'cuda' | 'cublasLt' | 'nccl';

export interface LibrarySpec {
  /** What the user installs. */
  title: string;
  /** Sonames, preferred first. */
  sonames: readonly string[];
  /** The environment variable that overrides the search (a file or a folder). */
  env: string;
  /** Whether toolkit folders (CUDA_HOME, /usr/local/cuda) may hold it. The driver never comes from there (only a stub does). */
  toolkit: boolean;
  /** Whether pip wheels ship it. */
  wheels: boolean;
  /** Folders (relative to site-packages) of the wheels that ship it, most likely first; nvidia/*\/lib is tried after these. */
  wheelFolders: readonly string[];
}

export const LIBRARIES: Readonly<Record<LibraryName, LibrarySpec>> = {
  cuda: { title: 'the NVIDIA driver (libcuda.so.1)', sonames: ['libcuda.so.1'], env: 'TP_CUDA_LIBCUDA', toolkit: false, wheels: false, wheelFolders: [] },
  cublasLt: {
    title: 'cuBLASLt (libcublasLt.so.13 or .12)',
    sonames: ['libcublasLt.so.13', 'libcublasLt.so.12'],
    env: 'TP_CUDA_CUBLASLT',
    toolkit: true,
    wheels: true,
    wheelFolders: ['nvidia/cu13/lib', 'nvidia/cublas/lib'],
  },
  nccl: { title: 'NCCL (libnccl.so.2)', sonames: ['libnccl.so.2'], env: 'TP_CUDA_NCCL', toolkit: true, wheels: true, wheelFolders: ['nvidia/nccl/lib', 'nvidia/cu13/lib'] },
};

export type StepResult = 'candidate' | 'missing' | 'not-elf' | 'no-folder' | 'unreadable';

export interface SearchStep {
  /** Which rule produced this place. */
  source: 'env' | 'LD_LIBRARY_PATH' | 'system' | 'driver-folder' | 'CUDA_HOME' | 'toolkit' | 'pip';
  /** A file path, or a bare soname for the system loader. */
  path: string;
  result: StepResult;
  detail?: string;
}

export interface SearchResult {
  library: LibraryName;
  /** What to hand to dlopen, in order. */
  candidates: string[];
  steps: SearchStep[];
}

export interface SearchContext {
  env: Readonly<Record<string, string | undefined>>;
  /** site-packages folders (default: sitePackages(env)). */
  sitePackages?: readonly string[];
  /** Toolkit prefixes to try after CUDA_HOME (default /usr/local/cuda). */
  toolkitPrefixes?: readonly string[];
  /** Where drivers are installed, tried after the system loader (default DRIVER_FOLDERS). */
  driverFolders?: readonly string[];
}

/** Folders drivers are installed in (distributions, containers, WSL), for the driver only. */
export const DRIVER_FOLDERS: readonly string[] = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/nvidia/lib64', '/usr/lib/wsl/lib'];

/** The first bytes of a file: whether it is an ELF object, or why it cannot be read. */
export function elfCheck(file: string): 'elf' | 'not-elf' | 'missing' | 'unreadable' {
  let fd: number | undefined;
  try {
    if (!statSync(file).isFile()) return 'not-elf';
    fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && head.readUInt32BE(0) === 0x7f454c46 ? 'elf' : 'not-elf';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Subfolders of `dir` matching `pattern` (one level), sorted; none when `dir` is absent. */
function globOne(dir: string, pattern: RegExp): string[] {
  try {
    return readdirSync(dir)
      .filter((e) => pattern.test(e))
      .sort()
      .map((e) => path.join(dir, e));
  } catch {
    return [];
  }
}

/** site-packages (and dist-packages) under a Python prefix: <prefix>/lib/python3.*\/{site,dist}-packages. */
function underPrefix(prefix: string): string[] {
  return globOne(path.join(prefix, 'lib'), /^python3(\.\d+)?$/).flatMap((lib) => [path.join(lib, 'site-packages'), path.join(lib, 'dist-packages')]);
}

let pythonSites: string[] | undefined;

/** What python3 itself reports (site.getsitepackages and the user site), once per process; [] without python3. */
function askPython(env: Readonly<Record<string, string | undefined>>): string[] {
  if (env['TP_CUDA_NO_PYTHON'] === '1') return [];
  if (pythonSites !== undefined) return pythonSites;
  pythonSites = [];
  try {
    const r = spawnSync(env['TP_CUDA_PYTHON'] ?? 'python3', ['-c', 'import site,json;print(json.dumps(site.getsitepackages()+[site.getusersitepackages()]))'], {
      encoding: 'utf8',
      timeout: 5000,
      env: { ...process.env, ...env } as NodeJS.ProcessEnv,
    });
    if (r.status === 0) pythonSites = (JSON.parse(r.stdout.trim()) as unknown[]).filter((p): p is string => typeof p === 'string');
  } catch {
    // no python3: only the folders below
  }
  return pythonSites;
}

/** Every site-packages folder worth looking in, de-duplicated, existing ones only. */
export function sitePackages(env: Readonly<Record<string, string | undefined>>): string[] {
  const found: string[] = [];
  for (const v of ['VIRTUAL_ENV', 'CONDA_PREFIX']) if (env[v]) found.push(...underPrefix(env[v]!));
  for (const venv of globOne('/opt', /.*/)) found.push(...underPrefix(path.join(venv, '.venv')), ...underPrefix(venv));
  const home = env['HOME'] ?? os.homedir();
  if (home) found.push(...underPrefix(path.join(home, '.local')));
  found.push(...underPrefix('/usr/local'), '/usr/lib/python3/dist-packages');
  found.push(...askPython(env));
  return [...new Set(found.map((p) => path.resolve(p)))].filter(isDirectory);
}

/** The places `library` is looked for, in order, and what each holds. */
export function searchLibrary(library: LibraryName, context: SearchContext): SearchResult {
  const spec = LIBRARIES[library];
  const { env } = context;
  const steps: SearchStep[] = [];
  const candidates: string[] = [];
  const seen = new Set<string>();

  const tryFile = (source: SearchStep['source'], file: string) => {
    const resolved = path.resolve(file);
    if (seen.has(resolved)) return;
    seen.add(resolved);
    const kind = elfCheck(resolved);
    if (kind === 'elf') {
      steps.push({ source, path: resolved, result: 'candidate' });
      candidates.push(resolved);
    } else if (kind === 'not-elf') {
      steps.push({ source, path: resolved, result: 'not-elf', detail: 'exists but is not an ELF shared library (a linker script or stub?)' });
    } else {
      steps.push({ source, path: resolved, result: kind });
    }
  };
  const tryFolder = (source: SearchStep['source'], dir: string) => {
    if (!isDirectory(dir)) {
      steps.push({ source, path: path.resolve(dir), result: 'no-folder' });
      return;
    }
    for (const soname of spec.sonames) tryFile(source, path.join(dir, soname));
  };

  const override = env[spec.env];
  if (override) {
    if (isDirectory(override)) tryFolder('env', override);
    else tryFile('env', override);
  }
  for (const dir of (env['LD_LIBRARY_PATH'] ?? '').split(':').filter((d) => d !== '')) tryFolder('LD_LIBRARY_PATH', dir);
  for (const soname of spec.sonames) {
    steps.push({ source: 'system', path: soname, result: 'candidate', detail: 'the system loader (ld.so.cache, /lib, /usr/lib)' });
    candidates.push(soname);
  }
  if (library === 'cuda') for (const dir of context.driverFolders ?? DRIVER_FOLDERS) tryFolder('driver-folder', dir);
  if (spec.toolkit) {
    const homes = [env['CUDA_HOME'], env['CUDA_PATH']].filter((h): h is string => !!h);
    for (const home of homes) for (const sub of ['lib64', 'lib', 'targets/x86_64-linux/lib']) tryFolder('CUDA_HOME', path.join(home, sub));
    for (const prefix of context.toolkitPrefixes ?? ['/usr/local/cuda']) for (const sub of ['lib64', 'lib']) tryFolder('toolkit', path.join(prefix, sub));
  }
  if (spec.wheels) {
    for (const site of context.sitePackages ?? sitePackages(env)) {
      const folders = [...spec.wheelFolders.map((f) => path.join(site, f)), ...globOne(path.join(site, 'nvidia'), /.*/).map((d) => path.join(d, 'lib'))];
      for (const folder of [...new Set(folders)]) {
        if (isDirectory(folder)) tryFolder('pip', folder);
        else if (spec.wheelFolders.some((f) => path.join(site, f) === folder)) steps.push({ source: 'pip', path: folder, result: 'no-folder' });
      }
    }
  }
  return { library, candidates, steps };
}

/** One line per place looked, for a probe's reason. */
export function describeSteps(steps: readonly SearchStep[], attempts: ReadonlyArray<{ candidate: string; error?: string }> = []): string[] {
  const errors = new Map(attempts.map((a) => [a.candidate, a.error]));
  return steps.map((s) => {
    const where = `${s.source}: ${s.path}`;
    switch (s.result) {
      case 'candidate': {
        if (!errors.has(s.path)) return `${where} — not tried (an earlier candidate loaded)`;
        const e = errors.get(s.path);
        return e === undefined ? `${where} — loaded` : `${where} — ${e}`;
      }
      case 'missing':
        return `${where} — no such file`;
      case 'no-folder':
        return `${where} — no such folder`;
      case 'not-elf':
        return `${where} — ${s.detail}`;
      case 'unreadable':
        return `${where} — cannot be read`;
    }
  });
}

