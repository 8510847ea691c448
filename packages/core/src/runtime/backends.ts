/**
 * Finding a backend by name. Users install @tp/core plus only the backend they need, so a backend is
 * imported lazily, from the application's own dependencies, and a missing one is an error naming the
 * package to install.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BACKEND_INTERFACE_VERSION, type Backend } from '../backend/index.js';
import { TpError } from '../errors/index.js';

export const BACKEND_PACKAGES: Readonly<Record<string, string>> = {
  cpu: '@tp/backend-cpu',
  webgpu: '@tp/backend-webgpu',
  cuda: '@tp/backend-cuda',
};

export class BackendMissingError extends TpError {
  readonly backend: string;
  readonly packageName: string | undefined;

  constructor(backend: string, packageName: string | undefined, detail: string) {
    super('backend-missing', detail);
    this.name = 'BackendMissingError';
    this.backend = backend;
    this.packageName = packageName;
  }
}

export async function resolveBackend(choice: Backend | string): Promise<Backend> {
  if (typeof choice !== 'string') return checkVersion(choice);
  const packageName = BACKEND_PACKAGES[choice];
  if (packageName === undefined) {
    throw new BackendMissingError(choice, undefined, `unknown backend "${choice}". Backends: ${Object.keys(BACKEND_PACKAGES).join(', ')}`);
  }
  // Try the usual resolution, then the application's own folder (pnpm does not hoist packages).
  const attempts = [
    () => import(packageName),
    () => import(pathToFileURL(createRequire(path.join(process.cwd(), 'index.js')).resolve(packageName)).href),
    () => import(pathToFileURL(createRequire(path.resolve(process.argv[1] ?? '.')).resolve(packageName)).href),
  ];
  for (const attempt of attempts) {
    try {
      const module = (await attempt()) as { backend?: Backend };
      if (module.backend !== undefined) return checkVersion(module.backend);
    } catch {
      // next
    }
  }
  throw new BackendMissingError(choice, packageName, `the ${choice} backend is not installed. Install it with: npm install ${packageName}`);
}

function checkVersion(backend: Backend): Backend {
  if (backend.interfaceVersion !== BACKEND_INTERFACE_VERSION) {
    throw new BackendMissingError(
      backend.name,
      BACKEND_PACKAGES[backend.name],
      `the ${backend.name} backend implements backend interface ${String(backend.interfaceVersion)} but this @tp/core needs ${BACKEND_INTERFACE_VERSION}; install matching versions of @tp/core and ${BACKEND_PACKAGES[backend.name] ?? 'the backend'}`,
    );
  }
  return backend;
}
