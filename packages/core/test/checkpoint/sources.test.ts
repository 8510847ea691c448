/**
 * Checkpoints opened from byte sources: a file, or a URL read with HTTP Range requests (what a browser
 * uses). The same config, headers and slice bytes as openCheckpoint of the folder; prefetch fetches
 * exactly the runs asked for and readBytes serves nothing else; every HTTP failure names the URL and
 * the byte range.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  fileByteSource,
  httpByteSource,
  openCheckpoint,
  openCheckpointFrom,
  readSliceBytes,
  sliceLayout,
  type SourceCheckpoint,
} from '../../src/index.js';
import { expectTpError, patterned, useTempDirs, writeCheckpoint } from '../helpers/files.js';
import { serveFolder, type FolderServer } from '../helpers/http.js';

const tempDir = useTempDirs();
const CONFIG = { model_type: 'llama', hidden_size: 8 };
let server: FolderServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A folder with a [6, 10] f32 tensor, a [4, 3, 5] bf16 one and a scalar, served over HTTP. */
async function served(): Promise<{ dir: string; server: FolderServer }> {
  const dir = await writeCheckpoint(await tempDir(), {
    config: CONFIG,
    files: { 'model.safetensors': [patterned('rows', 'F32', [6, 10]), patterned('cube', 'BF16', [4, 3, 5]), patterned('scalar', 'F64', [])] },
  });
  server = await serveFolder(dir);
  return { dir, server };
}

const overHttp = (s: FolderServer, mode?: string) => openCheckpointFrom({ config: httpByteSource(s.url('config.json')), files: [httpByteSource(s.url('model.safetensors', mode))] });

