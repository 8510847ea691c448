/**
 * The library search over fake folders: the order of places (override, LD_LIBRARY_PATH, system
 * loader, driver folders, CUDA_HOME, toolkit, pip wheels of CUDA 13 and 12), ELF files kept and
 * non-ELF files (linker scripts, text stubs) skipped with a reason, every place reported; then the
 * addon's dlopen of those files (a fake ELF fails with the loader's message; a real library that
 * lacks the entry points is refused, naming them).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeSteps, elfCheck, searchLibrary } from '../src/search.js';
import { addon, addonMissing, addonPath } from './helpers.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'tp-cuda-search-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A file that starts like an ELF object (and is otherwise junk). */
function fakeElf(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(56)]));
  return file;
}

function text(file: string, content: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

const at = (...p: string[]) => path.join(root, ...p);
const none = { sitePackages: [], toolkitPrefixes: [], driverFolders: [] };

describe('library search over fake folders', () => {
  it('tells ELF files from linker scripts, stubs, folders and missing files', () => {
    expect(elfCheck(fakeElf(at('kinds/lib.so')))).toBe('elf');
    expect(elfCheck(text(at('kinds/script.so'), 'INPUT(libfoo.so.1)\n'))).toBe('not-elf');
    expect(elfCheck(text(at('kinds/empty.so'), ''))).toBe('not-elf');
    expect(elfCheck(at('kinds'))).toBe('not-elf');
    expect(elfCheck(at('kinds/absent.so'))).toBe('missing');
  });

  it('cuBLASLt: override file, LD_LIBRARY_PATH (13 before 12, a linker script skipped), system, CUDA_HOME, toolkit, pip (CUDA 13 then CUDA 12 wheels)', () => {
    const override = fakeElf(at('override/libcublasLt.so.13'));
    fakeElf(at('ld1/libcublasLt.so.12'));
    fakeElf(at('ld1/libcublasLt.so.13'));
    text(at('ld2/libcublasLt.so.13'), '/* GNU ld script */ INPUT(libcublasLt.so.13.0.0)');
    fakeElf(at('cuda-home/lib64/libcublasLt.so.13'));
    fakeElf(at('toolkit/lib64/libcublasLt.so.12'));
    const site13 = at('venv13/lib/python3.12/site-packages');
    fakeElf(path.join(site13, 'nvidia/cu13/lib/libcublasLt.so.13'));
    const site12 = at('venv12/lib/python3.10/site-packages');
    fakeElf(path.join(site12, 'nvidia/cublas/lib/libcublasLt.so.12'));
    const env = { TP_CUDA_CUBLASLT: override, LD_LIBRARY_PATH: `${at('ld1')}:${at('ld2')}:${at('nowhere')}`, CUDA_HOME: at('cuda-home') };
    const r = searchLibrary('cublasLt', { env, sitePackages: [site13, site12], toolkitPrefixes: [at('toolkit')], driverFolders: [] });
    expect(r.candidates).toEqual([
      override,
      at('ld1/libcublasLt.so.13'),
      at('ld1/libcublasLt.so.12'),
      'libcublasLt.so.13',
      'libcublasLt.so.12',
      at('cuda-home/lib64/libcublasLt.so.13'),
      at('toolkit/lib64/libcublasLt.so.12'),
      path.join(site13, 'nvidia/cu13/lib/libcublasLt.so.13'),
      path.join(site12, 'nvidia/cublas/lib/libcublasLt.so.12'),
    ]);
    const skipped = r.steps.find((s) => s.path === at('ld2/libcublasLt.so.13'))!;
    expect(skipped).toMatchObject({ source: 'LD_LIBRARY_PATH', result: 'not-elf' });
    expect(r.steps).toContainEqual({ source: 'LD_LIBRARY_PATH', path: at('nowhere'), result: 'no-folder' });
    expect(r.steps.filter((s) => s.source === 'CUDA_HOME').map((s) => s.result)).toContain('no-folder'); // cuda-home/lib absent
    // every step is reported, one line each
    const lines = describeSteps(r.steps, [{ candidate: override, error: 'wrong ELF class' }]);
    expect(lines).toHaveLength(r.steps.length);
    expect(lines[0]).toBe(`env: ${override} — wrong ELF class`);
    expect(lines.find((l) => l.includes('ld2'))).toMatch(/not an ELF shared library/);
    expect(lines.find((l) => l.includes('nowhere'))).toMatch(/no such folder/);
  });

  it('an override may name a folder; the same file is never listed twice', () => {
    fakeElf(at('both/libnccl.so.2'));
    const r = searchLibrary('nccl', { env: { TP_CUDA_NCCL: at('both'), LD_LIBRARY_PATH: at('both') }, ...none });
    expect(r.candidates).toEqual([at('both/libnccl.so.2'), 'libnccl.so.2']);
  });

  it('NCCL from a pip wheel folder, found by globbing nvidia/*/lib too', () => {
    const site = at('venv-nccl/lib/python3.12/site-packages');
    fakeElf(path.join(site, 'nvidia/nccl/lib/libnccl.so.2'));
    fakeElf(path.join(site, 'nvidia/other/lib/libnccl.so.2'));
    const r = searchLibrary('nccl', { env: {}, sitePackages: [site], toolkitPrefixes: [], driverFolders: [] });
    expect(r.candidates).toEqual(['libnccl.so.2', path.join(site, 'nvidia/nccl/lib/libnccl.so.2'), path.join(site, 'nvidia/other/lib/libnccl.so.2')]);
    expect(r.steps).toContainEqual({ source: 'pip', path: path.join(site, 'nvidia/cu13/lib'), result: 'no-folder' });
  });

  it('the driver never comes from a toolkit or a wheel (only a stub lives there), but from driver folders', () => {
    fakeElf(at('drv/libcuda.so.1'));
    fakeElf(at('tk/lib64/libcuda.so.1'));
    const site = at('venv-drv/lib/python3.12/site-packages');
    fakeElf(path.join(site, 'nvidia/cu13/lib/libcuda.so.1'));
    const r = searchLibrary('cuda', { env: { CUDA_HOME: at('tk') }, sitePackages: [site], toolkitPrefixes: [at('tk')], driverFolders: [at('drv')] });
    expect(r.candidates).toEqual(['libcuda.so.1', at('drv/libcuda.so.1')]);
  });

  it('follows symbolic links (a soname link to the versioned file)', () => {
    const real = fakeElf(at('links/libnccl.so.2.28.9'));
    symlinkSync(real, at('links/libnccl.so.2'));
    const r = searchLibrary('nccl', { env: { LD_LIBRARY_PATH: at('links') }, ...none });
    expect(r.candidates[0]).toBe(at('links/libnccl.so.2'));
  });
});

if (addon === undefined) {
  describe('dlopen through the addon', () => {
    it.skip(`skipped: ${addonMissing}`, () => {});
  });
}

describe.skipIf(addon === undefined)('dlopen through the addon', () => {
  it("a fake ELF file fails with the loader's own message; a real library loads", () => {
    const error = addon!.dlopenCheck(fakeElf(at('dl/libfake.so')));
    expect(error).toMatch(/libfake\.so/);
    expect(addon!.dlopenCheck(at('dl/absent.so'))).toMatch(/No such file/);
    expect(addon!.dlopenCheck('libm.so.6')).toBeNull();
  });

  it('NCCL: every candidate tried in order, a real ELF without the entry points refused by name, nothing loaded', () => {
    const wrong = path.join(at('wrong'), 'libnccl.so.2');
    mkdirSync(at('wrong'), { recursive: true });
    symlinkSync(addonPath, wrong); // a real shared library, without NCCL's entry points
    const fake = fakeElf(at('fake-nccl/libnccl.so.2'));
    const state = addon!.load('nccl', [fake, wrong, at('absent/libnccl.so.2')]);
    expect(state.loaded).toBe(false);
    const byCandidate = new Map(state.attempts.map((a) => [a.candidate, a.error]));
    expect(byCandidate.get(fake)).toBeTruthy();
    expect(byCandidate.get(wrong)).toMatch(/^lacks ncclGetVersion ncclGetUniqueId/);
    expect(byCandidate.get(at('absent/libnccl.so.2'))).toMatch(/No such file/);
  });
});
