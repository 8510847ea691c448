/**
 * A file served over HTTP as a byte source: each read is one GET with `Range: bytes=a-b`, which must
 * be answered 206 Partial Content with exactly those bytes. A server that ignores Range (200, the
 * whole file) is refused rather than downloaded: tp reads each rank's share, never the whole file.
 * The size comes from a HEAD request's Content-Length (or `options.size`), which CORS lets a page read
 * from any origin; a cross-origin server must allow the Range request header.
 */
import { CheckpointError } from '../errors/index.js';
import type { ByteSource } from './byte-source.js';

export interface HttpByteSourceOptions {
  /** The fetch to use (default: the global one), e.g. one that counts bytes or signs requests. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Request options every request carries (headers such as Authorization, credentials, signal). */
  init?: RequestInit;
  /** The file's size in bytes when known: no HEAD request is made. */
  size?: number;
}

const RANGE_HINT = 'Serve the checkpoint from a server that supports HTTP Range requests (206 Partial Content); a cross-origin server must also allow the Range header (CORS)';

export function httpByteSource(url: string | URL, options: HttpByteSourceOptions = {}): ByteSource {
  const href = String(url);
  const doFetch = options.fetch ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
  let size: Promise<number> | undefined = options.size === undefined ? undefined : Promise.resolve(options.size);

  const request = async (what: string, init: RequestInit): Promise<Response> => {
    try {
      return await doFetch(href, init);
    } catch (cause) {
      throw new CheckpointError('read-failed', { file: href, detail: `${what} failed (${(cause as Error)?.message ?? String(cause)})`, hint: 'Check that the server is reachable. ' + RANGE_HINT }, { cause });
    }
  };
  const refuse = (what: string, response: Response, detail: string, hint = RANGE_HINT): never => {
    // Do not download a body nobody reads (a 200 to a Range request is the whole file).
    void response.body?.cancel().catch(() => undefined);
    throw new CheckpointError(response.status === 404 ? 'file-not-found' : 'read-failed', { file: href, detail: `${what}: ${detail}`, hint });
  };

  return {
    name: href,
    size() {
      size ??= (async () => {
        const response = await request('the HEAD request for the size', { ...options.init, method: 'HEAD' });
        if (!response.ok) refuse('the HEAD request for the size', response, `HTTP ${response.status} ${response.statusText}`.trim(), 'Check the URL');
        const length = Number(response.headers.get('Content-Length') ?? NaN);
        if (!Number.isSafeInteger(length) || length < 0) {
          refuse('the HEAD request for the size', response, 'the answer has no Content-Length', 'Pass the file size as httpByteSource(url, { size })');
        }
        return length;
      })();
      return size;
    },
    async read(offset, length) {
      const last = offset + length - 1;
      const what = `bytes ${offset}-${last}`;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 1) {
        throw new CheckpointError('read-failed', { file: href, detail: `${what}: not a valid range (offset ${offset}, length ${length})` });
      }
      const headers = new Headers(options.init?.headers);
      headers.set('Range', `bytes=${offset}-${last}`);
      const response = await request(`the Range request for ${what}`, { ...options.init, method: 'GET', headers });
      if (response.status === 200) refuse(what, response, 'the server ignored the Range header and answered 200 with the whole file');
      if (response.status !== 206) refuse(what, response, `HTTP ${response.status} ${response.statusText}`.trim());
      // Content-Range is readable same-origin (and cross-origin when exposed); check it when it is there.
      const contentRange = response.headers.get('Content-Range');
      if (contentRange !== null && !contentRange.startsWith(`bytes ${offset}-${last}/`)) {
        refuse(what, response, `the server answered with another range (Content-Range: ${contentRange})`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.length !== length) {
        throw new CheckpointError('read-failed', { file: href, detail: `${what}: asked for ${length} bytes, the server sent ${bytes.length}`, hint: 'The file may have changed on the server since its header was read' });
      }
      return bytes;
    },
  };
}
