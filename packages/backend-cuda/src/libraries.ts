/**
 * Loading the three libraries (the driver, cuBLASLt, NCCL) through the addon, once per process, and
 * the report of where each was looked for. The driver is required; cuBLASLt makes prefill faster
 * (without it every GEMM runs on tp's own kernel); NCCL is needed only for ranks on different GPUs.
 */
import { describeSteps, LIBRARIES, searchLibrary, type LibraryName, type SearchResult } from './search.js';
import { loadNative, type LibraryState, type Native } from './native.js';

export interface LibraryReport {
  library: LibraryName;
  title: string;
  loaded: boolean;
  path?: string;
  version?: number;
  /** A readable version: 13.0 for the driver, 13.0.2 for cuBLASLt, 2.28.9 for NCCL. */
  versionText?: string;
  /** One line per place looked (see search.ts). */
  looked: string[];
  /** The driver: cuInit's status. */
  initStatus?: number;
}

export function versionText(library: LibraryName, v: number | undefined): string | undefined {
  if (v === undefined || v <= 0) return undefined;
  if (library === 'cuda') return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
  if (library === 'cublasLt') return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
  // NCCL: X·10000 + Y·100 + Z from 2.9 on (X·1000 + Y·100 + Z before)
  return v >= 10000 ? `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}` : `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 100)}.${v % 100}`;
}

const searches = new Map<LibraryName, SearchResult>();

/** Load `library` (searching only the first time, and only when no thread has loaded it yet). */
export function loadLibrary(native: Native, library: LibraryName): LibraryReport {
  let state: LibraryState = native.state(library);
  let search = searches.get(library);
  if (!state.loaded) {
    search = searchLibrary(library, { env: process.env });
    searches.set(library, search);
    state = native.load(library, search.candidates);
  }
  const report: LibraryReport = {
    library,
    title: LIBRARIES[library].title,
    loaded: state.loaded,
    looked: search ? describeSteps(search.steps, state.attempts) : state.attempts.map((a) => `${a.candidate} — ${a.error ?? 'loaded'}`),
  };
  if (state.path !== undefined) report.path = state.path;
  if (state.version !== undefined) report.version = state.version;
  const text = versionText(library, state.version);
  if (text !== undefined) report.versionText = text;
  if (state.initStatus !== undefined) report.initStatus = state.initStatus;
  // Attempts the search did not list (a copy already in the process) are worth a line too.
  for (const a of state.attempts) if (!search?.candidates.includes(a.candidate)) report.looked.unshift(`already in the process: ${a.candidate} — ${a.error ?? 'loaded'}`);
  return report;
}

export interface Libraries {
  native: Native;
  cuda: LibraryReport;
  cublasLt: LibraryReport;
  nccl: LibraryReport;
}

/** The addon and all three libraries, or the reason the addon itself is unavailable. */
export function loadLibraries(): { libraries?: Libraries; error?: string } {
  const native = loadNative();
  if (native.value === undefined) return { error: `the CUDA backend's addon is unavailable: ${native.error}` };
  const n = native.value;
  return { libraries: { native: n, cuda: loadLibrary(n, 'cuda'), cublasLt: loadLibrary(n, 'cublasLt'), nccl: loadLibrary(n, 'nccl') } };
}
