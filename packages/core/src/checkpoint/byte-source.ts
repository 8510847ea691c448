/**
 * Where a checkpoint's bytes come from, when not from a folder opened with openCheckpoint: anything
 * that reads `length` bytes at `offset` asynchronously. A file on disk is one source (fileByteSource,
 * Node only); a URL served with HTTP Range requests is another (httpByteSource, http-source.ts), for
 * browsers. openCheckpointFrom (source-checkpoint.ts) builds a Checkpoint from them.
 */
import { CheckpointError } from '../errors/index.js';
import { nodeModules } from './node-fs.js';

export interface ByteSource {
  /** Names the source in errors, and is `TensorInfo.file` of the tensors it holds: a path or a URL. */
  readonly name: string;
  /** The size of the whole file in bytes. */
  size(): Promise<number>;
  /** Exactly `length` (at least 1) bytes from `offset`, or a CheckpointError naming the source and the range. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases what the source holds (a file handle); it is not read afterwards. */
  close?(): Promise<void>;
}

/** A file on this machine as a byte source (Node only): one handle, opened on the first read. */
export function fileByteSource(file: string): ByteSource {
  let handle: Promise<import('node:fs/promises').FileHandle> | undefined;
  const opened = () =>
    (handle ??= nodeModules('fileByteSource')
      .fsp.open(file, 'r')
      .catch((cause: NodeJS.ErrnoException) => {
        throw new CheckpointError('file-not-found', { file, detail: `cannot open (${cause.code ?? cause.message})` }, { cause });
      }));
  return {
    name: file,
    async size() {
      return (await (await opened()).stat()).size;
    },
    async read(offset, length) {
      const h = await opened();
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await h.read(out, done, length - done, offset + done);
        if (bytesRead === 0) {
          throw new CheckpointError('read-failed', { file, detail: `unexpected end of file at byte ${offset + done} (reading bytes ${offset}-${offset + length - 1})`, hint: 'The file changed or was truncated after it was opened' });
        }
        done += bytesRead;
      }
      return out;
    },
    async close() {
      const h = await handle?.catch(() => undefined);
      handle = undefined;
      await h?.close();
    },
  };
}
