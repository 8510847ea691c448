/**
 * Node's `fs`, `fs/promises` and `path`, for the readers of checkpoint folders and files in this
 * directory, looked up when one of them runs rather than imported. These modules are also part of
 * the browser entry (@tp/core/browser reads safetensors over HTTP Range requests, http-source.ts), and
 * a browser bundler refuses a static import of a Node builtin even in a module whose file functions
 * a page never calls. `process.getBuiltinModule` exists from Node 20.16; the package needs 20.19.
 */
import { TpError } from '../errors/index.js';

export interface NodeModules {
  fs: typeof import('node:fs');
  fsp: typeof import('node:fs/promises');
  path: typeof import('node:path');
}

let modules: NodeModules | undefined;

/** Node's modules, or an error saying that `what` reads the file system and what to use instead. */
export function nodeModules(what: string): NodeModules {
  if (modules !== undefined) return modules;
  const get = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  if (typeof get !== 'function') {
    throw new TpError(
      'invalid-argument',
      `${what} reads the file system, which needs Node 20.16 or later; in a browser, open the checkpoint with openCheckpointFrom({ config: httpByteSource(url), files: [httpByteSource(url)] })`,
    );
  }
  modules = { fs: get('node:fs') as NodeModules['fs'], fsp: get('node:fs/promises') as NodeModules['fsp'], path: get('node:path') as NodeModules['path'] };
  return modules;
}
