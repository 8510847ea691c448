/**
 * resolveBackend says which of four things went wrong: an unknown name, a package not installed, one
 * installed that fails to load (with the cause), one that loads but whose probe says this machine
 * cannot run it (with the probe's reason). Fixture packages are written into a temporary node_modules.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_INTERFACE_VERSION, BackendMissingError, resolveBackend, TpError } from '../../src/index.js';

let root: string;

async function fixturePackage(app: string, name: string, source: string) {
  const dir = path.join(app, 'node_modules', '@tp', name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: `@tp/${name}`, type: 'module', exports: { '.': { import: './index.js' } } }));
  await writeFile(path.join(dir, 'index.js'), source);
}

const backendSource = (name: string, probe: string) => `
export const backend = {
  interfaceVersion: ${BACKEND_INTERFACE_VERSION}, name: '${name}', moduleUrl: import.meta.url, storageDtypes: ['f32'], kvDtypes: ['f32'],
  async probe() { ${probe} },
  async rankMemoryLimit() { return undefined; },
  createCommunicator() { throw new Error('not for tests'); },
  abortCommunicator() {},
  async createRank() { throw new Error('not for tests'); },
};`;

async function failure(promise: Promise<unknown>): Promise<BackendMissingError> {
  try {
    await promise;
  } catch (error) {
    expect(TpError.isInstance(error)).toBe(true);
    return error as BackendMissingError;
  }
  throw new Error('expected resolveBackend to fail');
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'tp-backends-'));
  // An application where webgpu throws on import, cuda loads but its probe says no, cpu works.
  await fixturePackage(path.join(root, 'app'), 'backend-webgpu', `import 'no-such-native-addon';\nexport const backend = {};`);
  await fixturePackage(path.join(root, 'app'), 'backend-cuda', backendSource('cuda', `return { available: false, reason: 'no NVIDIA driver found (libcuda.so.1)', devices: [] };`));
  await fixturePackage(path.join(root, 'app'), 'backend-cpu', backendSource('cpu', `return { available: true, devices: [{ name: 'test' }] };`));
  // One whose package has no backend export.
  await fixturePackage(path.join(root, 'empty'), 'backend-cpu', `export const somethingElse = 1;`);
  await mkdir(path.join(root, 'bare'), { recursive: true });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('resolveBackend', () => {
  it('unknown: backend-missing, reason unknown, listing the names', async () => {
    const e = await failure(resolveBackend('tpu', { searchFrom: [path.join(root, 'bare')] }));
    expect(e).toBeInstanceOf(BackendMissingError);
    expect(e.code).toBe('backend-missing');
    expect(e.reason).toBe('unknown');
    expect(e.packageName).toBeUndefined();
    expect(e.message).toMatch(/cpu, webgpu, cuda/);
  });

  it('not installed: backend-missing, reason not-installed; an unpublished package is not sent to npm install', async () => {
    const cpu = await failure(resolveBackend('cpu', { searchFrom: [path.join(root, 'bare')] }));
    expect([cpu.code, cpu.reason, cpu.packageName]).toEqual(['backend-missing', 'not-installed', '@tp/backend-cpu']);
    expect(cpu.message).toMatch(/npm install @tp\/backend-cpu/);
    const webgpu = await failure(resolveBackend('webgpu', { searchFrom: [path.join(root, 'bare')] }));
    expect([webgpu.code, webgpu.reason]).toEqual(['backend-missing', 'not-installed']);
    expect(webgpu.message).not.toMatch(/npm install/);
    expect(webgpu.message).toMatch(/not published/);
  });

  it('installed but failing to load: backend-load-failed, with the import error as cause', async () => {
    const e = await failure(resolveBackend('webgpu', { searchFrom: [path.join(root, 'app')] }));
    expect([e.code, e.reason, e.packageName]).toEqual(['backend-load-failed', 'load-failed', '@tp/backend-webgpu']);
    expect(String((e.cause as Error).message)).toMatch(/no-such-native-addon/);
    expect(e.location).toBe(path.join(root, 'app', 'node_modules', '@tp', 'backend-webgpu'));
    const empty = await failure(resolveBackend('cpu', { searchFrom: [path.join(root, 'empty')] }));
    expect([empty.code, empty.reason]).toEqual(['backend-load-failed', 'load-failed']);
  });

  it("loaded but not available on this machine: backend-unavailable, with the probe's reason", async () => {
    const e = await failure(resolveBackend('cuda', { searchFrom: [path.join(root, 'app', 'src')] }));
    expect([e.code, e.reason]).toEqual(['backend-unavailable', 'unavailable']);
    expect(e.message).toMatch(/no NVIDIA driver found \(libcuda\.so\.1\)/);
  });

  it('found from a parent folder, probed, returned', async () => {
    const b = await resolveBackend('cpu', { searchFrom: [path.join(root, 'app', 'src', 'deep')] });
    expect(b.name).toBe('cpu');
  });
});