describe('openCheckpointFrom', () => {
  it('over HTTP and from a file source sees the config, headers and tensors openCheckpoint sees', async () => {
    const { dir, server } = await served();
    const folder = await openCheckpoint(dir);
    const http = await overHttp(server);
    const file = await openCheckpointFrom({ config: fileByteSource(path.join(dir, 'config.json')), files: [fileByteSource(path.join(dir, 'model.safetensors'))] });
    try {
      for (const ckpt of [http, file]) {
        expect(ckpt.config).toEqual(CONFIG);
        expect([...ckpt.tensors.keys()].sort()).toEqual([...folder.tensors.keys()].sort());
        for (const [name, t] of folder.tensors) {
          const other = ckpt.tensor(name);
          expect({ ...other, file: undefined }).toEqual({ ...t, file: undefined });
        }
        expect(ckpt.files[0]!.fileSize).toBe(folder.files[0]!.fileSize);
      }
      expect(http.tensor('rows').file).toBe(server.url('model.safetensors'));
      expect(http.dir).toBe(server.url('').replace(/\/$/, ''));
      // The header costs a HEAD and two Range reads; no weight byte is fetched by opening.
      expect(http.bytesFetched).toBe(0);
      expect(server.bytesSent).toBe(JSON.stringify(CONFIG).length + 8 + http.files[0]!.headerLength);
    } finally {
      folder.close();
      http.close();
      file.close();
    }
  });

  it('prefetch fetches exactly the runs of a strided slice, touching runs as one request, and readSliceBytes returns the folder bytes', async () => {
    const { dir, server } = await served();
    const folder = await openCheckpoint(dir);
    const ckpt = await overHttp(server);
    try {
      const opened = server.bytesSent;
      const requestsBefore = server.requests.length;
      // Columns 2-4 and 4-7 of every row of [6, 10]: touching ranges, one run of 5 floats per row.
      const request = { dim: 1, ranges: [[2, 4], [4, 7]] as Array<[number, number]> };
      const layout = sliceLayout(ckpt.tensor('rows'), request);
      expect(layout.runs).toHaveLength(6);
      await ckpt.prefetch(layout.runs);
      expect(server.bytesSent - opened).toBe(6 * 5 * 4);
      expect(server.requests.length - requestsBefore).toBe(6);
      expect(ckpt.bytesFetched).toBe(layout.byteLength);
      expect(readSliceBytes(ckpt, 'rows', request)).toEqual(readSliceBytes(folder, 'rows', request));
      expect(ckpt.bytesRead).toBe(layout.byteLength);

      // Rows 1-3 of dim 1 of the bf16 cube: 4 runs; the next prefetch replaces the window.
      const cube = { dim: 1, ranges: [[1, 3]] as Array<[number, number]> };
      await ckpt.prefetch([...sliceLayout(ckpt.tensor('cube'), cube).runs, ...sliceLayout(ckpt.tensor('scalar')).runs]);
      expect(readSliceBytes(ckpt, 'cube', cube)).toEqual(readSliceBytes(folder, 'cube', cube));
      expect(readSliceBytes(ckpt, 'scalar')).toEqual(readSliceBytes(folder, 'scalar'));
      const error = await expectTpError(() => readSliceBytes(ckpt, 'rows', request), { code: 'read-failed', file: server.url('model.safetensors'), name: 'CheckpointError' });
      const first = layout.runs[0]!;
      expect(error.message).toContain(`bytes ${first.offset}-${first.offset + first.length - 1} were not prefetched`);
    } finally {
      folder.close();
      ckpt.close();
    }
  });

  it('merges overlapping runs into one request per contiguous piece', async () => {
    const { server } = await served();
    const ckpt = await overHttp(server);
    try {
      const t = ckpt.tensor('rows');
      const before = server.requests.length;
      const sent = server.bytesSent;
      await ckpt.prefetch([
        { file: t.file, offset: t.offset + 40, length: 40 },
        { file: t.file, offset: t.offset, length: 60 },
        { file: t.file, offset: t.offset + 200, length: 8 },
      ]);
      expect(server.requests.slice(before).map((r) => r.range)).toEqual([`bytes=${t.offset}-${t.offset + 79}`, `bytes=${t.offset + 200}-${t.offset + 207}`]);
      expect(server.bytesSent - sent).toBe(88);
    } finally {
      ckpt.close();
    }
  });

  it('with mergeGapBytes, fetches runs that close together as one request, the gap included', async () => {
    const { dir, server } = await served();
    const folder = await openCheckpoint(dir);
    const sources = { config: httpByteSource(server.url('config.json')), files: [httpByteSource(server.url('model.safetensors'))] };
    const ckpt = await openCheckpointFrom(sources, { mergeGapBytes: 20 });
    try {
      // Columns 0-5 of [6, 10] f32: runs of 20 bytes, 20 bytes apart, so one request for all six rows.
      const request = { dim: 1, ranges: [[0, 5]] as Array<[number, number]> };
      const before = server.requests.length;
      const sent = server.bytesSent;
      await ckpt.prefetch(sliceLayout(ckpt.tensor('rows'), request).runs);
      expect(server.requests.length - before).toBe(1);
      expect(server.bytesSent - sent).toBe(6 * 20 + 5 * 20);
      expect(readSliceBytes(ckpt, 'rows', request)).toEqual(readSliceBytes(folder, 'rows', request));
    } finally {
      folder.close();
      ckpt.close();
    }
    await expectTpError(() => openCheckpointFrom(sources, { mergeGapBytes: -1 }), { code: 'invalid-argument', name: 'ArgumentError' });
    await expectTpError(() => openCheckpointFrom(sources, { concurrency: 0 }), { code: 'invalid-argument', name: 'ArgumentError' });
  });

  it('refuses runs of a file it was not opened from, and a file given twice', async () => {
    const { server } = await served();
    const ckpt = await overHttp(server);
    try {
      await expectTpError(() => ckpt.prefetch([{ file: 'elsewhere.safetensors', offset: 0, length: 4 }]), { code: 'read-failed', file: 'elsewhere.safetensors' });
    } finally {
      ckpt.close();
    }
    const source = httpByteSource(server.url('model.safetensors'));
    await expectTpError(() => openCheckpointFrom({ config: httpByteSource(server.url('config.json')), files: [source, source] }), { code: 'invalid-argument', name: 'ArgumentError' });
    await expectTpError(() => openCheckpointFrom({ config: httpByteSource(server.url('config.json')), files: [] }), { code: 'no-weights' });
  });
});

