/**
 * What run, logits and bench share: the backend flag, the policy file, and starting a session with
 * the loading progress on stderr.
 */
import { readFile } from 'node:fs/promises';
import { backend as cpuBackend } from '@tp/backend-cpu';
import { ArgumentError, initInference, PolicyError, resolveBackend, type Backend, type InferenceSession } from '@tp/core';
import { parseDeviceList, type DtypeChoice, type KvDtypeChoice } from './commands/args.js';
import { UsageError, type CliIo } from './io.js';
import { LoadProgressView, progressMode } from './progress.js';

export const BACKEND_NAMES = ['cpu', 'webgpu', 'cuda'] as const;

/** The options run, logits and bench accept for starting a session, as parseArgs descriptors. */
export const SESSION_OPTIONS = {
  tp: { type: 'string' },
  backend: { type: 'string' },
  policy: { type: 'string' },
  devices: { type: 'string' },
  'vocab-parallel': { type: 'boolean' },
} as const;

export const SESSION_HELP = `  --tp N              number of tensor-parallel ranks (default 1)
  --backend NAME      cpu (default), webgpu or cuda (those two when their package is installed
                      and this machine can run them; not published yet)
  --devices LIST      webgpu/cuda: the device of each rank, numbered as "tp devices" lists them,
                      e.g. 0,1 (ranks may share one: 0,0); default: rank r on device r mod count
  --policy FILE       a DeepSpeed injection policy or Hugging Face tp_plan (JSON) overriding the
                      automatic plan (see "tp plan --help")
  --vocab-parallel    split the embedding and LM head by vocabulary instead of by hidden`;

/**
 * `--backend NAME` → a backend object. cpu ships with the CLI; another is imported from where it is
 * installed (next to the CLI or in the working directory), and resolveBackend says precisely why it
 * cannot be used: not installed, installed but failing to load (with the cause), or not available on
 * this machine (with the probe's reason).
 */
export async function selectBackend(name: string | undefined): Promise<Backend> {
  const choice = (name ?? 'cpu').toLowerCase();
  if (choice === 'cpu') return cpuBackend;
  if (!(BACKEND_NAMES as readonly string[]).includes(choice)) throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${name}"`);
  return resolveBackend(choice);
}

export async function readPolicy(file: string | undefined): Promise<unknown> {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read the policy file ${file}`);
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new PolicyError('policy-invalid', { detail: `${file} is not valid JSON (${(cause as Error).message})` });
  }
}

export interface SessionFlags {
  tp?: string | undefined;
  backend?: string | undefined;
  policy?: string | undefined;
  devices?: string | undefined;
  'vocab-parallel'?: boolean | undefined;
}

/** Storage dtypes for the session (`--dtype`, `--kv-dtype`, already checked); absent = the engine's defaults. */
export interface SessionDtypes {
  dtype?: DtypeChoice;
  kvDtype?: KvDtypeChoice;
}

export interface OpenedSession {
  session: InferenceSession;
  /** Wall time of initInference (planning, starting the ranks, reading every shard). */
  loadMs: number;
}

/** Start a session, showing per-rank loading progress on stderr unless `quiet`. */
export async function openSession(dir: string, tpSize: number, flags: SessionFlags, io: CliIo, quiet: boolean, dtypes: SessionDtypes = {}): Promise<OpenedSession> {
  const backend = await selectBackend(flags.backend);
  const devices = devicesFor(flags, backend, tpSize);
  const policy = await readPolicy(flags.policy);
  const view = new LoadProgressView(io, progressMode(io, quiet), tpSize);
  const started = performance.now();
  try {
    const session = await initInference(dir, {
      tpSize,
      backend,
      vocabParallel: flags['vocab-parallel'] ?? false,
      ...(policy !== undefined ? { policy } : {}),
      ...(dtypes.dtype !== undefined ? { dtype: dtypes.dtype } : {}),
      ...(dtypes.kvDtype !== undefined ? { kvDtype: dtypes.kvDtype } : {}),
      ...(devices !== undefined ? { backendOptions: { devices } } : {}),
      onProgress: view.update,
    });
    return { session, loadMs: performance.now() - started };
  } finally {
    view.finish();
  }
}

/** `--devices 0,1` → one device number per rank, checked against the tp size; the CPU has no devices to choose. */
function devicesFor(flags: SessionFlags, backend: Backend, tpSize: number): number[] | undefined {
  if (flags.devices === undefined) return undefined;
  const devices = parseDeviceList(flags.devices, '--devices');
  if (backend.name === 'cpu') throw new UsageError('--devices places ranks on GPUs (--backend webgpu or cuda); the cpu backend runs every rank on this machine\'s cores');
  if (devices.length !== tpSize) throw new UsageError(`--devices lists ${devices.length} device${devices.length === 1 ? '' : 's'} for ${tpSize} rank${tpSize === 1 ? '' : 's'} (--tp ${tpSize}): give one per rank, e.g. --devices ${Array.from({ length: tpSize }, (_, r) => r).join(',')}`);
  return devices;
}

/** Token ids the model cannot take fail here, before anything is printed or written. */
export function checkTokenIds(session: InferenceSession, ids: readonly number[]): void {
  if (ids.length === 0) throw new ArgumentError({ argument: 'tokens', detail: 'the prompt has no tokens' });
  const { vocab, paddedVocab } = session.graph.geometry;
  const limit = Math.max(vocab, paddedVocab);
  const bad = ids.find((t) => !Number.isInteger(t) || t < 0 || t >= limit);
  if (bad !== undefined) throw new ArgumentError({ argument: 'tokens', detail: `token id ${bad} is outside the vocabulary (0 to ${limit - 1})` });
}
