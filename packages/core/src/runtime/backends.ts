/**
 * Finding a backend by name. Users install @tp/core plus only the backend they need, so a backend is
 * imported lazily, from the application's own dependencies. What goes wrong is said precisely, one
 * `reason` each:
 * - `unknown`: no backend has that name (code `backend-missing`, listing the names);
 * - `not-installed`: no folder in reach holds the package (code `backend-missing`, saying how to get it);
 * - `load-failed`: the package is installed but importing it threw, or it exports no `backend` (code
 *   `backend-load-failed`, with the import error as `cause`); one built for another interface version
 *   is `not-installed` (a matching version is what is missing);
 * - `unavailable`: it loaded, but its `probe()` says this machine cannot run it (code
 *   `backend-unavailable`, with the probe's reason).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BACKEND_INTERFACE_VERSION, type Backend } from '../backend/index.js';
import { TpError } from '../errors/index.js';

/** The backends tp knows: the package of each, and whether it is published to the npm registry yet. */
export const BACKENDS: Readonly<Record<string, { packageName: string; published: boolean }>> = {
  cpu: { packageName: '@tp/backend-cpu', published: true },
  webgpu: { packageName: '@tp/backend-webgpu', published: false },
  cuda: { packageName: '@tp/backend-cuda', published: false },
};

export const BACKEND_PACKAGES: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(BACKENDS).map(([name, b]) => [name, b.packageName]));

export type BackendProblem = 'unknown' | 'not-installed' | 'load-failed' | 'unavailable';

const CODES = { unknown: 'backend-missing', 'not-installed': 'backend-missing', 'load-failed': 'backend-load-failed', unavailable: 'backend-unavailable' } as const;

/** A backend that cannot be used, and which of the four reasons (see the file comment) applies. */
export class BackendMissingError extends TpError {
  readonly backend: string;
  readonly packageName: string | undefined;
  readonly reason: BackendProblem;
  /** Where it was found, for `load-failed` and `unavailable`. */
  readonly location: string | undefined;

  constructor(backend: string, packageName: string | undefined, detail: string, fields: { reason?: BackendProblem; cause?: unknown; location?: string } = {}) {
    const reason = fields.reason ?? (packageName === undefined ? 'unknown' : 'not-installed');
    super(CODES[reason], detail, fields.cause === undefined ? {} : { cause: fields.cause });
    this.name = 'BackendMissingError';
    this.backend = backend;
    this.packageName = packageName;
    this.reason = reason;
    this.location = fields.location;
  }
}

export interface ResolveBackendOptions {
  /**
   * Folders to look for the package from (each and its parents' node_modules). Default: this
   * package's own folder, the working directory and the folder of the script being run.
   */
  searchFrom?: readonly string[];
  /** Skip `probe()` (default false). */
  skipProbe?: boolean;
}

export async function resolveBackend(choice: Backend | string, options: ResolveBackendOptions = {}): Promise<Backend> {
  if (typeof choice !== 'string') return probed(checkVersion(choice, undefined), undefined, options);
  const known = BACKENDS[choice];
  if (known === undefined) {
    throw new BackendMissingError(choice, undefined, `unknown backend "${choice}". Backends: ${Object.keys(BACKENDS).join(', ')}`, { reason: 'unknown' });
  }
  const { packageName } = known;
  const found = findPackage(packageName, options.searchFrom ?? defaultSearch());
  if (found === undefined) {
    const how = known.published
      ? `Install it with: npm install ${packageName}`
      : `${packageName} is not published to npm yet: build it from the tp repository (packages/${packageName.split('/')[1]}) and add it to your application's dependencies, or use the cpu backend`;
    throw new BackendMissingError(choice, packageName, `the ${choice} backend is not installed. ${how}`, { reason: 'not-installed' });
  }
  let module: { backend?: Backend };
  try {
    module = (await import(pathToFileURL(found.entry).href)) as { backend?: Backend };
  } catch (cause) {
    throw new BackendMissingError(choice, packageName, `the ${choice} backend is installed (${found.dir}) but failed to load: ${firstLine(cause)}. Rebuild or reinstall ${packageName}`, {
      reason: 'load-failed',
      cause,
      location: found.dir,
    });
  }
  if (module.backend === undefined || typeof module.backend !== 'object') {
    throw new BackendMissingError(choice, packageName, `the ${choice} backend is installed (${found.dir}) but failed to load: ${found.entry} exports no "backend". Reinstall ${packageName}`, {
      reason: 'load-failed',
      location: found.dir,
    });
  }
  return probed(checkVersion(module.backend, found.dir), found.dir, options);
}

/** The package's folder and the file its "." export points at, looking up from each folder in turn. */
function findPackage(packageName: string, from: readonly string[]): { dir: string; entry: string } | undefined {
  for (const start of from) {
    for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', ...packageName.split('/'));
      const manifest = path.join(candidate, 'package.json');
      if (existsSync(manifest)) return { dir: candidate, entry: path.join(candidate, entryOf(manifest)) };
      if (path.dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/** The ESM entry a package.json names: exports["."] (import, then default), then module, then main. */
function entryOf(manifest: string): string {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
  } catch {
    return 'index.js';
  }
  const exports = json['exports'];
  const dot = typeof exports === 'string' ? exports : typeof exports === 'object' && exports !== null ? (exports as Record<string, unknown>)['.'] : undefined;
  const target = typeof dot === 'string' ? dot : typeof dot === 'object' && dot !== null ? ((dot as Record<string, unknown>)['import'] ?? (dot as Record<string, unknown>)['default']) : undefined;
  if (typeof target === 'string') return target;
  for (const key of ['module', 'main']) if (typeof json[key] === 'string') return json[key] as string;
  return 'index.js';
}

function defaultSearch(): string[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return [here, process.cwd(), ...(process.argv[1] ? [path.dirname(path.resolve(process.argv[1]))] : [])];
}

function checkVersion(backend: Backend, location: string | undefined): Backend {
  if (backend.interfaceVersion !== BACKEND_INTERFACE_VERSION) {
    throw new BackendMissingError(
      backend.name,
      BACKEND_PACKAGES[backend.name],
      `the ${backend.name} backend implements backend interface ${String(backend.interfaceVersion)} but this @tp/core needs ${BACKEND_INTERFACE_VERSION}; install matching versions of @tp/core and ${BACKEND_PACKAGES[backend.name] ?? 'the backend'}`,
      // A matching version is what is missing.
      { reason: 'not-installed', ...(location !== undefined ? { location } : {}) },
    );
  }
  return backend;
}

/** The backend, once its probe says this machine can run it. */
async function probed(backend: Backend, location: string | undefined, options: ResolveBackendOptions): Promise<Backend> {
  if (options.skipProbe === true || typeof backend.probe !== 'function') return backend;
  let reason: string | undefined;
  let cause: unknown;
  try {
    const probe = await backend.probe();
    if (probe.available) return backend;
    reason = probe.reason ?? 'its probe gives no reason';
  } catch (error) {
    cause = error;
    reason = `its probe failed: ${firstLine(error)}`;
  }
  throw new BackendMissingError(backend.name, BACKEND_PACKAGES[backend.name], `the ${backend.name} backend is installed but not available on this machine: ${reason}`, {
    reason: 'unavailable',
    ...(cause !== undefined ? { cause } : {}),
    ...(location !== undefined ? { location } : {}),
  });
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split('\n')[0]!;
