/**
 * What `pnpm build` put in dist/kernels.fatbin, read with our own parser (no cuobjdump here): SASS for
 * sm_80 and sm_90 and PTX for compute_90, each holding every kernel the TypeScript side launches;
 * each kernel's PTX parameter types match src/kernels.ts, and the cubins' own parameter offsets
 * (.nv.info) match the argument packing — so a launch can never pass a misplaced argument.
 */
import { describe, expect, it } from 'vitest';
import { cubinKernels, parseFatbin, ptxEntries, summarizeFatbin } from '../src/fatbin.js';
import { argLayout, KERNELS, type KernelName } from '../src/kernels.js';
import { fatbinBytes, fatbinMissing } from './helpers.js';

const names = Object.keys(KERNELS) as KernelName[];
const PTX_TYPE = { ptr: ['.u64'], i64: ['.u64', '.s64'], i32: ['.u32', '.s32'], f32: ['.f32'] } as const;

if (fatbinBytes === undefined) {
  describe('kernels fatbin', () => {
    it.skip(`skipped: ${fatbinMissing}`, () => {});
  });
}

describe.skipIf(fatbinBytes === undefined)('kernels fatbin (dist/kernels.fatbin)', () => {
  const summary = fatbinBytes && summarizeFatbin(fatbinBytes);

  it('holds exactly SASS sm_80, SASS sm_90 and PTX compute_90, uncompressed', () => {
    const entries = parseFatbin(fatbinBytes!);
    expect(entries.map((e) => `${e.kind} ${e.arch}`).sort()).toEqual(['elf 80', 'elf 90', 'ptx 90']);
    expect(summary!.unreadable).toEqual([]);
  });

  for (const arch of [80, 90]) {
    it(`sm_${arch}: every kernel of src/kernels.ts, and nothing else`, () => {
      const kernels = summary!.sass.get(arch)!.map((k) => k.name).sort();
      expect(kernels).toEqual([...names].sort());
    });
    it(`sm_${arch}: each kernel's parameter offsets and sizes (.nv.info) equal the argument packing`, () => {
      for (const k of summary!.sass.get(arch)!) {
        const kinds = KERNELS[k.name as KernelName];
        const layout = argLayout(kinds);
        const sizes = kinds.map((kind) => (kind === 'ptr' || kind === 'i64' ? 8 : 4));
        expect(k.params, k.name).toEqual(layout.offsets.map((offset, i) => ({ offset, size: sizes[i]! })));
        expect(k.paramBytes, `${k.name}: parameter buffer size`).toBe(layout.size);
      }
    });
  }

  it('compute_90 PTX: every kernel, with the parameter types src/kernels.ts packs', () => {
    const ptx = summary!.ptx.get(90)!;
    expect([...ptx.keys()].sort()).toEqual([...names].sort());
    for (const name of names) {
      const types = ptx.get(name)!;
      const kinds = KERNELS[name];
      expect(types.length, `${name}: parameter count`).toBe(kinds.length);
      kinds.forEach((kind, i) => expect(PTX_TYPE[kind] as readonly string[], `${name} parameter ${i} is ${types[i]}, packed as ${kind}`).toContain(types[i]));
    }
  });

  it('a damaged container is refused with a kernel-invalid TpError, not misread', () => {
    const bad = fatbinBytes!.slice();
    bad[0] = 0;
    expect(() => parseFatbin(bad)).toThrow(expect.objectContaining({ code: 'kernel-invalid' }));
    expect(() => parseFatbin(fatbinBytes!.subarray(0, 200))).toThrow(expect.objectContaining({ code: 'kernel-invalid' }));
    const notCuda = new Uint8Array(64);
    notCuda.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    expect(() => cubinKernels(notCuda)).toThrow(/machine|section/);
  });
});

describe('PTX entry parsing', () => {
  it('reads entry names and parameter types in order', () => {
    const ptx = `.visible .entry tp_a(\n\t.param .u64 tp_a_param_0,\n\t.param .f32 tp_a_param_1,\n\t.param .u32 tp_a_param_2\n)\n{ ret; }\n.visible .entry tp_b()\n{ ret; }`;
    const entries = ptxEntries(ptx);
    expect(entries.get('tp_a')).toEqual(['.u64', '.f32', '.u32']);
    expect(entries.get('tp_b')).toEqual([]);
  });
});
