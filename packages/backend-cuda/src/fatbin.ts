/**
 * A reader for the fatbin container nvcc writes (`nvcc -fatbin`), so that what the build produced can
 * be listed without cuobjdump (which machines without a GPU toolkit lack): its entries (SASS cubins
 * per sm_XY, PTX per compute_XY), each cubin's kernels and their parameter layout (.nv.info), each
 * PTX's entry points and parameter types.
 *
 * Layout (little-endian), as CUDA 12/13's nvcc writes it:
 *   header  u32 magic 0xBA55ED50 · u16 version · u16 header size · u64 size of the entries
 *   entry   u16 kind (1 PTX, 2 ELF) · u16 version · u32 header size · u64 payload size ·
 *           u32 compressed size · u32 · u16 minor · u16 major · u32 arch (80 = sm_80) · u32 · u32 ·
 *           u64 flags (0x1 64-bit, 0x10 Linux, 0x2000/0x8000 compressed) · u64 uncompressed size …
 *   then the payload, and the next entry.
 * The build uses --no-compress, so payloads are plain ELF and PTX text.
 */
import { TpError } from '@tp/core';

export const FATBIN_MAGIC = 0xba55ed50;
const COMPRESSED = 0x2000n | 0x8000n;
const EM_CUDA = 190;

export interface FatbinEntry {
  kind: 'ptx' | 'elf' | 'unknown';
  /** 80 for sm_80 / compute_80. */
  arch: number;
  offset: number;
  flags: bigint;
  compressed: boolean;
  payload: Uint8Array;
}

function fail(detail: string): never {
  throw new TpError('kernel-invalid', `not a usable fatbin: ${detail}`);
}

export function parseFatbin(bytes: Uint8Array): FatbinEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 16) fail(`${bytes.byteLength} bytes`);
  if (view.getUint32(0, true) !== FATBIN_MAGIC) fail(`magic 0x${view.getUint32(0, true).toString(16)}, expected 0x${FATBIN_MAGIC.toString(16)}`);
  const headerSize = view.getUint16(6, true);
  const end = headerSize + Number(view.getBigUint64(8, true));
  if (end > bytes.byteLength) fail(`the header claims ${end} bytes, the file has ${bytes.byteLength}`);
  const entries: FatbinEntry[] = [];
  for (let o = headerSize; o < end; ) {
    if (o + 64 > end) fail(`a truncated entry header at ${o}`);
    const kind = view.getUint16(o, true);
    const entryHeader = view.getUint32(o + 4, true);
    const size = Number(view.getBigUint64(o + 8, true));
    if (o + entryHeader + size > end) fail(`entry at ${o} runs past the end`);
    const flags = view.getBigUint64(o + 40, true);
    entries.push({
      kind: kind === 1 ? 'ptx' : kind === 2 ? 'elf' : 'unknown',
      arch: view.getUint32(o + 28, true),
      offset: o,
      flags,
      compressed: (flags & COMPRESSED) !== 0n,
      payload: bytes.subarray(o + entryHeader, o + entryHeader + size),
    });
    o += entryHeader + size;
  }
  return entries;
}

interface Section {
  name: string;
  offset: number;
  size: number;
}

function elfSections(elf: Uint8Array): { sections: Section[]; machine: number; flags: number } {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.byteLength < 64 || view.getUint32(0, false) !== 0x7f454c46) fail('an ELF entry without the ELF magic');
  if (elf[4] !== 2) fail('a 32-bit ELF entry');
  const machine = view.getUint16(18, true);
  const flags = view.getUint32(48, true);
  const shoff = Number(view.getBigUint64(40, true));
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const shstrndx = view.getUint16(62, true);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return { nameAt: view.getUint32(at, true), offset: Number(view.getBigUint64(at + 24, true)), size: Number(view.getBigUint64(at + 32, true)) };
  });
  const names = raw[shstrndx];
  if (names === undefined) fail('an ELF entry without a section name table');
  const text = (at: number) => {
    let s = '';
    for (let i = names.offset + at; i < elf.byteLength && elf[i] !== 0; i++) s += String.fromCharCode(elf[i]!);
    return s;
  };
  return { sections: raw.map((s) => ({ name: text(s.nameAt), offset: s.offset, size: s.size })), machine, flags };
}

