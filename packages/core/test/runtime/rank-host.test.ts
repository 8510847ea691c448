/**
 * loadRankShard over HTTP Range requests (what a browser's rank does): the golden Llama at TP=2,
 * each rank fetching only its own runs, a window of tensors at a time, uploads byte for byte what
 * loadShard uploads from the folder. The Rank is a recorder of uploads: loading needs no kernels.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyzeModel,
  httpByteSource,
  loadShard,
  openCheckpoint,
  openCheckpointFrom,
  planTensorParallel,
  type HostTensor,
  type Rank,
  type StorageDtype,
  type TPPlan,
} from '../../src/index.js';
import { loadRankShard } from '../../src/runtime/rank-host.js';
import { serveFolder, type FolderServer } from '../helpers/http.js';
import { GOLDEN_DIR, hasShared, needsShared } from '../helpers/shared.js';

const LLAMA = path.join(GOLDEN_DIR, 'llama');

/** A Rank that keeps what it is given to upload (loadShard calls nothing else). */
function recorder(rank: number): Rank & { uploads: Array<{ host: HostTensor; as: StorageDtype }> } {
  const uploads: Array<{ host: HostTensor; as: StorageDtype }> = [];
  return {
    rank,
    uploads,
    upload(host: HostTensor, as: StorageDtype) {
      uploads.push({ host: { ...host, bytes: host.bytes.slice() }, as });
      return { shape: host.shape, dtype: as } as never;
    },
  } as never;
}

let server: FolderServer | undefined;
let plan: TPPlan;
beforeAll(async () => {
  if (!hasShared) return;
  server = await serveFolder(LLAMA);
  const ckpt = await openCheckpoint(LLAMA);
  plan = planTensorParallel(analyzeModel(ckpt), { tpSize: 2 });
  ckpt.close();
});
afterAll(() => server?.close());

describe(`loadRankShard from byte sources${needsShared}`, () => {
  for (const windowBytes of [1, 64 << 20]) {
    it.skipIf(!hasShared)(`fetches each rank's share exactly (${windowBytes === 1 ? 'one tensor' : 'the whole share'} per window) and uploads what loadShard uploads from the folder`, async () => {
      const folder = await openCheckpoint(LLAMA);
      try {
        for (const r of [0, 1]) {
          const expected = recorder(r);
          loadShard(folder, plan, expected);
          const ckpt = await openCheckpointFrom({ config: httpByteSource(server!.url('config.json')), files: [httpByteSource(server!.url('model.safetensors'))] });
          const sent = server!.bytesSent;
          const got = recorder(r);
          const progress: number[] = [];
          const shard = await loadRankShard(ckpt, plan, got, (p) => progress.push(p.bytesRead), windowBytes);
          ckpt.close();
          expect(got.uploads.map((u) => [u.host.shape, u.host.dtype, u.as])).toEqual(expected.uploads.map((u) => [u.host.shape, u.host.dtype, u.as]));
          got.uploads.forEach((u, i) => expect(u.host.bytes, `upload ${i}`).toEqual(expected.uploads[i]!.host.bytes));
          expect(shard.tensors.size).toBe(plan.tensors.filter((t) => t.read).length);
          expect(shard.bytesRead).toBe(plan.ranks[r]!.bytesToRead);
          expect(ckpt.bytesFetched).toBe(plan.ranks[r]!.bytesToRead);
          expect(server!.bytesSent - sent).toBe(plan.ranks[r]!.bytesToRead);
          // Less than the file: this rank's share, not the whole model.
          expect(plan.ranks[r]!.bytesToRead).toBeLessThan(0.75 * ckpt.files[0]!.fileSize);
          expect(progress.at(-1)).toBe(plan.ranks[r]!.bytesToRead);
          expect(progress).toEqual([...progress].sort((a, b) => a - b));
        }
      } finally {
        folder.close();
      }
    });
  }
});
