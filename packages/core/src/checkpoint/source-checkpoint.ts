/**
 * A checkpoint opened from byte sources (byte-source.ts) rather than a folder: config.json and the
 * safetensors files as sources, e.g. URLs read with HTTP Range requests in a browser. Opening reads
 * the config and each header, as openCheckpoint does; weights are then fetched by `prefetch`, a set
 * of byte runs at a time, and served to the synchronous `readBytes` that readSliceBytes and loadShard
 * call. A read outside what was prefetched is refused, so a rank cannot fetch more than it asked for
 * by accident.
 */
import { ArgumentError, CheckpointError } from '../errors/index.js';
import { parseConfig, tensorLookup, tensorsByName } from './assemble.js';
import type { ByteSource } from './byte-source.js';
import type { Checkpoint } from './checkpoint.js';
import { readSafetensorsHeaderFrom, type SafetensorsHeader } from './safetensors.js';
import type { ByteRun } from './slice.js';

export interface CheckpointSources {
  /** config.json. */
  config: ByteSource;
  /**
   * The safetensors files: model.safetensors, or every shard a model.safetensors.index.json names
   * (their names must differ; a tensor stored in two of them is refused).
   */
  files: readonly ByteSource[];
}

export interface OpenFromOptions {
  /** Reads `prefetch` keeps in flight at once (default 6, a browser's connections per host). */
  concurrency?: number;
  /**
   * Runs at most this many bytes apart are fetched as one read, the bytes between them included
   * (default 0: only the bytes asked for). A weight split along its second dimension is one run per
   * row, so against a distant server this trades bytes for far fewer requests.
   */
  mergeGapBytes?: number;
}

export interface SourceCheckpoint extends Checkpoint {
  /**
   * Fetch these runs of the weight files and keep them until the next prefetch or close: `readBytes`
   * then serves reads inside them. Touching or overlapping runs are fetched as one read. Loading a
   * shard prefetches a few tensors' runs at a time (runtime/rank-host.ts).
   */
  prefetch(runs: readonly ByteRun[]): Promise<void>;
  /** Weight bytes fetched from the sources so far (headers and config excluded). */
  readonly bytesFetched: number;
}

export async function openCheckpointFrom(sources: CheckpointSources, options: OpenFromOptions = {}): Promise<SourceCheckpoint> {
  const concurrency = options.concurrency ?? 6;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new ArgumentError({ argument: 'concurrency', detail: `must be a positive integer, got ${concurrency}` });
  const gap = options.mergeGapBytes ?? 0;
  if (!Number.isSafeInteger(gap) || gap < 0) throw new ArgumentError({ argument: 'mergeGapBytes', detail: `must be a non-negative integer, got ${gap}` });
  if (sources.files.length === 0) {
    throw new CheckpointError('no-weights', { file: sources.config.name, detail: 'no safetensors file was given', hint: 'Pass the model.safetensors source (or every shard) as files' });
  }
  const byName = new Map<string, ByteSource>();
  for (const source of sources.files) {
    if (byName.has(source.name)) throw new ArgumentError({ argument: 'files', detail: `${source.name} is given twice; list each safetensors file once` });
    byName.set(source.name, source);
  }
  const configPath = sources.config.name;
  const config = parseConfig(new TextDecoder().decode(await readWhole(sources.config)), configPath);
  const files: SafetensorsHeader[] = [];
  for (const source of sources.files) files.push(await readSafetensorsHeaderFrom(source));
  const tensors = tensorsByName(files);
  // The folder the config lies in (a URL's or a path's), for messages and Checkpoint.dir.
  const dir = configPath.replace(/[/\\]?config\.json$/, '') || configPath;

  let window = new Map<string, StagedRun[]>();
  let bytesRead = 0;
  let bytesFetched = 0;
  return {
    dir,
    configPath,
    config,
    files,
    tensors,
    warnings: [],
    tensor: tensorLookup(tensors, dir),
    async prefetch(runs) {
      const staged = new Map<string, StagedRun[]>();
      const work: Array<{ source: ByteSource; run: StagedRun }> = [];
      for (const [file, merged] of mergeRuns(runs, gap)) {
        const source = byName.get(file);
        if (source === undefined) throw new CheckpointError('read-failed', { file, detail: 'is not one of the files this checkpoint was opened from' });
        staged.set(file, merged);
        for (const run of merged) work.push({ source, run });
      }
      await inParallel(work, concurrency, async ({ source, run }) => {
        run.bytes = await source.read(run.offset, run.length);
        bytesFetched += run.length;
      });
      window = staged;
    },
    readBytes(file, offset, length, into, intoOffset) {
      if (length === 0) return;
      const run = findRun(window.get(file), offset, length);
      if (run === undefined) {
        throw new CheckpointError('read-failed', {
          file,
          detail: `bytes ${offset}-${offset + length - 1} were not prefetched`,
          hint: 'A checkpoint opened from byte sources serves only what prefetch fetched: prefetch the slice runs (sliceLayout) before reading them',
        });
      }
      into.set(run.bytes!.subarray(offset - run.offset, offset - run.offset + length), intoOffset);
      bytesRead += length;
    },
    get bytesRead() {
      return bytesRead;
    },
    get bytesFetched() {
      return bytesFetched;
    },
    close() {
      window = new Map();
      for (const source of [sources.config, ...sources.files]) void source.close?.();
    },
  };
}

interface StagedRun {
  offset: number;
  length: number;
  bytes?: Uint8Array;
}

async function readWhole(source: ByteSource): Promise<Uint8Array> {
  const size = await source.size();
  return size === 0 ? new Uint8Array(0) : source.read(0, size);
}

/** Per file, the runs sorted by offset, those at most `gap` bytes apart (touching, overlapping) joined; empty runs dropped. */
function mergeRuns(runs: readonly ByteRun[], gap: number): Map<string, StagedRun[]> {
  const byFile = new Map<string, ByteRun[]>();
  for (const run of runs) {
    if (run.length <= 0) continue;
    let list = byFile.get(run.file);
    if (list === undefined) byFile.set(run.file, (list = []));
    list.push(run);
  }
  const out = new Map<string, StagedRun[]>();
  for (const [file, list] of byFile) {
    list.sort((a, b) => a.offset - b.offset);
    const merged: StagedRun[] = [];
    for (const { offset, length } of list) {
      const last = merged[merged.length - 1];
      if (last !== undefined && offset <= last.offset + last.length + gap) last.length = Math.max(last.length, offset + length - last.offset);
      else merged.push({ offset, length });
    }
    out.set(file, merged);
  }
  return out;
}

/** The staged run holding [offset, offset + length), by binary search over the sorted runs. */
function findRun(runs: readonly StagedRun[] | undefined, offset: number, length: number): StagedRun | undefined {
  if (runs === undefined) return undefined;
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const run = runs[mid]!;
    if (offset < run.offset) hi = mid - 1;
    else if (offset >= run.offset + run.length) lo = mid + 1;
    else return offset + length <= run.offset + run.length ? run : undefined;
  }
  return undefined;
}

/** Run `task` over `items` with at most `limit` in flight; the first failure rejects (after the rest settle). */
async function inParallel<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failure !== undefined) throw failure.error;
}