export interface CubinKernel {
  name: string;
  /** Each parameter's byte offset and size, in order (from the EIATTR_KPARAM_INFO records). */
  params: Array<{ offset: number; size: number }>;
  /** The parameter buffer's total size (EIATTR_CBANK_PARAM_SIZE). */
  paramBytes: number;
}

/** The kernels of a cubin and the architecture it targets (e_flags bits 8–15). */
export function cubinKernels(elf: Uint8Array): { arch: number; kernels: CubinKernel[] } {
  const { sections, machine, flags } = elfSections(elf);
  if (machine !== EM_CUDA) fail(`an ELF entry for machine ${machine}, not CUDA (${EM_CUDA})`);
  const kernels: CubinKernel[] = [];
  for (const s of sections) {
    if (!s.name.startsWith('.text.')) continue;
    const name = s.name.slice('.text.'.length);
    const info = sections.find((x) => x.name === `.nv.info.${name}`);
    const params: Array<{ ordinal: number; offset: number; size: number }> = [];
    let paramBytes = 0;
    if (info) {
      const d = elf.subarray(info.offset, info.offset + info.size);
      const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
      for (let o = 0; o + 2 <= d.byteLength; ) {
        const format = d[o]!;
        const attribute = d[o + 1]!;
        if (format === 4) {
          const size = v.getUint16(o + 2, true);
          if (attribute === 0x17 && size >= 12) {
            // EIATTR_KPARAM_INFO: u32 index · u16 ordinal · u16 offset · u32 (size in bits 18–31)
            params.push({ ordinal: v.getUint16(o + 8, true), offset: v.getUint16(o + 10, true), size: (v.getUint32(o + 12, true) >>> 18) & 0x3fff });
          }
          o += 4 + size;
        } else {
          // EIFMT_NVAL / BVAL / HVAL: a 4-byte record (the value, if any, in its last two bytes).
          if (format === 3 && attribute === 0x19) paramBytes = v.getUint16(o + 2, true); // EIATTR_CBANK_PARAM_SIZE
          o += 4;
        }
      }
    }
    params.sort((a, b) => a.ordinal - b.ordinal);
    kernels.push({ name, params: params.map(({ offset, size }) => ({ offset, size })), paramBytes });
  }
  return { arch: (flags >>> 8) & 0xff, kernels };
}

/** PTX entry points and their parameter types (`.u64`, `.u32`, `.f32`, …), in order. */
export function ptxEntries(ptx: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of ptx.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)\s*\(([^)]*)\)/g)) {
    const types = [...m[2]!.matchAll(/\.param\s+(\.[a-z0-9]+)/g)].map((p) => p[1]!);
    out.set(m[1]!, types);
  }
  return out;
}

export interface FatbinSummary {
  /** sm_XY → kernel names of that cubin. */
  sass: Map<number, CubinKernel[]>;
  /** compute_XY → PTX entry points and parameter types. */
  ptx: Map<number, Map<string, string[]>>;
  /** Entries that could not be read (compressed). */
  unreadable: Array<{ kind: string; arch: number }>;
}

export function summarizeFatbin(bytes: Uint8Array): FatbinSummary {
  const summary: FatbinSummary = { sass: new Map(), ptx: new Map(), unreadable: [] };
  for (const e of parseFatbin(bytes)) {
    if (e.compressed || e.kind === 'unknown') {
      summary.unreadable.push({ kind: e.kind, arch: e.arch });
      continue;
    }
    if (e.kind === 'elf') {
      const { arch, kernels } = cubinKernels(e.payload);
      if (arch !== e.arch) fail(`a cubin listed as sm_${e.arch} is built for sm_${arch}`);
      summary.sass.set(e.arch, kernels);
    } else {
      let end = e.payload.indexOf(0);
      if (end < 0) end = e.payload.byteLength;
      summary.ptx.set(e.arch, ptxEntries(new TextDecoder().decode(e.payload.subarray(0, end))));
    }
  }
  return summary;
}
