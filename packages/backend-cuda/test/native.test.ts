/**
 * The built addon without a GPU: no CUDA, cuBLASLt or NCCL symbol linked into it (everything is
 * dlopen'ed), old enough glibc/libstdc++ symbol versions, importing the package never crashes and
 * probe() says why it is unavailable and where it looked; with a fake libcuda.so.1 (a C stub built
 * here) the loader, the probe and a failing driver call are exercised end to end, in child processes
 * (library state is per process).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { translate } from '../src/errors.js';
import { addon, addonMissing, addonPath, distBuilt, distIndex, packageRoot } from './helpers.js';

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tp-cuda-native-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Run `body` (an async function's source using `m`, the built package) in a fresh Node; its JSON result. */
function child(body: string, env: Record<string, string> = {}): unknown {
  const script = `const m = await import(${JSON.stringify(distIndex)}); const out = await (async () => { ${body} })(); console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, TP_CUDA_NO_PYTHON: '1', ...env }, timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

if (addon === undefined) {
  describe('the addon', () => {
    it.skip(`skipped: ${addonMissing}`, () => {});
  });
}

describe.skipIf(addon === undefined)('the addon binary', () => {
  it.skipIf(!has('nm'))('links no CUDA, cuBLAS(Lt) or NCCL symbol: nm -D --undefined-only lists none', () => {
    const undefinedSymbols = execFileSync('nm', ['-D', '--undefined-only', addonPath], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop()!.replace(/@.*$/, ''))
      .filter(Boolean);
    expect(undefinedSymbols.length).toBeGreaterThan(10); // dlopen, napi_*, libc: the listing is real
    expect(undefinedSymbols).toContain('dlopen');
    expect(undefinedSymbols.filter((s) => /^(cu|nccl|pnccl|cublas)/.test(s))).toEqual([]);
  });

  it.skipIf(!has('objdump'))('needs at most GLIBC_2.17 and GLIBCXX_3.4.21 (loads on older distributions than it was built on)', () => {
    const versions = [...execFileSync('objdump', ['-T', addonPath], { encoding: 'utf8' }).matchAll(/\((GLIBC(?:XX)?)_([\d.]+)\)/g)].map((m) => [m[1]!, m[2]!.split('.').map(Number)] as const);
    const newer = (v: number[], limit: number[]) => {
      for (let i = 0; i < Math.max(v.length, limit.length); i++) if ((v[i] ?? 0) !== (limit[i] ?? 0)) return (v[i] ?? 0) > (limit[i] ?? 0);
      return false;
    };
    expect(versions.length).toBeGreaterThan(0);
    const tooNew = versions.filter(([lib, v]) => newer(v, lib === 'GLIBC' ? [2, 17] : [3, 4, 21])).map(([lib, v]) => `${lib}_${v.join('.')}`);
    expect(tooNew).toEqual([]);
  });

  it('a driver call before the driver is loaded is an error naming the library, which becomes backend-missing', () => {
    let thrown: unknown;
    try {
      new addon!.Context(0);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ library: 'cuda', call: 'dlopen' });
    expect(translate(thrown, { rank: 1 })).toMatchObject({ code: 'backend-missing', message: expect.stringMatching(/^rank 1: .*libcuda\.so\.1/) });
  });
});

describe.skipIf(!distBuilt || addon === undefined)('the package on a machine without a GPU', () => {
  it('imports, and probe() is unavailable, naming each library and every place it looked', () => {
    const probe = child('return await m.backend.probe();', { LD_LIBRARY_PATH: path.join(tmp, 'nothing-here') }) as { available: boolean; reason: string; devices: unknown[]; libraries: Array<{ library: string; loaded: boolean; looked: string[] }> };
    expect(probe.available).toBe(false);
    expect(probe.devices).toEqual([]);
    expect(probe.reason).toMatch(/^the NVIDIA driver \(libcuda\.so\.1\) was not found/);
    expect(probe.reason).toContain(`LD_LIBRARY_PATH: ${path.join(tmp, 'nothing-here')} — no such folder`);
    expect(probe.reason).toMatch(/system: libcuda\.so\.1 — .*cannot open shared object file/);
    expect(probe.reason).toMatch(/cuBLASLt \(libcublasLt\.so\.13 or \.12\) was not found/);
    expect(probe.reason).toMatch(/NCCL \(libnccl\.so\.2\) was not found/);
    expect(probe.libraries.map((l) => [l.library, l.loaded])).toEqual([
      ['cuda', false],
      ['cublasLt', false],
      ['nccl', false],
    ]);
  });

  it('createCommunicator works without a GPU (one process, in-process device collective) and survives structured cloning', () => {
    const init = child('const c = m.backend.createCommunicator(2, { timeoutMs: 500 }); return { kind: c.kind, mode: c.mode, devices: c.devices, world: c.world, clone: structuredClone(c).mode };') as Record<string, unknown>;
    expect(init).toEqual({ kind: 'cuda', mode: 'device', devices: [0, 0], world: 2, clone: 'device' });
  });

  it('createRank without a GPU rejects with backend-missing and the reason', () => {
    const e = child("try { await m.backend.createRank({ rank: 0, world: 1, communicator: m.backend.createCommunicator(1, { timeoutMs: 500 }), options: {} }); return 'resolved'; } catch (e) { return { code: e.code, message: e.message }; }") as { code: string; message: string };
    expect(e.code).toBe('backend-missing');
    expect(e.message).toMatch(/^rank 0: the CUDA backend is unavailable: .*libcuda\.so\.1/);
  });
});

const cc = ['cc', 'gcc', 'clang'].find(has);

describe.skipIf(!distBuilt || addon === undefined || cc === undefined)('with a fake libcuda.so.1 (a C stub: one sm_90 GPU, no device work)', () => {
  const fake = path.join(tmp, 'fake', 'libcuda.so.1');
  if (cc !== undefined) {
    execFileSync('mkdir', ['-p', path.dirname(fake)]);
    execFileSync(cc, ['-shared', '-fPIC', '-o', fake, path.join(packageRoot, 'test/fixtures/fake-libcuda.c')]);
  }

  it('the override loads it (dlsym of the versioned names, no cuGetProcAddress), and probe() lists the GPU', () => {
    const p = child('return await m.probeCuda();', { TP_CUDA_LIBCUDA: fake }) as { available: boolean; devices: Array<{ name: string; memoryBytes: number }>; driverVersion: number; libraries: Array<{ looked: string[]; path?: string; versionText?: string }> };
    expect(p.available).toBe(true);
    expect(p.devices).toEqual([{ name: 'Fake GPU (sm_90, 132 SMs, 0000:00:00)', memoryBytes: 141 * 2 ** 30, details: { 'compute capability': '9.0', multiprocessors: 132, 'PCI bus': '0000:00:00' } }]);
    expect(p.driverVersion).toBe(13000);
    expect(p.libraries[0]!.path).toBe(fake);
    expect(p.libraries[0]!.versionText).toBe('13.0');
    expect(p.libraries[0]!.looked[0]).toBe(`env: ${fake} — loaded`);
  });

  it("a failing driver call in createRank is a CudaError with the library, the call, the code's name and the rank", () => {
    const e = child("try { await m.backend.createRank({ rank: 0, world: 1, communicator: m.backend.createCommunicator(1, { timeoutMs: 500 }), options: {} }); return 'resolved'; } catch (e) { return { name: e.name, code: e.code, library: e.library, call: e.call, status: e.status, statusName: e.statusName, rank: e.rank, device: e.device, message: e.message }; }", { TP_CUDA_LIBCUDA: fake }) as Record<string, unknown>;
    expect(e).toMatchObject({ name: 'CudaError', code: 'out-of-memory', library: 'cuda', call: 'cuDevicePrimaryCtxRetain', status: 2, statusName: 'CUDA_ERROR_OUT_OF_MEMORY', rank: 0, device: 0 });
    expect(e['message']).toMatch(/^rank 0 \(GPU 0\): cuda cuDevicePrimaryCtxRetain failed with CUDA_ERROR_OUT_OF_MEMORY \(2\): out of memory \(fake\)/);
  });

  it("cuInit's failure makes probe() unavailable with the status's name", () => {
    const p = child('return await m.probeCuda();', { TP_CUDA_LIBCUDA: fake, FAKE_CUDA_INIT: '100' }) as { available: boolean; reason: string };
    expect(p.available).toBe(false);
    expect(p.reason).toMatch(/cuInit returned CUDA_ERROR_NO_DEVICE \(100\)/);
  });

  it('a driver older than CUDA 13.0 is refused with the reason', () => {
    const p = child('return await m.probeCuda();', { TP_CUDA_LIBCUDA: fake, FAKE_CUDA_VERSION: '12080' }) as { available: boolean; reason: string };
    expect(p.available).toBe(false);
    expect(p.reason).toMatch(/supports CUDA 12\.8; .*need a driver for CUDA 13\.0 or newer/);
  });

  it('NCCL_MULTI_RANK_GPU_ENABLE is set (unless the user chose a value) once NCCL is looked for', () => {
    const r = child("m.probeCuda; await m.backend.probe(); return [process.env.NCCL_MULTI_RANK_GPU_ENABLE ?? null];", { TP_CUDA_LIBCUDA: fake }) as string[];
    expect(r).toEqual(['1']);
    const kept = child('await m.backend.probe(); return [process.env.NCCL_MULTI_RANK_GPU_ENABLE ?? null];', { TP_CUDA_LIBCUDA: fake, NCCL_MULTI_RANK_GPU_ENABLE: '0' }) as string[];
    expect(kept).toEqual(['0']);
  });
});