describe('httpByteSource', () => {
  const url = (s: FolderServer, mode?: string) => s.url('model.safetensors', mode);

  it('reads exactly the bytes of a range with one GET, and the size with one HEAD', async () => {
    const { dir, server } = await served();
    const folder = await openCheckpoint(dir);
    try {
      const source = httpByteSource(url(server));
      expect(await source.size()).toBe(folder.files[0]!.fileSize);
      const t = folder.tensor('rows');
      const expected = new Uint8Array(12);
      folder.readBytes(t.file, t.offset + 4, 12, expected, 0);
      expect(await source.read(t.offset + 4, 12)).toEqual(expected);
      expect(server.requests).toEqual([
        { method: 'HEAD', path: '/model.safetensors', range: undefined },
        { method: 'GET', path: '/model.safetensors', range: `bytes=${t.offset + 4}-${t.offset + 15}` },
      ]);
      // A known size needs no HEAD.
      const sized = httpByteSource(url(server), { size: 123 });
      expect(await sized.size()).toBe(123);
      expect(server.requests).toHaveLength(2);
    } finally {
      folder.close();
    }
  });

  it('refuses a server that ignores Range (200, the whole file), naming the URL and the range', async () => {
    const { server } = await served();
    const error = await expectTpError(() => httpByteSource(url(server, 'ignore-range')).read(16, 8), { code: 'read-failed', file: url(server, 'ignore-range'), name: 'CheckpointError' });
    expect(error.message).toContain('bytes 16-23');
    expect(error.message).toContain('ignored the Range header');
    expect(error.message).toContain('206 Partial Content');
  });

  it('refuses a short answer and an answer for another range', async () => {
    const { server } = await served();
    const short = await expectTpError(() => httpByteSource(url(server, 'short')).read(16, 8), { code: 'read-failed', file: url(server, 'short') });
    expect(short.message).toContain('bytes 16-23: asked for 8 bytes, the server sent 7');
    const other = await expectTpError(() => httpByteSource(url(server, 'other-range')).read(16, 8), { code: 'read-failed', file: url(server, 'other-range') });
    expect(other.message).toContain('Content-Range: bytes 17-24/');
  });

  it('names a missing file (404), an unsatisfiable range (416), a HEAD without Content-Length, and an unreachable server', async () => {
    const { server } = await served();
    const missing = server.url('absent.safetensors');
    const notFound = await expectTpError(() => httpByteSource(missing).read(0, 8), { code: 'file-not-found', file: missing });
    expect(notFound.message).toContain('bytes 0-7: HTTP 404');
    await expectTpError(() => httpByteSource(missing).size(), { code: 'file-not-found', file: missing });
    const beyond = await expectTpError(() => httpByteSource(url(server)).read(1e9, 8), { code: 'read-failed', file: url(server) });
    expect(beyond.message).toContain(`bytes ${1e9}-${1e9 + 7}: HTTP 416`);
    const noLength = await expectTpError(() => httpByteSource(url(server, 'no-length')).size(), { code: 'read-failed', file: url(server, 'no-length') });
    expect(noLength.message).toContain('httpByteSource(url, { size })');
    const closed = url(server);
    await server.close();
    const unreachable = await expectTpError(() => httpByteSource(closed).read(0, 8), { code: 'read-failed', file: closed });
    expect(unreachable.message).toContain('the Range request for bytes 0-7 failed');
    await expectTpError(() => httpByteSource(closed).read(0, 0), { code: 'read-failed', file: closed });
  });
});

describe('a checkpoint opened from sources, once fetched, reads like the folder', () => {
  it('keeps SourceCheckpoint a Checkpoint: readSliceBytes of every whole tensor after one prefetch', async () => {
    const { dir, server } = await served();
    const folder = await openCheckpoint(dir);
    const ckpt: SourceCheckpoint = await overHttp(server);
    try {
      await ckpt.prefetch([...ckpt.tensors.values()].flatMap((t) => sliceLayout(t).runs));
      for (const name of folder.tensors.keys()) expect(readSliceBytes(ckpt, name)).toEqual(readSliceBytes(folder, name));
      expect(ckpt.bytesFetched).toBe(folder.files[0]!.fileSize - folder.files[0]!.dataOffset);
    } finally {
      folder.close();
      ckpt.close();
    }
  });
});
