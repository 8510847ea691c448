/**
 * A folder served on 127.0.0.1 with single-range Range support, for the HTTP byte source's tests. It
 * counts the body bytes it sends, and misbehaves on request (`?mode=`): `ignore-range` answers 200
 * with the whole file, `short` sends one byte less than asked, `other-range` labels its answer with
 * another Content-Range, `no-length` answers HEAD without a Content-Length.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';

export interface FolderServer {
  /** The URL of `name` in the folder, with `?mode=` when given. */
  url(name: string, mode?: string): string;
  /** Body bytes sent so far. */
  readonly bytesSent: number;
  /** Every request: method, path and Range header. */
  readonly requests: Array<{ method: string; path: string; range: string | undefined }>;
  close(): Promise<void>;
}

export async function serveFolder(dir: string): Promise<FolderServer> {
  let bytesSent = 0;
  const requests: FolderServer['requests'] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const mode = url.searchParams.get('mode');
    const range = req.headers.range;
    requests.push({ method: req.method ?? '', path: url.pathname, range });
    const file = path.join(dir, path.basename(url.pathname));
    const info = await stat(file).catch(() => undefined);
    if (info === undefined) {
      res.writeHead(404).end();
      return;
    }
    const size = info.size;
    if (req.method === 'HEAD') {
      if (mode === 'no-length') res.writeHead(200, { 'Transfer-Encoding': 'chunked' }).end();
      else res.writeHead(200, { 'Content-Length': size, 'Accept-Ranges': 'bytes' }).end();
      return;
    }
    const match = /^bytes=(\d+)-(\d+)$/.exec(range ?? '');
    const send = (status: number, start: number, end: number, headers: Record<string, string | number>) => {
      bytesSent += end - start + 1;
      res.writeHead(status, { 'Content-Length': end - start + 1, ...headers });
      createReadStream(file, { start, end }).pipe(res);
    };
    if (match === null || mode === 'ignore-range') {
      send(200, 0, size - 1, {});
      return;
    }
    const start = Number(match[1]);
    const end = Math.min(Number(match[2]), size - 1);
    if (start > end) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
      return;
    }
    const label = mode === 'other-range' ? `bytes ${start + 1}-${end + 1}/${size}` : `bytes ${start}-${end}/${size}`;
    send(206, start, mode === 'short' ? end - 1 : end, { 'Content-Range': label });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    url: (name, mode) => `${origin}/${name}${mode ? `?mode=${mode}` : ''}`,
    get bytesSent() {
      return bytesSent;
    },
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
